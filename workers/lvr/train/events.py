"""Progress and lifecycle events: JSON lines on stdout, and Kafka when LVR_KAFKA_BROKERS is set.

Topic names and API versions are the libs/contracts schemas' (`contracts`); LVR_TOPIC_TRAINING_EVENTS and
LVR_TOPIC_MODELS_PUBLISHED override the topics (the trainer routes a run's events to its own topic). Messages follow the
contract schemas (apiVersion, id, timestamp; key = run id). Only rank 0 publishes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import uuid

from . import contracts


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventSink:
    def __init__(self, run_id: str, enabled: bool = True, stream=None):
        self.run_id, self.enabled = run_id, enabled
        self.stream = stream or sys.stdout
        self.events_topic = os.environ.get("LVR_TOPIC_TRAINING_EVENTS") or contracts.topic(contracts.TRAINING_EVENT)
        self.models_topic = os.environ.get("LVR_TOPIC_MODELS_PUBLISHED") or contracts.topic(contracts.MODEL_PUBLISHED)
        self.events_api = contracts.api_version(contracts.TRAINING_EVENT)
        self.models_api = contracts.api_version(contracts.MODEL_PUBLISHED)
        self.producer = None
        brokers = os.environ.get("LVR_KAFKA_BROKERS")
        if enabled and brokers:
            from kafka import KafkaProducer

            self.producer = KafkaProducer(
                bootstrap_servers=[b.strip() for b in brokers.split(",") if b.strip()],
                key_serializer=lambda k: k.encode(), value_serializer=lambda v: json.dumps(v).encode(),
                acks="all", retries=5, linger_ms=20)

    def _send(self, topic: str, key: str, msg: dict, flush: bool) -> None:
        if not self.enabled:
            return
        self.stream.write(json.dumps({"topic": topic, **msg}) + "\n")
        self.stream.flush()
        if self.producer is not None:
            try:
                self.producer.send(topic, key=key, value=msg)
                if flush:
                    self.producer.flush(timeout=30)
            except Exception as e:  # telemetry never stops training; stdout still has the event
                sys.stderr.write(f"warning: Kafka publish to {topic} failed: {e}\n")

    def event(self, type_: str, data: dict | None = None, reason: str | None = None, flush: bool = False) -> dict:
        msg = {"apiVersion": self.events_api, "id": str(uuid.uuid4()), "timestamp": now_iso(), "runId": self.run_id,
               "type": type_}
        if reason:
            msg["reason"] = reason[:4096]
        if data is not None:
            msg["data"] = data
        self._send(self.events_topic, self.run_id, msg, flush or type_ != "Progress")
        return msg

    def model_published(self, model_id: str, version: str, bundle_uri: str) -> dict:
        msg = {"apiVersion": self.models_api, "id": str(uuid.uuid4()), "timestamp": now_iso(), "modelId": model_id,
               "version": version, "bundleUri": bundle_uri, "runId": self.run_id}
        self._send(self.models_topic, model_id, msg, True)
        return msg

    def close(self) -> None:
        if self.producer is not None:
            try:
                self.producer.flush(timeout=30)
                self.producer.close(timeout=10)
            except Exception:
                pass
            self.producer = None

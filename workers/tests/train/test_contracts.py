"""The worker's topic names and API versions are the libs/contracts schemas': the producer publishes on the schemas'
topics with their apiVersion, and no copy of either is written into the package (a copy could drift from the DTOs)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from lvr.train import contracts
from lvr.train.contract_validation import message_errors
from lvr.train.errors import ConfigError
from lvr.train.events import EventSink

PACKAGE = Path(__file__).resolve().parents[2] / "lvr"
SCHEMAS = Path(__file__).resolve().parents[3] / "libs" / "contracts" / "schema"


def test_every_schema_names_its_topic_and_one_api_version():
    for path in sorted(SCHEMAS.glob("*.schema.json")):
        name = path.name.removesuffix(".schema.json")
        schema = json.loads(path.read_text())
        assert contracts.topic(name) == schema["x-lvr-topic"] and contracts.topic(name).startswith("lvr.")
        assert contracts.api_version(name) == schema["properties"]["apiVersion"]["enum"][0]
    assert contracts.topic(contracts.TRAINING_EVENT) == "lvr.training.events"
    assert contracts.api_version(contracts.MODEL_PUBLISHED) == "lvr.models/v1"


def test_the_producer_publishes_on_the_contract_topics_with_the_contract_versions(monkeypatch):
    monkeypatch.delenv("LVR_TOPIC_TRAINING_EVENTS", raising=False)
    monkeypatch.delenv("LVR_TOPIC_MODELS_PUBLISHED", raising=False)
    monkeypatch.delenv("LVR_KAFKA_BROKERS", raising=False)
    out = io.StringIO()
    sink = EventSink("run-contracts", stream=out)
    sink.event("Running")
    sink.model_published("demo", "3", "s3://b/bundle")
    event, published = (json.loads(line) for line in out.getvalue().splitlines())
    for line, name in ((event, contracts.TRAINING_EVENT), (published, contracts.MODEL_PUBLISHED)):
        message = {k: v for k, v in line.items() if k != "topic"}
        assert line["topic"] == contracts.topic(name)
        assert message["apiVersion"] == contracts.api_version(name)
        assert message_errors(message, name) == []


def test_the_trainer_can_route_events_to_another_topic(monkeypatch):
    monkeypatch.setenv("LVR_TOPIC_TRAINING_EVENTS", "lvr.training.events.instance-a")
    monkeypatch.delenv("LVR_KAFKA_BROKERS", raising=False)
    out = io.StringIO()
    EventSink("run-contracts", stream=out).event("Running")
    assert json.loads(out.getvalue())["topic"] == "lvr.training.events.instance-a"


def test_no_topic_name_or_api_version_is_copied_into_the_package():
    copies = re.compile(r"""["']lvr\.(training|evaluation|models|deadletter)[./][\w./-]*["']""")
    found = [f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}"
             for path in PACKAGE.rglob("*.py")
             for n, line in enumerate(path.read_text().splitlines(), 1) if copies.search(line)]
    assert found == []


def test_a_missing_schema_directory_is_a_config_error(monkeypatch, tmp_path):
    monkeypatch.setenv(contracts.SCHEMA_DIR_ENV, str(tmp_path))
    with pytest.raises(ConfigError, match="LVR_CONTRACTS_SCHEMA_DIR"):
        contracts.message_schema(contracts.TRAINING_REQUEST)

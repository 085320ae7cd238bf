"""The worker as the Job runs it (`python -m lvr sft|grpo --spec FILE`), against the test stack's Kafka and MinIO:
events, checkpoints with manifest + marker, SIGTERM, resume == uninterrupted, exit codes, final bundle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from _train_helpers import TINY_PIXELS, require_env, sigterm_at_first_progress, spec

REPO = Path(__file__).resolve().parents[3]
S3_VARS = ("LVR_S3_ENDPOINT", "LVR_S3_ACCESS_KEY", "LVR_S3_SECRET_KEY")


def worker_env(tmp: Path, kafka: bool) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO / "workers"), LVR_CACHE_DIR=str(tmp / "cache"))
    if not kafka:
        env.pop("LVR_KAFKA_BROKERS", None)
    return env


def write_spec(tmp: Path, msg: dict) -> Path:
    p = tmp / f"{msg['runId']}-{uuid.uuid4().hex[:6]}.json"
    p.write_text(json.dumps(msg))
    return p


def events_of(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def run_worker(stage: str, spec_path: Path, env: dict, *extra: str, timeout: int = 240):
    return subprocess.run([sys.executable, "-m", "lvr", stage, "--spec", str(spec_path), *TINY_PIXELS, *extra],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def losses(events: list[dict]) -> dict[int, float]:
    return {e["data"]["step"]: e["data"]["loss"] for e in events if e.get("type") == "Progress"}


def kafka_messages(topic: str, key: str, until, timeout: float = 60.0) -> list[dict]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=os.environ["LVR_KAFKA_BROKERS"].split(","),
                             auto_offset_reset="earliest", group_id=None, consumer_timeout_ms=2000)
    out, deadline = [], time.time() + timeout
    try:
        while time.time() < deadline:
            for rec in consumer:
                if rec.key and rec.key.decode() == key:
                    out.append(json.loads(rec.value))
            if until(out):
                break
    finally:
        consumer.close()
    return out


def upload_tree(local: Path, uri: str) -> None:
    from lvr import storage as store

    store.upload_dir(local, uri)


def test_sft_sigterm_resume_equals_uninterrupted_with_kafka_and_minio(tiny_dir, data_dir, tmp_path):
    require_env("LVR_KAFKA_BROKERS", *S3_VARS)
    from lvr.bundle import verify_bundle
    from lvr import storage as store
    from lvr.train.checkpoint import CheckpointStore

    hp = dict(maxSteps=4, gradientAccumulationSteps=1, learningRate=1e-3)
    # A: uninterrupted, local folders, no Kafka
    run_a = f"sft-a-{uuid.uuid4().hex[:8]}"
    a = run_worker("sft", write_spec(tmp_path, spec(run_a, "sft", str(tiny_dir), str(data_dir / "sft.json"),
                                                    str(tmp_path / "ck-a"), str(tmp_path / "bundle-a"), **hp)),
                   worker_env(tmp_path / "a", kafka=False))
    assert a.returncode == 0, a.stderr[-3000:]
    loss_a = losses(events_of(a.stdout))
    assert sorted(loss_a) == [1, 2, 3, 4]

    # B: model, data, checkpoints and bundle in MinIO; events to Kafka; SIGTERM after the first step
    run_b = f"sft-b-{uuid.uuid4().hex[:8]}"
    base = f"s3://lvr-worker-tests/{run_b}"
    upload_tree(tiny_dir, f"{base}/model")
    upload_tree(data_dir, f"{base}/data")
    spec_b = write_spec(tmp_path, spec(run_b, "sft", f"{base}/model", f"{base}/data/sft.json", f"{base}/checkpoints",
                                       f"{base}/bundle", **hp))
    env_b = worker_env(tmp_path / "b", kafka=True)
    code, out, err = sigterm_at_first_progress([sys.executable, "-m", "lvr", "sft", "--spec", str(spec_b),
                                                *TINY_PIXELS], env_b, REPO, 240)
    first = events_of(out)
    assert code == 75, err[-3000:]
    saved = [e for e in first if e.get("type") == "CheckpointSaved"]
    assert saved and saved[-1]["data"]["trigger"] == "sigterm" and "SIGTERM" in saved[-1]["reason"]
    stopped_at = saved[-1]["data"]["step"]
    assert 1 <= stopped_at < 4
    ckpts = CheckpointStore(f"{base}/checkpoints")
    assert ckpts.latest() == stopped_at

    # rerun the same spec: resumes from the newest complete checkpoint and finishes
    b2 = run_worker("sft", spec_b, env_b)
    assert b2.returncode == 0, b2.stderr[-3000:]
    second = events_of(b2.stdout)
    running = [e for e in second if e.get("type") == "Running"][0]
    assert running["data"]["resumedFrom"] == stopped_at
    loss_b = {**losses(first), **losses(second)}
    assert sorted(loss_b) == [1, 2, 3, 4]
    assert [loss_b[s] for s in range(1, 5)] == [loss_a[s] for s in range(1, 5)]  # bit-identical sequence

    # checkpoints in MinIO: manifest + marker, checksums verify
    assert ckpts.complete_steps()[-1] == 4 and stopped_at in ckpts.complete_steps()
    manifest = ckpts.fetch(4, tmp_path / "ck4")
    assert manifest["step"] == 4 and manifest["runId"] == run_b and "model/model.safetensors" in manifest["files"]
    # final bundle in MinIO, complete and verified
    files = store.list_files(f"{base}/bundle")
    assert "manifest.json" in files or "MANIFEST.json" in files
    store.download_dir(f"{base}/bundle", tmp_path / "bundle-b")
    verify_bundle(tmp_path / "bundle-b")

    # events arrived in Kafka
    got = kafka_messages("lvr.training.events", run_b, lambda m: any(x["type"] == "Succeeded" for x in m))
    types = {m["type"] for m in got}
    assert {"Running", "Progress", "CheckpointSaved", "Succeeded"} <= types
    prog = [m for m in got if m["type"] == "Progress"][0]["data"]
    assert {"step", "totalSteps", "loss", "lossParts", "lr", "tokensPerSec", "etaSeconds"} <= set(prog)
    assert set(prog["lossParts"]) == {"ce", "lvr"}
    pub = kafka_messages("lvr.models.published", f"lvr-{run_b}", lambda m: len(m) > 0)
    assert pub and pub[0]["bundleUri"] == f"{base}/bundle" and pub[0]["runId"] == run_b
    # every message satisfies the libs/contracts JSON Schema of its topic
    from lvr.train.contract_validation import message_errors

    assert [message_errors(m, "training-event") for m in got] == [[] for _ in got]
    assert message_errors(pub[0], "model-published") == []


def test_invalid_data_and_spec_exit_non_retryable(tiny_dir, data_dir, tmp_path):
    bad = json.loads((data_dir / "sft.json").read_text())
    bad[1]["bboxes"] = [[0.2, 0.3, 1.7, 0.5]]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    env = worker_env(tmp_path, kafka=False)
    r = run_worker("sft", write_spec(tmp_path, spec("bad-data", "sft", str(tiny_dir), str(tmp_path / "bad.json"),
                                                    str(tmp_path / "ck"), str(tmp_path / "b"), maxSteps=2)), env)
    assert r.returncode == 78
    assert "record 1" in r.stderr and "field 'bboxes[0]'" in r.stderr
    failed = [e for e in events_of(r.stdout) if e.get("type") == "Failed"]
    assert failed and failed[0]["data"] == {"exitCode": 78, "retryable": False} and "record 1" in failed[0]["reason"]
    r2 = run_worker("grpo", write_spec(tmp_path, spec("bad-spec", "grpo", str(tiny_dir), str(data_dir / "grpo.json"),
                                                      str(tmp_path / "ck"), str(tmp_path / "b"), lossType="ppo")), env)
    assert r2.returncode == 78 and "lossType" in r2.stderr
    r3 = run_worker("sft", write_spec(tmp_path, spec("wrong-stage", "grpo", str(tiny_dir), str(data_dir / "grpo.json"),
                                                     str(tmp_path / "ck"), str(tmp_path / "b"))), env)
    assert r3.returncode == 78 and "stage" in r3.stderr


def test_grpo_worker_run(tiny_dir, data_dir, tmp_path):
    """Two steps of two prompts each (one batched rollout per step), the run's system prompt in the bundle."""
    from lvr.preprocess import render_chat

    run_id = f"grpo-{uuid.uuid4().hex[:8]}"
    system = "Answer with the number only."
    r = run_worker("grpo", write_spec(tmp_path, spec(run_id, "grpo", str(tiny_dir), str(data_dir / "grpo.json"),
                                                     str(tmp_path / "ck"), str(tmp_path / "bundle"), every=1,
                                                     maxSteps=2, numGenerations=4, perDeviceBatchSize=2,
                                                     promptsPerStep=2, decodingSteps=2, systemPrompt=system,
                                                     rewardFuncs=["accuracy", "format"])),
                   worker_env(tmp_path, kafka=False), "--set", "max_completion_length=12")
    assert r.returncode == 0, r.stderr[-3000:]
    ev = events_of(r.stdout)
    prog = [e["data"] for e in ev if e.get("type") == "Progress"]
    assert [p["step"] for p in prog] == [1, 2]
    assert set(prog[0]["rewards"]) == {"accuracy", "format"} and prog[0]["rolloutSeconds"] > 0
    assert ev[-1]["type"] == "Succeeded"
    assert (tmp_path / "ck" / "step-2" / "_COMPLETE").exists() and (tmp_path / "ck" / "step-1" / "_COMPLETE").exists()
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["default_system_prompt"] == system
    template = (tmp_path / "bundle" / manifest["chat_template"]).read_text()
    rendered = render_chat([{"role": "user", "content": "hi"}], template)
    assert rendered.startswith(f"<|im_start|>system\n{system}<|im_end|>")


def test_torchrun_two_processes_fsdp(tiny_dir, data_dir, tmp_path):
    run_id = f"fsdp-{uuid.uuid4().hex[:8]}"
    spec_path = write_spec(tmp_path, spec(run_id, "sft", str(tiny_dir), str(data_dir / "sft.json"),
                                          str(tmp_path / "ck"), str(tmp_path / "bundle"), every=1, maxSteps=1,
                                          gradientAccumulationSteps=1))
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "lvr", "sft",
                        "--spec", str(spec_path), *TINY_PIXELS], env=worker_env(tmp_path, kafka=False), cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    ev = events_of(r.stdout)
    assert [e for e in ev if e.get("type") == "Running"][0]["data"]["worldSize"] == 2
    assert len([e for e in ev if e.get("type") == "Progress"]) == 1          # only rank 0 publishes
    manifest = json.loads((tmp_path / "ck" / "step-1" / "MANIFEST.json").read_text())
    assert manifest["worldSize"] == 2 and (tmp_path / "ck" / "step-1" / "_COMPLETE").exists()
    assert ev[-1]["type"] == "Succeeded"
    import torch

    ranks = torch.load(tmp_path / "ck" / "step-1" / "trainer_state.pt", weights_only=False)["ranks"]
    data = [r["data"] for r in ranks]           # token-balanced by default: both ranks hold one data position
    assert "pending" in data[0] and json.dumps(data[0]) == json.dumps(data[1])


def test_grpo_torchrun_two_processes_fsdp(tiny_dir, data_dir, tmp_path):
    """GRPO under FSDP2 on two processes: the batched rollout reads the sharded decoder weights whole."""
    run_id = f"grpo-fsdp-{uuid.uuid4().hex[:8]}"
    spec_path = write_spec(tmp_path, spec(run_id, "grpo", str(tiny_dir), str(data_dir / "grpo.json"),
                                          str(tmp_path / "ck"), str(tmp_path / "bundle"), every=1, maxSteps=1,
                                          numGenerations=2, perDeviceBatchSize=2, decodingSteps=2))
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "lvr", "grpo",
                        "--spec", str(spec_path), *TINY_PIXELS, "--set", "max_completion_length=8"],
                       env=worker_env(tmp_path, kafka=False), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    ev = events_of(r.stdout)
    assert [e for e in ev if e.get("type") == "Running"][0]["data"]["worldSize"] == 2
    prog = [e["data"] for e in ev if e.get("type") == "Progress"]
    assert len(prog) == 1 and prog[0]["rolloutSeconds"] > 0 and prog[0]["completionLength"] > 0
    assert ev[-1]["type"] == "Succeeded"


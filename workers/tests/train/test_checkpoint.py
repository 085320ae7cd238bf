"""Checkpoint store: marker-gated discovery, retention, checksum verification (local folder; MinIO in test_worker)."""

from __future__ import annotations

import pytest

from lvr.train.checkpoint import CheckpointStore
from lvr.train.errors import ConfigError


def stage(tmp_path, step: int):
    d = tmp_path / f"stage{step}"
    (d / "model").mkdir(parents=True)
    (d / "model" / "w.bin").write_bytes(bytes([step]) * 100)
    (d / "trainer_state.pt").write_bytes(b"state")
    return d


def test_marker_retention_and_checksums(tmp_path):
    store = CheckpointStore(str(tmp_path / "ck"), keep_last=2)
    for step in (1, 2, 3):
        m = store.save(stage(tmp_path, step), step, {"runId": "r", "stage": "sft"})
        assert m["files"]["model/w.bin"]["size"] == 100
    assert store.complete_steps() == [2, 3]                # step 1 pruned
    (tmp_path / "ck" / "step-4" / "model").mkdir(parents=True)  # an upload that died before its marker
    assert store.latest() == 3
    got = store.fetch(3, tmp_path / "dl")
    assert (tmp_path / "dl" / "model" / "w.bin").read_bytes() == bytes([3]) * 100 and got["step"] == 3
    (tmp_path / "ck" / "step-3" / "model" / "w.bin").write_bytes(b"tampered")
    with pytest.raises(ConfigError, match="checksum"):
        store.fetch(3, tmp_path / "dl2")
    with pytest.raises(ConfigError, match="_COMPLETE"):
        store.fetch(4, tmp_path / "dl3")

"""GRPO: a run stopped by SIGTERM and rerun gives the same loss sequence as an uninterrupted run (local folders)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from _train_helpers import TINY_PIXELS, sigterm_at_first_progress, spec

REPO = Path(__file__).resolve().parents[3]
#: Uneven micro-batches (4 = 3 + 1) and two updates per generated batch: every part of the step is resumed.
HP = dict(maxSteps=3, numGenerations=4, perDeviceBatchSize=3, numIterations=2, decodingSteps=2, learningRate=1e-3,
          temperature=4.0, topK=0,
          rewardFuncs=["format", "_train_helpers:distinct_tokens_reward"])
EXTRA = [*TINY_PIXELS, "--set", "max_completion_length=10"]


def _env(tmp: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "workers"), str(Path(__file__).parent)]),
               LVR_CACHE_DIR=str(tmp / "cache"))
    env.pop("LVR_KAFKA_BROKERS", None)
    return env


def _events(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _losses(events: list[dict]) -> dict[int, float]:
    return {e["data"]["step"]: e["data"]["loss"] for e in events if e.get("type") == "Progress"}


def _spec_file(tmp: Path, run_id: str, tiny_dir: Path, data_dir: Path) -> Path:
    p = tmp / f"{run_id}.json"
    p.write_text(json.dumps(spec(run_id, "grpo", str(tiny_dir), str(data_dir / "grpo.json"), str(tmp / f"ck-{run_id}"),
                                 str(tmp / f"bundle-{run_id}"), every=1, **HP)))
    return p


def test_grpo_sigterm_resume_equals_uninterrupted(tiny_dir, data_dir, tmp_path):
    cmd = [sys.executable, "-m", "lvr", "grpo", "--spec"]
    a = subprocess.run([*cmd, str(_spec_file(tmp_path, "grpo-a", tiny_dir, data_dir)), *EXTRA], env=_env(tmp_path),
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert a.returncode == 0, a.stderr[-3000:]
    loss_a = _losses(_events(a.stdout))
    assert sorted(loss_a) == [1, 2, 3] and len(set(loss_a.values())) == 3

    spec_b = _spec_file(tmp_path, "grpo-b", tiny_dir, data_dir)
    code, out, err = sigterm_at_first_progress([*cmd, str(spec_b), *EXTRA], _env(tmp_path), REPO, 600)
    first = _events(out)
    assert code == 75, err[-3000:]
    stopped_at = [e for e in first if e.get("type") == "CheckpointSaved"][-1]["data"]["step"]
    assert 1 <= stopped_at < 3

    b2 = subprocess.run([*cmd, str(spec_b), *EXTRA], env=_env(tmp_path), cwd=REPO, capture_output=True, text=True,
                        timeout=600)
    assert b2.returncode == 0, b2.stderr[-3000:]
    second = _events(b2.stdout)
    assert [e for e in second if e.get("type") == "Running"][0]["data"]["resumedFrom"] == stopped_at
    loss_b = {**_losses(first), **_losses(second)}
    assert [loss_b[s] for s in (1, 2, 3)] == [loss_a[s] for s in (1, 2, 3)]  # bit-identical sequence

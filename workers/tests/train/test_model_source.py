"""SFT and GRPO start from the checkpoints users have (Qwen2.5-VL release layout, written by plain transformers) with
every weight; a checkpoint that does not match its config.json fails the run (exit 78, `Failed` names the keys)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from _plain_checkpoints import edit_weights, write_plain_checkpoint
from _train_helpers import TINY_PIXELS, spec
from lvr.train import runtime as R
from lvr.train.train_config import TrainConfig

REPO = Path(__file__).resolve().parents[3]


def _cfg(stage: str) -> TrainConfig:
    return TrainConfig(run_id="t", stage=stage, model_uri="-", data_uri="-", checkpoint_uri="-", bundle_uri="-",
                       max_steps=1).resolved()


@pytest.mark.parametrize("stage", ["sft", "grpo"])
@pytest.mark.parametrize("layout", ["release", "upstream_lvr"])
def test_training_loads_every_weight_of_a_release_layout_checkpoint(tmp_path, stage, layout):
    folder, expected = write_plain_checkpoint(tmp_path / "ck", layout, tie=False)
    model = R.load_model(folder, _cfg(stage), R.Env(0, 1, 0, torch.device("cpu")))
    state = model.state_dict()
    assert [k for k, v in expected.items() if not torch.equal(state[k], v)] == []
    assert not any(p.requires_grad for p in model.model.visual.parameters())
    assert all(p.requires_grad for p in model.model.language_model.parameters())


@pytest.mark.parametrize("stage", ["sft", "grpo"])
def test_checkpoint_missing_a_weight_fails_the_run_with_exit_78_naming_it(tmp_path, data_dir, stage):
    folder, _ = write_plain_checkpoint(tmp_path / "ck", "release")
    edit_weights(folder, lambda w: w.pop("model.layers.1.self_attn.o_proj.weight"))
    msg = spec(f"broken-{stage}", stage, str(folder), str(data_dir / f"{stage}.json"), str(tmp_path / "ckpt"),
               str(tmp_path / "bundle"), maxSteps=1)
    (tmp_path / "spec.json").write_text(json.dumps(msg))
    env = dict(os.environ, PYTHONPATH=str(REPO / "workers"), LVR_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("LVR_KAFKA_BROKERS", None)
    r = subprocess.run([sys.executable, "-m", "lvr", stage, "--spec", str(tmp_path / "spec.json"), *TINY_PIXELS],
                       env=env, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert r.returncode == 78, r.stderr[-3000:]
    failed = [e for e in map(json.loads, filter(lambda s: s.startswith("{"), r.stdout.splitlines()))
              if e.get("type") == "Failed"]
    assert failed and failed[0]["data"] == {"exitCode": 78, "retryable": False}
    assert "model.language_model.layers.1.self_attn.o_proj.weight" in failed[0]["reason"]
    assert "missing weights" in failed[0]["reason"]
    assert not (tmp_path / "bundle").exists()

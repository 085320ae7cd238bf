"""Shared fixtures for the training-worker tests: one tiny LVR checkpoint, tiny images, record files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TINY_PIXELS = ["--set", "min_pixels=3136", "--set", "max_pixels=50176"]


def require_env(*names: str) -> dict:
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        pytest.fail(f"environment variable {missing[0]} is not set: start the test stack "
                    f"(`npm test`, or `eval \"$(node scripts/stack/cli.mjs env)\"`)", pytrace=False)
    return {n: os.environ[n] for n in names}


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    from lvr.tiny import save_tiny_checkpoint

    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="session")
def codec(tiny_dir):
    from lvr.data.text import TextCodec

    return TextCodec.from_dir(tiny_dir)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for name, (h, w) in {"a.png": (120, 150), "b.png": (90, 90)}.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(d / name)
    recs = [sft_record(i, "a.png" if i % 2 == 0 else "b.png") for i in range(6)]
    (d / "sft.json").write_text(json.dumps(recs))
    grpo = [{"image": "a.png", "conversations": [{"from": "human", "value": f"What is {i}+1?"},
                                                 {"from": "gpt", "value": f"<answer>{i + 1}</answer>"}]}
            for i in range(3)]
    (d / "grpo.json").write_text(json.dumps(grpo))
    return d


def sft_record(i: int, image: str = "a.png") -> dict:
    return {"image": image, "conversations": [
        {"from": "human", "value": f"<image>\nWhat is in region {i}?"},
        {"from": "gpt", "value": f"<lvr>\n<answer> thing{i} </answer>"}],
        "bboxes": [[0.05 * i, 0.1, 0.6, 0.9]]}


def tiny_opts():
    from lvr.data.sft import SftDataOptions

    return SftDataOptions(min_pixels=3136, max_pixels=50176)


def spec(run_id: str, stage: str, model: str, data: str, ckpt: str, bundle: str, every: int = 2, **hp) -> dict:
    return {"apiVersion": "lvr.training/v1", "id": f"req-{run_id}", "timestamp": "2026-11-26T06:00:00Z",
            "runId": run_id, "stage": stage, "model": {"uri": model}, "data": {"uri": data},
            "resources": {"gpusPerNode": 0}, "hyperparameters": hp,
            "checkpoint": {"uri": ckpt, "everySteps": every}, "output": {"bundleUri": bundle}}


def load_model(tiny_dir):
    import torch
    from lvr.model import LVRForConditionalGeneration

    m = LVRForConditionalGeneration.from_pretrained(tiny_dir, dtype=torch.float32, attn_implementation="sdpa")
    m.model.visual.requires_grad_(False)
    return m

"""Fixtures for the training-worker tests: one tiny LVR checkpoint, tiny images, record files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _train_helpers import sft_record


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

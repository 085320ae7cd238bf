"""Flat packed batches carry host-built M-RoPE positions and vision index tensors: the same values the model builds on
the device, so the loss is unchanged and the training step skips a per-instance index loop."""

from __future__ import annotations

import pytest
import torch

from lvr.data.packing import VISION_KEYS, collate
from lvr.data.records import validate_sft_record
from lvr.data.sft import build_sft_sample
from lvr.train.losses import rope_positions, sft_loss

from _train_helpers import load_model, sft_record, tiny_opts


@pytest.fixture(scope="module")
def model(tiny_dir):
    return load_model(tiny_dir)


@pytest.fixture(scope="module")
def samples(codec, data_dir):
    recs = [validate_sft_record(sft_record(i, img), "sft.json", i, str(data_dir))
            for i, img in ((1, "a.png"), (4, "b.png"), (2, "a.png"))]
    return [build_sft_sample(r, codec, str(data_dir), tiny_opts()) for r in recs]


def test_host_positions_equal_the_models_index(model, samples):
    batch = collate(samples, "flat")
    device_built = rope_positions(model, batch["input_ids"], batch["image_grid_thw"], None, batch["seq_lens"],
                                  batch["images_per_seq"])
    assert batch["position_ids"].shape == device_built.shape
    assert torch.equal(batch["position_ids"], device_built)


def test_precomputed_inputs_leave_the_loss_unchanged(model, samples):
    batch = collate(samples, "flat")
    assert set(VISION_KEYS) <= set(batch)
    bare = {k: v for k, v in batch.items() if k not in VISION_KEYS and k != "position_ids"}
    with torch.no_grad():
        fast, slow = sft_loss(model, batch, 0.5), sft_loss(model, bare, 0.5)
    for k in ("loss", "loss_ce", "loss_lvr"):
        assert torch.allclose(fast[k], slow[k], rtol=1e-5, atol=1e-6), k

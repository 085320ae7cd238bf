"""Knobs for training a model from scratch (the synthetic demo model): `train_vision` and `cache_samples`."""

from __future__ import annotations

import pytest
import torch

from lvr.data.packing import collate
from lvr.data.records import validate_sft_record
from lvr.data.sft import build_sft_sample
from lvr.train.losses import sft_loss
from lvr.train.spec import config_from_message

from _train_helpers import load_model, sft_record, spec, tiny_opts


@pytest.fixture(scope="module")
def batch(codec, data_dir):
    recs = [validate_sft_record(sft_record(i, img), "sft.json", i, str(data_dir))
            for i, img in ((1, "a.png"), (2, "b.png"))]
    return collate([build_sft_sample(r, codec, str(data_dir), tiny_opts()) for r in recs], "flat")


def vision_grads(model) -> list[torch.Tensor | None]:
    return [p.grad for p in model.model.visual.parameters()]


def test_train_vision_sends_gradients_to_the_vision_tower_with_the_same_loss(tiny_dir, batch):
    frozen = load_model(tiny_dir)
    parts = sft_loss(frozen, batch, lvr_lambda=0.1)
    parts["loss"].backward()
    assert all(g is None for g in vision_grads(frozen)), "the default keeps the vision tower frozen (§3.2)"

    trained = load_model(tiny_dir)
    trained.model.visual.requires_grad_(True)
    parts_tv = sft_loss(trained, batch, lvr_lambda=0.1, train_vision=True)
    assert float(parts_tv["loss"].detach()) == pytest.approx(float(parts["loss"].detach()), rel=1e-6)
    parts_tv["loss"].backward()
    grads = [g for g in vision_grads(trained) if g is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)


def test_knobs_are_settable_from_the_command_line(tiny_dir, tmp_path):
    msg = spec("scratch", "sft", str(tiny_dir), str(tmp_path / "d.json"), str(tmp_path / "c"), str(tmp_path / "b"))
    cfg = config_from_message(msg)
    assert cfg.train_vision is False and cfg.cache_samples is False and cfg.lvr_self_feed is False
    cfg = config_from_message(msg, {"train_vision": "true", "cache_samples": "1", "lvr_self_feed": "true",
                                     "lvr_detach_target": "true"})
    assert cfg.train_vision is True and cfg.cache_samples is True and cfg.lvr_self_feed is True
    assert cfg.lvr_detach_target is True


def test_train_vision_lets_the_latent_loss_reach_the_visual_target(tiny_dir, batch, monkeypatch):
    """Not detached (as upstream): the reconstruction term pulls the ROI's visual tokens towards the hidden states,
    which keeps their scale where decoding can reproduce it (README, "Demo model")."""
    import lvr.train.losses as losses

    seen = []
    real = losses.lvr_loss_fn
    monkeypatch.setattr(losses, "lvr_loss_fn", lambda p, t, k="mse": seen.append(t.requires_grad) or real(p, t, k))
    trained = load_model(tiny_dir)
    trained.model.visual.requires_grad_(True)
    losses.sft_loss(trained, batch, lvr_lambda=0.1, train_vision=True)
    losses.sft_loss(load_model(tiny_dir), batch, lvr_lambda=0.1)
    assert seen == [True, False]


def test_a_detached_target_takes_no_gradient_from_the_latent_loss(tiny_dir, batch, monkeypatch):
    """lvr_detach_target with a trained vision tower: the same loss value, but the region tokens enter the latent
    loss as constants (the term still reaches the tower through the image tokens the predictions attend to)."""
    import lvr.train.losses as losses

    seen = []
    real = losses.lvr_loss_fn
    monkeypatch.setattr(losses, "lvr_loss_fn", lambda p, t, k="mse": seen.append(t.requires_grad) or real(p, t, k))
    values = []
    for detach in (False, True):
        model = load_model(tiny_dir)
        model.model.visual.requires_grad_(True)
        values.append(float(losses.sft_loss(model, batch, lvr_lambda=0.1, train_vision=True,
                                            lvr_detach_target=detach)["loss_lvr"]))
    assert seen == [True, False]
    assert values[0] == pytest.approx(values[1], rel=1e-6) and values[0] > 0

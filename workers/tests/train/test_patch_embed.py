"""NaN-safe patch embedding of bf16 training (LVR-SPEC §5.1): the Conv3d in fp32, non-finite outputs sanitised."""

from __future__ import annotations

import dataclasses
import tempfile

import torch
import torch.nn.functional as F

from lvr.model import make_patch_embed_nan_safe
from lvr.tiny import make_tiny_model, save_tiny_checkpoint
from lvr.train import runtime as R
from lvr.train.train_config import TrainConfig

#: Finite in fp32 (max 3.4028e38), inf once cast to bf16 (max 3.3895e38).
HUGE = 3.4e38


def _pixels() -> torch.Tensor:
    x = torch.randn(8, 3 * 2 * 14 * 14, generator=torch.Generator().manual_seed(0))
    x[1, :5] = HUGE
    x[3, 100] = -HUGE
    return x


def _fp32_reference(model, x: torch.Tensor) -> torch.Tensor:
    pe = model.model.visual.patch_embed
    w = pe.proj.weight.float()
    out = F.conv3d(x.view(-1, 3, 2, 14, 14).float(), w, stride=pe.proj.stride)
    return out.view(-1, pe.embed_dim)


def test_bf16_conv_overflows_and_the_nan_safe_one_computes_in_fp32():
    model = make_tiny_model(0).to(torch.bfloat16)
    pe = model.model.visual.patch_embed
    x = _pixels()
    with torch.no_grad():
        plain = pe(x)
        assert not torch.isfinite(plain).all()            # the bf16 cast of the pixels overflowed
        make_patch_embed_nan_safe(model)
        make_patch_embed_nan_safe(model)                  # idempotent: one hook
        safe = pe(x)
    assert safe.dtype == torch.bfloat16 and torch.isfinite(safe).all()
    assert torch.equal(safe, _fp32_reference(model, x).to(torch.bfloat16))
    assert len(pe._forward_hooks) == 1


def test_non_finite_outputs_are_sanitised():
    model = make_tiny_model(0).to(torch.bfloat16)
    make_patch_embed_nan_safe(model)
    x = _pixels()
    x[0, 7] = float("nan")           # NaN input: the whole output row is NaN, even in fp32
    x[2, :] = float("inf")           # inf times mixed-sign weights: inf - inf = NaN, or ±inf
    with torch.no_grad():
        assert not torch.isfinite(_fp32_reference(model, x)).all()
        out = model.model.visual.patch_embed(x)
    assert torch.isfinite(out).all()
    assert (out[0] == 0).all()
    assert set(out[2].float().unique().tolist()) <= {0.0, 1e4, -1e4}


def test_fp32_conv_under_bf16_autocast_and_in_bf16_training():
    """The worker's bf16 runs (autocast over fp32 weights, or FSDP bf16 params) load the NaN-safe embedding."""
    cpu = R.Env(0, 1, 0, torch.device("cpu"))
    cfg = TrainConfig(run_id="t", stage="sft", model_uri="-", data_uri="-", checkpoint_uri="-", bundle_uri="-",
                      max_steps=1, precision="bf16").resolved()
    with tempfile.TemporaryDirectory() as d:
        folder = save_tiny_checkpoint(d, seed=0)
        model = R.load_model(folder, cfg, cpu)
        fp32_model = R.load_model(folder, dataclasses.replace(cfg, precision="fp32"), cpu)
    assert getattr(model.model.visual.patch_embed, "lvr_nan_safe", False)
    assert not getattr(fp32_model.model.visual.patch_embed, "lvr_nan_safe", False)
    x = _pixels()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.model.visual.patch_embed(x)
        plain = fp32_model.model.visual.patch_embed(x)
    assert torch.isfinite(out).all() and not torch.isfinite(plain).all()
    torch.testing.assert_close(out, _fp32_reference(model, x))

"""Compute levers: gradient checkpointing on a share of the decoder layers, regional torch.compile, fused RoPE, and
the stage-1 step levers (SftLevers)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .processes import Env
from .train_config import TrainConfig


def checkpointed_layers(n_layers: int, ratio: float) -> list[int]:
    """Indices of the decoder layers to checkpoint for a ratio in [0, 1], spread evenly (ratio 0.5 = every other)."""
    n = round(max(0.0, min(1.0, ratio)) * n_layers)
    return [i for i in range(n_layers) if (i + 1) * n // n_layers > i * n // n_layers]


def enable_checkpointing(model, cfg: TrainConfig, env: Env) -> list[int]:
    """Gradient checkpointing (default on GPU) on `checkpoint_ratio` of the decoder layers; the rest keep their
    activations (less recompute, more memory). Returns the checkpointed layer indices."""
    on = cfg.gradient_checkpointing if cfg.gradient_checkpointing is not None else env.device.type == "cuda"
    if not on or cfg.checkpoint_ratio <= 0:
        return []
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    layers = model.model.language_model.layers
    keep = set(checkpointed_layers(len(layers), cfg.checkpoint_ratio))
    for i, layer in enumerate(layers):
        layer.gradient_checkpointing = i in keep
    return sorted(keep)


def compile_regions(model, dynamic: bool = True, backend: str | None = None) -> int:
    """Regional torch.compile of the shape-generic pieces of every decoder layer and vision block (MLPs and RMS
    norms: one fused kernel instead of the chains of casts, pow, mean, rsqrt, mul, silu, mul). Attention, RoPE and
    the data-dependent parts stay eager. Identical layers share one compiled graph. Returns the count compiled."""
    kw = {"dynamic": dynamic}
    if backend:
        kw["backend"] = backend
    mods = []
    for layer in model.model.language_model.layers:
        mods += [layer.mlp, layer.input_layernorm, layer.post_attention_layernorm]
    mods.append(model.model.language_model.norm)
    for blk in model.model.visual.blocks:
        mods += [blk.mlp, blk.norm1, blk.norm2]
    for m in mods:
        m.compile(**kw)
    return len(mods)


@dataclass(frozen=True)
class SftLevers:
    """Stage-1 step levers beyond checkpointing and regional compile, each keeping the training math (CPU tests in
    tests/train/test_sft_levers.py):
    host_plan    M-RoPE positions, vision window/rotary indices, varlen boundaries and every gather index computed
                 by the prefetcher thread (lvr.train.host_plan); the step has no host sync
    fused_ce     LM head + CE through losses.fused_linear_cross_entropy (gradients formed chunk by chunk in the
                 forward; no recomputed head matmul)
    fused_rope   text and vision RoPE through one compiled function each (fuse_rope)
    fused_adamw  AdamW's single-kernel implementation (no foreach temporaries of the size of the moments)
    Auto (None in TrainConfig, or a field TrainConfig does not have yet): on for CUDA, off on CPU."""

    host_plan: bool = False
    fused_ce: bool = False
    fused_rope: bool = False
    fused_adamw: bool = False

    @classmethod
    def from_config(cls, cfg: TrainConfig, env: Env) -> "SftLevers":
        cuda = env.device.type == "cuda"
        pick = lambda name: cuda if getattr(cfg, name, None) is None else bool(getattr(cfg, name))
        return cls(host_plan=pick("host_plan") and cfg.packing_mode == "flat", fused_ce=pick("fused_ce"),
                   fused_rope=pick("fused_rope"), fused_adamw=pick("fused_adamw"))


def fuse_rope(dynamic: bool = True, backend: str | None = None) -> None:
    """Replace Qwen2.5-VL's text and vision rotary application (rotate_half: slices, a negation, a concatenation,
    two multiplies and an add per tensor, each its own kernel over q and k) by compiled versions: one fused kernel
    per call in forward and one in backward. Process-wide (the modeling module's functions), idempotent."""
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as M

    if getattr(M, "lvr_fused_rope", False):
        return
    kw = {"dynamic": dynamic, **({"backend": backend} if backend else {})}
    M.apply_rotary_pos_emb = torch.compile(M.apply_rotary_pos_emb, **kw)
    M.apply_rotary_pos_emb_vision = torch.compile(M.apply_rotary_pos_emb_vision, **kw)
    M.lvr_fused_rope = True

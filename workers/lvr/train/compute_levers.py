"""Per-layer compute levers: gradient checkpointing on a share of the decoder layers, regional torch.compile."""

from __future__ import annotations

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

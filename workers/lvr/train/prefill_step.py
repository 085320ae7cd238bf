"""The static rollout engine's prefill: the prompts' text forward through the decode step's own weight copies, and
the vision tower with its blocks under torch.compile.

Both replace launch-bound eager forwards (transformers' text layers and vision blocks run dozens of small kernels
each, with Python between them): the text prefill is one function per layer (fused q/k/v and gate/up, as the decode
step's weights are laid out), compiled once for every layer and every prompt length (dynamic shapes); the vision
blocks keep transformers' code and only have their forward compiled while the rollout's prefill runs.
Numerics follow transformers under bf16 autocast over fp32 weights: fp32 residual stream and norms, matmuls in the
compute dtype, the rotation in fp32 (as transformers rotates with fp32 cos/sin) rounded to the compute dtype, keys and
values cached in the compute dtype.
"""

from __future__ import annotations

import contextlib
import functools

import torch
import torch.nn.functional as F

from ..graphs import mrope_angles


def mrope_cos_sin(pos: torch.Tensor, inv_freq: torch.Tensor, sections: list[int], scale: float
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """M-RoPE cos and sin [K, P, D] in fp32 from positions [3, K, P] (lvr.graphs.mrope_angles). `sin` carries the
    sign of rotate-half (negative on the first half), so the rotation is x·cos + roll(x, D / 2)·sin."""
    angles = mrope_angles(pos, inv_freq, sections)
    half = angles.shape[-1] // 2
    sin = angles.sin() * scale
    return angles.cos() * scale, torch.cat([-sin[..., :half], sin[..., half:]], -1)


def prefill_layer(x: torch.Tensor, ln1, qkv_w, qkv_b, o_w, ln2, gu_w, down_w, cos: torch.Tensor, sin: torch.Tensor,
                  eps: float, n_heads: int, n_kv: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One decoder layer over whole prompts: x [K, P, H] fp32 (right-padded rows: causal attention keeps each real
    position to its own prompt's tokens). Returns the stream after the layer and the layer's rotated keys and values
    [K, kv_heads, P, D] in the compute dtype."""
    K, P, H = x.shape
    D = H // n_heads
    dt = qkv_w.dtype
    normed = F.rms_norm(x, (H,), ln1, eps).to(dt)
    qkv = F.linear(normed, qkv_w, qkv_b).view(K, P, n_heads + 2 * n_kv, D)
    qk = qkv[:, :, :n_heads + n_kv].to(torch.float32)
    qk = (qk * cos[:, :, None] + qk.roll(D // 2, -1) * sin[:, :, None]).to(dt).transpose(1, 2)
    q, k = qk[:, :n_heads], qk[:, n_heads:]
    v = qkv[:, :, n_heads + n_kv:].transpose(1, 2)
    rep = n_heads // n_kv
    att = F.scaled_dot_product_attention(q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1), is_causal=True)
    x = x + F.linear(att.transpose(1, 2).reshape(K, P, H), o_w)
    normed = F.rms_norm(x, (H,), ln2, eps).to(dt)
    gate, up = F.linear(normed, gu_w).chunk(2, -1)
    return x + F.linear(F.silu(gate) * up, down_w), k, v


def prefill_outputs(x: torch.Tensor, last: torch.Tensor, norm: torch.Tensor, head: torch.Tensor, eps: float
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each prompt's last real position: final-norm hidden state [K, H] fp32 and fp32 logits [K, V]."""
    h = F.rms_norm(x[torch.arange(x.shape[0], device=x.device), last], (x.shape[-1],), norm, eps)
    return h, F.linear(h.to(head.dtype), head).to(torch.float32)


@functools.cache
def _compiled_block_forward(block_type: type):
    return torch.compile(block_type.forward, dynamic=True)


@contextlib.contextmanager
def compiled_vision_blocks(model, enabled: bool = True):
    """While inside, every vision block's forward runs through one compiled function (identical blocks share its
    graph; image sizes are dynamic shapes). Outside, the blocks are as before (the learning step is untouched)."""
    blocks = list(model.model.visual.blocks) if enabled else []
    for blk in blocks:
        blk.forward = functools.partial(_compiled_block_forward(type(blk)), blk)
    try:
        yield
    finally:
        for blk in blocks:
            del blk.forward

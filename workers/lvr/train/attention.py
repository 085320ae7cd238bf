"""Optional attention backend `flash_varlen_torch`: PyTorch's built-in variable-length flash attention
(`torch.nn.attention.varlen.varlen_attn`, no flash-attn package) registered with transformers.

Why: with `sdpa`, Qwen2.5-VL's vision tower runs one attention call per 8x8-patch window (thousands of small
kernels per packed batch) and a flat packed text row needs a dense block-diagonal mask. With a "flash"-named backend
transformers passes window boundaries (`cu_seq_lens_q`) to the vision blocks and per-instance text positions to the
decoder, so each layer is a single varlen kernel. Selected with `--set attn_implementation=flash_varlen_torch`
(stage 1 requires packing_mode=flat: padded rows are not supported). On CPU, or for KV-cache decode steps, the same
segments run through SDPA, which is how the tests check the plumbing.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F

NAME = "flash_varlen_torch"


def _segments(B: int, S: int, device, position_ids=None, cu=None) -> tuple[torch.Tensor, int]:
    src = cu if cu is not None else position_ids
    if src is not None:
        hit = _SEGMENTS.get(src, B * S)
        if hit is not None:
            return hit
    if cu is not None:
        cu = cu.to(device=device, dtype=torch.int32)
    elif position_ids is not None:
        flat = position_ids.reshape(-1)
        starts = (flat == 0).nonzero().flatten()
        if starts.numel() == 0 or int(starts[0]) != 0:
            starts = torch.cat([torch.zeros(1, dtype=starts.dtype, device=device), starts])
        cu = torch.cat([starts, torch.tensor([B * S], device=device)]).to(torch.int32)
    else:
        cu = torch.arange(0, B * S + 1, S, device=device, dtype=torch.int32)
    out = cu, int((cu[1:] - cu[:-1]).max())
    if src is not None:
        _SEGMENTS.put(src, B * S, out)
    return out


class _SegmentCache:
    """Segment boundaries per source tensor (the text rows' position ids, the vision tower's window / full
    cu_seqlens), so that the host sync for `max_len` happens once per forward instead of once per layer (every
    decoder layer, its recompute and every vision block see the same tensor objects). Keyed by identity through a
    weak reference plus the tensor's version counter and length, so a freed or modified tensor never hits."""

    def __init__(self, size: int = 8):
        import weakref

        self._weakref, self.size, self.items, self.misses = weakref.ref, size, [], 0

    def get(self, src: torch.Tensor, total: int):
        for ref, version, n, val in self.items:
            if ref() is src and version == src._version and n == total:
                return val
        self.misses += 1
        return None

    def put(self, src: torch.Tensor, total: int, val) -> None:
        try:
            ref = self._weakref(src)
        except TypeError:
            return
        self.items = [it for it in self.items if it[0]() is not None][-(self.size - 1):]
        self.items.append((ref, src._version, total, val))


_SEGMENTS = _SegmentCache()


def available() -> bool:
    """Whether this torch has the varlen flash kernel (torch >= 2.10) and a CUDA device to run it."""
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


def varlen_attention(module, query, key, value, attention_mask=None, scaling=None, dropout=0.0, position_ids=None,
                     cu_seq_lens_q=None, max_length_q=None, is_causal=None, **kwargs):
    """transformers attention interface: q/k/v [B, heads, S, D] -> ([B, S, heads, D], None)."""
    if attention_mask is not None and not bool(attention_mask.bool().all()):
        raise ValueError(f"{NAME} does not support padded rows; use packing_mode=flat")
    causal = getattr(module, "is_causal", True) if is_causal is None else is_causal
    B, Hq, S, D = query.shape
    Hk, Sk = key.shape[1], key.shape[2]
    if S != Sk:  # KV-cache decode step: the new queries see the whole cache
        out = F.scaled_dot_product_attention(query, key, value, scale=scaling, enable_gqa=Hq != Hk)
        return out.transpose(1, 2).contiguous(), None
    if cu_seq_lens_q is not None and isinstance(max_length_q, int):
        cu, max_len = cu_seq_lens_q, max_length_q   # from the host plan (lvr.train.host_plan): no host sync
    else:
        cu, max_len = _segments(B, S, query.device, position_ids, cu_seq_lens_q)
    q = query.transpose(1, 2).reshape(B * S, Hq, D)
    k = key.transpose(1, 2).reshape(B * S, Hk, D)
    v = value.transpose(1, 2).reshape(B * S, Hk, D)
    if query.device.type == "cuda" and query.dtype in (torch.bfloat16, torch.float16):
        from torch.nn.attention.varlen import varlen_attn

        out = _call_varlen(varlen_attn, q, k, v, cu, max_len, scaling, causal)
    else:
        parts = []
        bounds = cu.tolist()
        for a, b in zip(bounds[:-1], bounds[1:]):
            o = F.scaled_dot_product_attention(q[a:b].transpose(0, 1)[None], k[a:b].transpose(0, 1)[None],
                                               v[a:b].transpose(0, 1)[None], is_causal=causal, scale=scaling,
                                               enable_gqa=Hq != Hk)
            parts.append(o[0].transpose(0, 1))
        out = torch.cat(parts, 0)
    return out.reshape(B, S, Hq, D), None


def _call_varlen(varlen_attn, q, k, v, cu, max_len, scaling, causal):
    """torch's varlen API grew over releases (2.11 has `is_causal` and no GQA; later ones `window_size` and
    `enable_gqa`): pass what this torch accepts, repeating KV heads where it cannot group them itself."""
    params = inspect.signature(varlen_attn).parameters
    kwargs = {"scale": scaling}
    if q.shape[1] != k.shape[1]:
        if "enable_gqa" in params:
            kwargs["enable_gqa"] = True
        else:
            repeat = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
    if "window_size" in params:
        kwargs["window_size"] = (-1, 0) if causal else (-1, -1)
    else:
        kwargs["is_causal"] = causal
    return varlen_attn(q, k, v, cu, cu, max_len, max_len, **kwargs)


def use_varlen(model, text: bool = True, vision: bool = True) -> None:
    """Switch a loaded model's text decoder and/or vision tower to this backend. Set after loading because
    transformers would try to import a flash-attn package for any "flash" name passed to from_pretrained."""
    register()
    configs = ([model.config, model.config.get_text_config()] if text else []) + \
        ([model.config.vision_config] if vision else [])
    for cfg in {id(c): c for c in configs}.values():
        cfg._attn_implementation_internal = NAME


def register() -> str:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, flash_attention_mask

    AttentionInterface.register(NAME, varlen_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, flash_attention_mask)
    return NAME

"""Qwen2.5-VL M-RoPE position ids for image+text prompts (LVR-SPEC Appendix A), on the host."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .tokens import IMAGE_PAD_ID


def rope_index(input_ids: Sequence[int], image_grids: Sequence[Sequence[int]], attention_mask: Sequence[int] | None = None,
               spatial_merge_size: int = 2, image_pad_id: int = IMAGE_PAD_ID) -> tuple[np.ndarray, int]:
    """Position ids [3, S] (int64) and rope_delta for one row.

    Padding (attention_mask 0) gets position 1 on all axes (transformers' convention) and is not counted.
    Each run of consecutive `<|image_pad|>` tokens consumes the next grid (t, h, w) of `image_grids`.
    """
    ids = list(input_ids)
    mask = [1] * len(ids) if attention_mask is None else list(attention_mask)
    pos = np.ones((3, len(ids)), dtype=np.int64)
    real = [i for i, m in enumerate(mask) if m]
    grids = iter(image_grids)
    p = 0
    k = 0
    max_pos = -1
    while k < len(real):
        i = real[k]
        if ids[i] != image_pad_id:
            pos[:, i] = p
            max_pos = max(max_pos, p)
            p += 1
            k += 1
            continue
        t, gh, gw = (int(v) for v in next(grids))
        lh, lw = gh // spatial_merge_size, gw // spatial_merge_size
        n = t * lh * lw
        span = real[k:k + n]
        if len(span) != n or any(ids[j] != image_pad_id for j in span):
            raise ValueError(f"image grid {(t, gh, gw)} needs {n} consecutive <|image_pad|> tokens")
        for q, j in enumerate(span):
            tt, rem = divmod(q, lh * lw)
            r, c = divmod(rem, lw)
            pos[0, j], pos[1, j], pos[2, j] = p + tt, p + r, p + c
        max_pos = max(max_pos, int(pos[:, span].max()))
        p += max(lh, lw)
        k += n
    delta = max_pos + 1 - len(real)
    return pos, int(delta)


def decode_position(cache_index: int, rope_delta: int) -> np.ndarray:
    """Position ids [3, 1] of the token at cache index c (number of real tokens before it): c + delta on all axes."""
    return np.full((3, 1), cache_index + rope_delta, dtype=np.int64)

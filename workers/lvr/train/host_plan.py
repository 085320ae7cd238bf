"""Host-side indexing of a flat packed stage-1 micro-batch, computed in the data prefetcher thread (lever `host_plan`).

Without it every step starts with data-dependent work on the GPU that needs host round trips before the first
matmul: M-RoPE positions per instance (`get_rope_index`: `.tolist()` per instance), the vision tower's window
permutation, rotary positions and cu_seqlens (Python loops over `grid_thw.tolist()`), the image-feature split sizes,
`max_seqlen` of every varlen segment list, boolean-mask gathers of the CE rows and latent slots (`nonzero`) and the
packed-sequence check of the causal-mask builder. Each one drains the GPU queue. Here all of it is derived from the
token ids and image grids on the CPU, while the GPU runs the previous step; the step then only indexes with tensors
that arrived by non-blocking copies and Python ints, so the host can queue the whole step without waiting.

`plan_batch(batch, spec)` adds `batch["plan"]` (a dict of CPU tensors and ints) to a batch collated in `flat` mode;
`losses.sft_loss` uses it when present and gives the same loss (tests/train/test_sft_levers.py).
"""

from __future__ import annotations

import numpy as np
import torch

from .. import tokens as T
from ..vision_inputs import VisionGeometry

IGNORE = -100


def mrope_positions(ids: np.ndarray, grids: list[tuple[int, int, int]], merge: int) -> np.ndarray:
    """Qwen2.5-VL M-RoPE positions [3, n] of one instance (transformers' get_rope_index for images, vectorised):
    text runs count up on all three axes; each run of `<|image_pad|>` takes the next grid (t, h, w) and gets
    start + (t, row, col) of the merged grid; the text after it starts at start + max(h, w) / merge."""
    n = len(ids)
    pos = np.empty((3, n), dtype=np.int64)
    is_img = ids == T.IMAGE_PAD_ID
    # run boundaries: indices where the image/text kind changes
    change = np.flatnonzero(np.diff(is_img.astype(np.int8))) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [n]])
    grid_iter = iter(grids)
    p = 0
    for a, b in zip(starts.tolist(), ends.tolist()):
        if not is_img[a]:
            pos[:, a:b] = np.arange(p, p + b - a)[None, :]
            p += b - a
            continue
        t, gh, gw = (int(x) for x in next(grid_iter))
        lh, lw = gh // merge, gw // merge
        if t * lh * lw != b - a:
            raise ValueError(f"image grid {(t, gh, gw)} needs {t * lh * lw} consecutive <|image_pad|> tokens, "
                             f"found {b - a}")
        q = np.arange(b - a)
        tt, rem = np.divmod(q, lh * lw)
        r, c = np.divmod(rem, lw)
        pos[0, a:b], pos[1, a:b], pos[2, a:b] = p + tt, p + r, p + c
        p += max(lh, lw)
    return pos


def _cu(lengths) -> torch.Tensor:
    return torch.from_numpy(np.concatenate([[0], np.cumsum(np.asarray(lengths, dtype=np.int64))]).astype(np.int32))


def _max_len(cu: torch.Tensor) -> int:
    return int((cu[1:] - cu[:-1]).max()) if cu.numel() > 1 else 0


def vision_plan(grid: torch.Tensor, spec: VisionGeometry) -> dict:
    """Rotary positions, window permutation and cu_seqlens of the vision tower for these image grids, on the CPU
    (transformers' own helpers, which take them precomputed as keyword arguments of the vision forward)."""
    from transformers.vision_utils import get_vision_cu_seqlens, get_vision_position_ids, get_vision_window_index

    grid = grid.to("cpu", torch.long)
    cu = get_vision_cu_seqlens(grid).to(torch.int32)
    window_index, cu_window = get_vision_window_index(grid, spec.spatial_merge_size, spec.window_size,
                                                      spec.patch_size)
    return {"position_ids": get_vision_position_ids(grid, spec.spatial_merge_size), "cu_seqlens": cu,
            "max_seqlen": _max_len(cu), "window_index": window_index, "cu_window_seqlens": cu_window.to(torch.int32),
            "max_window_seqlen": _max_len(cu_window)}


def plan_batch(batch: dict, spec: VisionGeometry) -> dict:
    """`batch` (collated flat: one row, `seq_lens`, `images_per_seq`) plus `plan`. Batches of other modes are
    returned unchanged (the step then derives everything on the device, as before)."""
    if batch.get("seq_lens") is None or batch["input_ids"].shape[0] != 1:
        return batch
    ids = batch["input_ids"][0].numpy()
    labels = batch["labels"][0].numpy()
    grids = [tuple(g) for g in batch["image_grid_thw"].tolist()]
    parts, g0, start = [], 0, 0
    for n, k in zip(batch["seq_lens"], batch["images_per_seq"]):
        parts.append(mrope_positions(ids[start:start + n], grids[g0:g0 + k], spec.spatial_merge_size))
        start, g0 = start + n, g0 + k
    text = np.concatenate([np.arange(n) for n in batch["seq_lens"]])
    positions = np.concatenate([text[None, :], np.concatenate(parts, axis=1)], axis=0)[:, None, :]
    nxt = labels[1:]
    ce_rows = np.flatnonzero((nxt != IGNORE) & (nxt != T.LVR_ID))
    lvr_slots = np.flatnonzero(ids == T.LVR_ID)
    cu_text = _cu(batch["seq_lens"])
    plan = {
        "positions": torch.from_numpy(np.ascontiguousarray(positions)),
        "cu_seqlens": cu_text, "max_seqlen": _max_len(cu_text),
        "image_slots": torch.from_numpy(np.flatnonzero(ids == T.IMAGE_PAD_ID)),
        "lvr_slots": torch.from_numpy(lvr_slots),
        "ce_rows": torch.from_numpy(ce_rows), "ce_labels": torch.from_numpy(nxt[ce_rows].astype(np.int64)),
        "n_ce": int(ce_rows.size), "n_lvr": int(lvr_slots.size), "tokens": int(ids.size),
        "vision": vision_plan(batch["image_grid_thw"], spec),
    }
    return {**batch, "plan": plan}


def tensors_to(value, device, non_blocking: bool = True):
    """Tensors of a (nested) batch dict on `device`; everything else as is."""
    if torch.is_tensor(value):
        return value.to(device, non_blocking=non_blocking)
    if isinstance(value, dict):
        return {k: tensors_to(v, device, non_blocking) for k, v in value.items()}
    return value


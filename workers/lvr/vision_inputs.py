"""Host-side inputs of the exported vision graph (docs/bundle-format.md, "Graph: vision.onnx").

Everything that transformers derives from `grid_thw` with Python loops (window permutation, window grouping, rotary
position ids) is computed here, once per image, and passed to the graph as tensors. The TypeScript engine ports
exactly this file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VisionGeometry:
    """Vision-tower constants that the host computation needs."""

    spatial_merge_size: int = 2
    window_size: int = 112
    patch_size: int = 14

    @property
    def patches_per_window(self) -> int:
        """Patches of a full attention window (64 for Qwen2.5-VL: 112 px windows of 14 px patches)."""
        m = self.spatial_merge_size
        return (self.window_size // m // self.patch_size * m) ** 2

    @classmethod
    def from_config(cls, vision_config) -> "VisionGeometry":
        return cls(int(vision_config.spatial_merge_size), int(vision_config.window_size), int(vision_config.patch_size))


def rotary_pos_ids(grid_h: int, grid_w: int, m: int = 2) -> np.ndarray:
    """(row, col) per patch in processor order (block-major over m x m merge blocks): int64 [N, 2]."""
    out = np.empty((grid_h * grid_w, 2), dtype=np.int64)
    k = 0
    for br in range(grid_h // m):
        for bc in range(grid_w // m):
            for ir in range(m):
                for ic in range(m):
                    out[k] = (br * m + ir, bc * m + ic)
                    k += 1
    return out


def window_layout(grid_h: int, grid_w: int, geo: VisionGeometry = VisionGeometry()) -> tuple[np.ndarray, np.ndarray]:
    """`window_index` int64 [M] (merge units in window order) and `window_ids` int64 [N] (per patch, window order)."""
    m = geo.spatial_merge_size
    ws = geo.window_size // m // geo.patch_size
    lh, lw = grid_h // m, grid_w // m
    pad_h = ws - lh % ws
    pad_w = ws - lw % ws
    nwh, nww = (lh + pad_h) // ws, (lw + pad_w) // ws
    index: list[int] = []
    ids: list[int] = []
    w = 0
    for wy in range(nwh):
        for wx in range(nww):
            members = [r * lw + c
                       for r in range(wy * ws, min(wy * ws + ws, lh))
                       for c in range(wx * ws, min(wx * ws + ws, lw))]
            if not members:
                continue
            index.extend(members)
            ids.extend([w] * (len(members) * m * m))
            w += 1
    return np.asarray(index, dtype=np.int64), np.asarray(ids, dtype=np.int64)


def window_slots(window_ids: np.ndarray, slots_per_window: int) -> tuple[np.ndarray, np.ndarray]:
    """The windows as a padded batch: `window_slots` int64 [W, S] (each slot's patch row in window order, -1 for
    padding) and `patch_slots` int64 [N] (each patch row's flat slot w * S + rank), so that window attention is W
    attentions over S = patches of a full window instead of one N x N attention with a mask."""
    n = len(window_ids)
    starts = np.flatnonzero(np.r_[True, window_ids[1:] != window_ids[:-1]]) if n else np.zeros(0, np.int64)
    lengths = np.diff(np.r_[starts, n])
    if lengths.size and lengths.max() > slots_per_window:
        raise ValueError(f"a window holds {lengths.max()} patches, more than {slots_per_window} slots")
    slots = np.full((len(starts), slots_per_window), -1, dtype=np.int64)
    patch_slots = np.empty(n, dtype=np.int64)
    for w, (start, length) in enumerate(zip(starts, lengths)):
        slots[w, :length] = np.arange(start, start + length)
        patch_slots[start:start + length] = w * slots_per_window + np.arange(length)
    return slots, patch_slots


def vision_host_inputs(grid_thw: tuple[int, int, int], geo: VisionGeometry = VisionGeometry()) -> dict[str, np.ndarray]:
    """Every non-pixel input of `vision.onnx` for one image with grid (1, gh, gw): the windowed graph takes
    `window_slots` and `patch_slots`, graphs exported before it `window_ids` (feed only the names a graph has)."""
    t, gh, gw = (int(v) for v in grid_thw)
    if t != 1:
        raise ValueError(f"one still image per vision call (t=1), got t={t}")
    if gh % geo.spatial_merge_size or gw % geo.spatial_merge_size:
        raise ValueError(f"grid {gh}x{gw} not divisible by merge size {geo.spatial_merge_size}")
    window_index, window_ids = window_layout(gh, gw, geo)
    slots, patch_slots = window_slots(window_ids, geo.patches_per_window)
    return {
        "rotary_pos_ids": rotary_pos_ids(gh, gw, geo.spatial_merge_size),
        "window_index": window_index,
        "reverse_window_index": np.argsort(window_index, kind="stable").astype(np.int64),
        "window_ids": window_ids,
        "window_slots": slots,
        "patch_slots": patch_slots,
    }

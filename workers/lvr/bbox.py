"""Image resize rule and bbox -> latent-token indices (LVR-SPEC §2.2 and §2.5)."""

from __future__ import annotations

import math

#: Stage-1 training bounds (LVR-SPEC §2.2).
STAGE1_MIN_PIXELS = 128 * 28 * 28
STAGE1_MAX_PIXELS = 5120 * 28 * 28


def smart_resize(height: int, width: int, factor: int = 28, min_pixels: int = 56 * 56,
                 max_pixels: int = 28 * 28 * 1280) -> tuple[int, int]:
    """Qwen2-VL `smart_resize`: returns (height, width), both multiples of `factor` (Python banker's rounding)."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"absolute aspect ratio must be smaller than 200, got {max(height, width) / min(height, width)}")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def bbox_to_token_indices(bbox: tuple[float, float, float, float], grid_h: int, grid_w: int) -> list[int]:
    """Merged visual-token indices covered by a normalised bbox (x0, y0, x1, y1), row-major (LVR-SPEC §2.5).

    `grid_h`, `grid_w` are the 14-px patch grid of `image_grid_thw`. May return an empty list (no >=1 guard, as
    upstream).
    """
    x0, y0, x1, y1 = bbox
    x0g = min(max(math.floor(x0 * grid_w), 0), grid_w - 1)
    x1g = min(max(math.ceil(x1 * grid_w), 0), grid_w)
    y0g = min(max(math.floor(y0 * grid_h), 0), grid_h - 1)
    y1g = min(max(math.ceil(y1 * grid_h), 0), grid_h)
    x0t, x1t = x0g // 2, (x1g + 1) // 2
    y0t, y1t = y0g // 2, (y1g + 1) // 2
    w2 = grid_w // 2
    return [yy * w2 + xx for yy in range(y0t, y1t) for xx in range(x0t, x1t)]

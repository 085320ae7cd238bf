"""Image -> pixel_values and chat messages -> prompt token ids (the exact inputs of the reference and the bundle)."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .bbox import smart_resize
from .tokens import IMAGE_PAD_ID

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CHAT_TEMPLATE_PATH = Path(__file__).with_name("chat_template.jinja")


@dataclass(frozen=True)
class ImageConfig:
    """Preprocessing constants (manifest `preprocessing`)."""

    patch_size: int = 14
    temporal_patch_size: int = 2
    merge_size: int = 2
    min_pixels: int = 3136
    max_pixels: int = 12845056
    image_mean: tuple[float, ...] = CLIP_MEAN
    image_std: tuple[float, ...] = CLIP_STD
    rescale_factor: float = 1 / 255
    resample: str = "bicubic"

    def to_json(self) -> dict:
        return {"patch_size": self.patch_size, "temporal_patch_size": self.temporal_patch_size,
                "merge_size": self.merge_size, "min_pixels": self.min_pixels, "max_pixels": self.max_pixels,
                "image_mean": list(self.image_mean), "image_std": list(self.image_std),
                "rescale_factor": self.rescale_factor, "resample": self.resample}

    @classmethod
    def from_json(cls, d: dict) -> "ImageConfig":
        return cls(int(d["patch_size"]), int(d["temporal_patch_size"]), int(d["merge_size"]), int(d["min_pixels"]),
                   int(d["max_pixels"]), tuple(d["image_mean"]), tuple(d["image_std"]), float(d["rescale_factor"]),
                   d.get("resample", "bicubic"))


def load_image(source: Any):
    """PIL RGB image from a PIL image, a path, a `data:` URL, or {"width","height","seed"} (synthetic noise).

    EXIF orientation is applied (`ImageOps.exif_transpose`), as the TS engine's decoder does (sharp `.rotate()`), so
    a rotated JPEG gives the same grid, token count and pixels on both sides.
    """
    from PIL import Image, ImageOps

    if isinstance(source, dict) and "seed" in source:
        rng = np.random.default_rng(int(source["seed"]))
        arr = rng.integers(0, 256, size=(int(source["height"]), int(source["width"]), 3), dtype=np.uint8)
        return Image.fromarray(arr, "RGB")
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, str) and source.startswith("data:"):
        image = Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1])))
    else:
        if isinstance(source, str) and source.startswith("file://"):
            source = source[len("file://"):]
        image = Image.open(source)
    return ImageOps.exif_transpose(image).convert("RGB")


def resized_size(height: int, width: int, cfg: ImageConfig = ImageConfig()) -> tuple[int, int]:
    """(height, width) an image of this size is resized to; its `grid_thw` is (1, height // 14, width // 14)."""
    return smart_resize(height, width, cfg.patch_size * cfg.merge_size, cfg.min_pixels, cfg.max_pixels)


def resized_rgb(image, cfg: ImageConfig = ImageConfig()) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The image resized for the model (PIL bicubic to `resized_size`, skipped when the size is unchanged) as uint8
    [H, W, 3], and its `grid_thw` = (1, H // 14, W // 14): what the vision graph's `image_bytes` input takes."""
    from PIL import Image

    h, w = resized_size(image.height, image.width, cfg)
    if (h, w) != (image.height, image.width):
        image = image.resize((w, h), resample=Image.Resampling.BICUBIC)
    rgb = np.asarray(image, dtype=np.uint8)
    return rgb, rgb_grid(rgb, cfg)


def rgb_grid(rgb: np.ndarray, cfg: ImageConfig = ImageConfig()) -> tuple[int, int, int]:
    """`grid_thw` of a resized uint8 [H, W, 3] image: (1, H // 14, W // 14)."""
    return 1, rgb.shape[0] // cfg.patch_size, rgb.shape[1] // cfg.patch_size


def rgb_to_pixel_values(rgb: np.ndarray, cfg: ImageConfig = ImageConfig()) -> np.ndarray:
    """`pixel_values` float32 [gh*gw, 3*2*14*14] of a resized uint8 [H, W, 3] image, as the processor computes them:
    rescaled and normalised per channel in float32, the still image duplicated to a temporal pair, rows in patch order
    (2x2 merge blocks, row-major blocks), each row (channel, frame, y, x)."""
    arr = rgb.astype(np.float32) * np.float32(cfg.rescale_factor)
    arr = (arr - np.asarray(cfg.image_mean, np.float32)) / np.asarray(cfg.image_std, np.float32)
    arr = arr.transpose(2, 0, 1)[None]  # [1, C, H, W]
    tp, ps, m = cfg.temporal_patch_size, cfg.patch_size, cfg.merge_size
    arr = np.repeat(arr, tp, axis=0)
    c, h, w = arr.shape[1:]
    gt, gh, gw = arr.shape[0] // tp, h // ps, w // ps
    x = arr.reshape(gt, tp, c, gh // m, m, ps, gw // m, m, ps)
    x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return np.ascontiguousarray(x.reshape(gt * gh * gw, c * tp * ps * ps), dtype=np.float32)


def image_to_pixel_values(image, cfg: ImageConfig = ImageConfig()) -> tuple[np.ndarray, tuple[int, int, int]]:
    """`pixel_values` float32 [gh*gw, 3*2*14*14] in processor patch order and `grid_thw` = (1, gh, gw)."""
    rgb, grid = resized_rgb(image, cfg)
    return rgb_to_pixel_values(rgb, cfg), grid


def render_chat(messages: list[dict], template: str | None = None, add_generation_prompt: bool = True) -> str:
    """Render chat messages with a Qwen2.5-VL chat template (one `<|image_pad|>` per image part)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    tpl = env.from_string(template if template is not None else CHAT_TEMPLATE_PATH.read_text())
    return tpl.render(messages=messages, add_generation_prompt=add_generation_prompt, add_vision_id=False)


@dataclass
class Prompt:
    """Token ids of a prompt with images expanded, plus per-image pixel values, resized RGB arrays and grids (in prompt
    order)."""

    input_ids: list[int]
    pixel_values: list[np.ndarray] = field(default_factory=list)
    image_grids: list[tuple[int, int, int]] = field(default_factory=list)
    text: str = ""
    rgb: list[np.ndarray] = field(default_factory=list)


def image_parts(messages: list[dict]) -> list[Any]:
    out = []
    for msg in messages:
        if isinstance(msg.get("content"), list):
            for part in msg["content"]:
                if part.get("type") == "image":
                    out.append(part.get("image"))
                elif part.get("type") == "image_url":
                    url = part["image_url"]
                    out.append(url["url"] if isinstance(url, dict) else url)
    return out


def build_prompt(messages: list[dict], tokenizer, template: str | None = None, image_cfg: ImageConfig = ImageConfig(),
                 assistant_prefix: str = "") -> Prompt:
    """Chat template -> ids; each `<|image_pad|>` expanded to (gh/2)*(gw/2) copies. `tokenizer`: tokenizers.Tokenizer."""
    text = render_chat(messages, template) + assistant_prefix
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    pixel_values, rgbs, grids = [], [], []
    for src in image_parts(messages):
        rgb, grid = resized_rgb(load_image(src), image_cfg)
        rgbs.append(rgb)
        pixel_values.append(rgb_to_pixel_values(rgb, image_cfg))
        grids.append(grid)
    out: list[int] = []
    it = iter(grids)
    for tid in ids:
        if tid == IMAGE_PAD_ID:
            t, gh, gw = next(it)
            out.extend([IMAGE_PAD_ID] * (t * gh * gw // image_cfg.merge_size**2))
        else:
            out.append(tid)
    if next(it, None) is not None:
        raise ValueError("more images than <|image_pad|> placeholders in the rendered prompt")
    return Prompt(out, pixel_values, grids, text, rgbs)

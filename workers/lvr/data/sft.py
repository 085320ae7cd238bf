"""One stage-1 training sample (LVR-SPEC §2.3 sequence, §2.4 `<lvr>` expansion, §2.5 bbox mapping, §2.6 labels).

Sequence (tokenised piecewise, no chat template, no BOS)::

    <|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n                       labels -100
    <|im_start|>user\\n{USER}<|im_end|>\\n<|im_start|>assistant\\n                         labels -100
    {ASSISTANT}<|im_end|>\\n                                                            labels = ids

with `\\n?<image>\\n?` -> `<|vision_start|><|image_pad|>*N<|vision_end|>` in USER and each `<lvr>` in ASSISTANT ->
`<|lvr_start|><|lvr|>*n<|lvr_latent_end|><|lvr_end|>`, n = visual tokens covered by the bbox. `<|lvr|>` labels are
-100; every other assistant token (the LVR delimiters, the answer, `<|im_end|>`, the trailing newline) is a CE target.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from .. import tokens as T
from ..bbox import STAGE1_MAX_PIXELS, STAGE1_MIN_PIXELS, bbox_to_token_indices
from ..preprocess import ImageConfig, image_to_pixel_values
from .errors import DataError
from .images import open_image
from .records import LVR_PLACEHOLDER, SftRecord

IGNORE = -100
SYSTEM_PROMPT = "You are a helpful assistant."
_IMAGE_RE = re.compile(r"\n?<image>\n?")


@dataclass(frozen=True)
class SftDataOptions:
    #: Insert `<|lvr_latent_end|>` after the `<|lvr|>` run. Upstream always does (issue #8, §8.2) and the released
    #: checkpoints emit it; False gives the "clean" `<|lvr_start|><|lvr|>*n<|lvr_end|>` block.
    insert_latent_end: bool = True
    #: Keep assistant text before the first `<lvr>` (upstream silently drops it, §8.7). False = upstream behaviour.
    keep_text_before_lvr: bool = True
    min_pixels: int = STAGE1_MIN_PIXELS
    max_pixels: int = STAGE1_MAX_PIXELS


@dataclass
class Sample:
    input_ids: list[int]
    labels: list[int]
    pixel_values: np.ndarray                  # [n_patches, 1176] float32
    image_grid_thw: list[tuple[int, int, int]]
    lvr_index: list[int]                      # per <|lvr|> token: index into this sample's merged visual tokens
    key: tuple[int, int] = (0, 0)             # (dataset, record) for resumable streams
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.input_ids)


def expand_lvr(text: str, counts: list[int], opts: SftDataOptions) -> str:
    """Replace each `<lvr>` with a latent block of counts[i] `<|lvr|>` tokens (§2.4)."""
    parts = text.split(LVR_PLACEHOLDER)
    if len(parts) - 1 != len(counts):
        raise ValueError(f"{len(parts) - 1} <lvr> placeholders for {len(counts)} counts")
    out = parts[0] if opts.keep_text_before_lvr else ""
    for n, seg in zip(counts, parts[1:]):
        out += T.LVR_START + T.LVR * n + (T.LVR_LATENT_END if opts.insert_latent_end else "") + T.LVR_END + seg
    return out


def assemble(codec, turns: list[tuple[str, str]], n_image_tokens: list[int], lvr_counts: list[int],
             opts: SftDataOptions) -> tuple[list[int], list[int]]:
    """Token ids and labels for the conversation (image pads already expanded)."""
    ids: list[int] = []
    labels: list[int] = []

    def add(text: str, supervised: bool):
        piece = codec.encode(text)
        ids.extend(piece)
        labels.extend(piece if supervised else [IGNORE] * len(piece))

    add(f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n", False)
    counts = iter(lvr_counts)
    for user, assistant in turns:
        user = _IMAGE_RE.sub("<|vision_start|><|image_pad|><|vision_end|>", user)
        add(f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n", False)
        k = assistant.count(LVR_PLACEHOLDER)
        add(expand_lvr(assistant, [next(counts) for _ in range(k)], opts) + "<|im_end|>\n", True)
    # expand each <|image_pad|> to its merged-token count
    out_ids, out_labels = [], []
    pads = iter(n_image_tokens)
    for tid, lab in zip(ids, labels):
        if tid == T.IMAGE_PAD_ID:
            n = next(pads)
            out_ids.extend([tid] * n)
            out_labels.extend([IGNORE] * n)
        else:
            out_ids.append(tid)
            out_labels.append(IGNORE if tid == T.LVR_ID else lab)
    return out_ids, out_labels


def build_sft_sample(record: SftRecord, codec, image_folder: str, opts: SftDataOptions = SftDataOptions(),
                     key: tuple[int, int] = (0, 0)) -> Sample:
    cfg = ImageConfig(min_pixels=opts.min_pixels, max_pixels=opts.max_pixels)
    pvs, grids, n_tokens = [], [], []
    for rel in record.images:
        img = open_image(image_folder, rel, source=record.source, index=record.index)
        try:
            pv, grid = image_to_pixel_values(img, cfg)
        except ValueError as e:  # aspect ratio > 200
            raise DataError(str(e), source=record.source, index=record.index, field="image") from e
        pvs.append(pv)
        grids.append(tuple(int(g) for g in grid))
        n_tokens.append(grid[0] * grid[1] * grid[2] // 4)
    _, gh, gw = grids[0]
    lvr_index: list[int] = []
    counts = []
    for b in record.bboxes:
        idx = bbox_to_token_indices(b, gh, gw)
        lvr_index.extend(idx)
        counts.append(len(idx))
    ids, labels = assemble(codec, record.turns, n_tokens, counts, opts)
    if sum(1 for t in ids if t == T.LVR_ID) != len(lvr_index):
        raise DataError("the text already contains <|lvr|> tokens", source=record.source, index=record.index,
                        field="conversations")
    return Sample(ids, labels, np.concatenate(pvs, 0), grids, lvr_index, key,
                  {"source": record.source, "index": record.index})

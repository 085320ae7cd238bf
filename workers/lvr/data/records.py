"""Record formats (LVR-SPEC §2.1 stage 1, §2.8 stage 2) with validation that names the record and field at fault.

Stage-1 record (LLaVA style)::

    {"image": "rel/path.jpg" | ["rel/path.jpg"],
     "conversations": [{"from": "human", "value": "<image>\\nQ..."}, {"from": "gpt", "value": "<lvr>\\n<answer>..</answer>"}],
     "bboxes": [[x0, y0, x1, y1], ...]}          # normalised to [0, 1]; one per `<lvr>` placeholder, in order

Meta JSON (several datasets, sampled in proportion to their lengths)::

    [{"data_path": "a.json", "image_folder": "imgs/", "ds_name": "viscot"}, ...]

Stage-2 record: {"image": ..., "conversations": [{"from": "human", "value": Q}, {"from": "gpt", "value": "<answer>4</answer>"}]}
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import DataError

IMAGE_PLACEHOLDER = "<image>"
LVR_PLACEHOLDER = "<lvr>"
ROLES = ("human", "gpt")


@dataclass
class SftRecord:
    source: str
    index: int
    images: list[str]
    turns: list[tuple[str, str]]          # (user text, assistant text) pairs
    bboxes: list[tuple[float, float, float, float]]
    image_folder: str = ""
    raw: dict = field(default_factory=dict, repr=False)


@dataclass
class GrpoRecord:
    source: str
    index: int
    images: list[str]
    question: str
    solution: str
    image_folder: str = ""


@dataclass
class DatasetEntry:
    data_path: str
    image_folder: str
    ds_name: str


def parse_json_records(text: str, source: str) -> list[Any]:
    """A JSON array, or JSON lines (one object per line)."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"invalid JSON ({e})", source=source) from e
        return data
    out = []
    for n, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise DataError(f"invalid JSON line ({e})", source=source, index=len(out)) from e
    if not out:
        raise DataError("no records", source=source)
    return out


def is_meta(data: list[Any]) -> bool:
    return bool(data) and isinstance(data[0], dict) and "data_path" in data[0]


def parse_meta(data: list[Any], source: str) -> list[DatasetEntry]:
    entries = []
    for i, e in enumerate(data):
        if not isinstance(e, dict):
            raise DataError("meta entry must be an object", source=source, index=i)
        for key in ("data_path", "image_folder"):
            if not isinstance(e.get(key), str) or (key == "data_path" and not e[key]):
                raise DataError("must be a non-empty string" if key == "data_path" else "must be a string",
                                source=source, index=i, field=key)
        entries.append(DatasetEntry(e["data_path"], e["image_folder"], str(e.get("ds_name", f"ds{i}"))))
    if not entries:
        raise DataError("meta JSON lists no datasets", source=source)
    return entries


def _images(raw: dict, source: str, index: int, required: bool) -> list[str]:
    img = raw.get("image")
    if img is None:
        if required:
            raise DataError("missing", source=source, index=index, field="image")
        return []
    imgs = [img] if isinstance(img, str) else img
    if not isinstance(imgs, list) or not all(isinstance(x, str) and x for x in imgs):
        raise DataError("must be a non-empty string or a list of them", source=source, index=index, field="image")
    if len(imgs) != 1:
        raise DataError(f"exactly one image per sample is supported (LVR-SPEC §2.3), got {len(imgs)}",
                        source=source, index=index, field="image")
    return imgs


def _conversations(raw: dict, source: str, index: int) -> list[tuple[str, str]]:
    conv = raw.get("conversations")
    if not isinstance(conv, list) or len(conv) < 2:
        raise DataError("must be a list of at least 2 messages", source=source, index=index, field="conversations")
    if len(conv) % 2:
        raise DataError("must hold (human, gpt) pairs; got an odd number of messages", source=source, index=index,
                        field="conversations")
    turns = []
    for j, msg in enumerate(conv):
        fld = f"conversations[{j}]"
        if not isinstance(msg, dict):
            raise DataError("must be an object", source=source, index=index, field=fld)
        if msg.get("from") != ROLES[j % 2]:
            raise DataError(f"'from' must be '{ROLES[j % 2]}', got {msg.get('from')!r}", source=source, index=index,
                            field=fld)
        if not isinstance(msg.get("value"), str):
            raise DataError("'value' must be a string", source=source, index=index, field=fld)
    for j in range(0, len(conv), 2):
        turns.append((conv[j]["value"], conv[j + 1]["value"]))
    return turns


def _bbox(b: Any, source: str, index: int, j: int) -> tuple[float, float, float, float]:
    fld = f"bboxes[{j}]"
    if not isinstance(b, (list, tuple)) or len(b) != 4 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in b):
        raise DataError("must be [x0, y0, x1, y1] numbers", source=source, index=index, field=fld)
    x0, y0, x1, y1 = (float(v) for v in b)
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in (x0, y0, x1, y1)):
        raise DataError(f"coordinates must be normalised to [0, 1], got {list(b)}", source=source, index=index,
                        field=fld)
    if x1 < x0 or y1 < y0:
        raise DataError(f"needs x0 <= x1 and y0 <= y1, got {list(b)}", source=source, index=index, field=fld)
    return x0, y0, x1, y1


def validate_sft_record(raw: Any, source: str, index: int, image_folder: str = "") -> SftRecord:
    if not isinstance(raw, dict):
        raise DataError("record must be an object", source=source, index=index)
    images = _images(raw, source, index, required=True)
    turns = _conversations(raw, source, index)
    n_image_ph = sum(u.count(IMAGE_PLACEHOLDER) for u, _ in turns)
    if n_image_ph != len(images):
        raise DataError(f"has {n_image_ph} '<image>' placeholders for {len(images)} image(s)", source=source,
                        index=index, field="conversations")
    for j, (u, a) in enumerate(turns):
        if LVR_PLACEHOLDER in u:
            raise DataError("'<lvr>' may only appear in gpt messages", source=source, index=index,
                            field=f"conversations[{2 * j}]")
        if IMAGE_PLACEHOLDER in a:
            raise DataError("'<image>' may only appear in human messages", source=source, index=index,
                            field=f"conversations[{2 * j + 1}]")
    raw_boxes = raw.get("bboxes", [])
    if not isinstance(raw_boxes, list):
        raise DataError("must be a list", source=source, index=index, field="bboxes")
    boxes = [_bbox(b, source, index, j) for j, b in enumerate(raw_boxes)]
    n_lvr = sum(a.count(LVR_PLACEHOLDER) for _, a in turns)
    if n_lvr != len(boxes):
        raise DataError(f"{len(boxes)} bbox(es) for {n_lvr} '<lvr>' placeholder(s); need one per placeholder",
                        source=source, index=index, field="bboxes")
    return SftRecord(source, index, images, turns, boxes, image_folder, raw)


def validate_grpo_record(raw: Any, source: str, index: int, image_folder: str = "") -> GrpoRecord:
    if not isinstance(raw, dict):
        raise DataError("record must be an object", source=source, index=index)
    images = _images(raw, source, index, required=True)
    turns = _conversations(raw, source, index)
    if len(turns) != 1:
        raise DataError("stage-2 records hold exactly one (human, gpt) pair", source=source, index=index,
                        field="conversations")
    question, solution = turns[0]
    question = question.replace(IMAGE_PLACEHOLDER, "")  # §2.8: any <image> is deleted; the image goes first
    if not solution.strip():
        raise DataError("ground truth (gpt value) is empty", source=source, index=index, field="conversations[1]")
    return GrpoRecord(source, index, images, question, solution, image_folder)

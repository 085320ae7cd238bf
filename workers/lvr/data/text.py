"""Tokenizer access for training: the `tokenizers` JSON saved in the model folder (LVR tokens included)."""

from __future__ import annotations

from pathlib import Path

from .. import tokens as T

LVR_TOKEN_IDS = (T.LVR_START_ID, T.LVR_ID, T.LVR_LATENT_END_ID, T.LVR_END_ID)


class TextCodec:
    """encode/decode with the LVR conventions: no BOS, special tokens parsed, LVR tokens survive decoding."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.special_ids = {i for i, t in tokenizer.get_added_tokens_decoder().items() if t.special}
        missing = [c for c, i in zip(T.LVR_TOKENS, LVR_TOKEN_IDS) if tokenizer.token_to_id(c) != i]
        if missing:
            raise ValueError(f"tokenizer does not map {missing} to the ids of LVR-SPEC §1.2")

    @classmethod
    def from_dir(cls, model_dir: str | Path) -> "TextCodec":
        from tokenizers import Tokenizer

        path = Path(model_dir) / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found (the model folder must hold tokenizer.json)")
        return cls(Tokenizer.from_file(str(path)))

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        """Decode; with skip_special_tokens the LVR tokens are kept (stage-2 `normalize_special_tokens`, §1.2)."""
        ids = [int(i) for i in ids]
        if skip_special_tokens:
            ids = [i for i in ids if i not in self.special_ids or i in LVR_TOKEN_IDS]
        return self.tok.decode(ids, skip_special_tokens=False)

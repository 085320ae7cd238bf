"""Oracle: Python `tokenizers` encode/decode for the TypeScript tokenizer parity test.

Input JSON: {"base": tokenizer.json path, "out": path to write the LVR tokenizer, "strings": [...],
"decode": [[ids...], ...]}. Adds the four LVR tokens the way training does (special, not normalized), saves the
tokenizer to "out", and prints {"encode": [[ids]], "decode": [text], "decode_skip": [text]}.
"""
import json
import sys

from tokenizers import AddedToken, Tokenizer

LVR_TOKENS = ["<|lvr_start|>", "<|lvr|>", "<|lvr_latent_end|>", "<|lvr_end|>"]


def well_formed(s: str) -> str:
    # JSON gives lone surrogates as single chars; UTF-8 transport replaces each with U+FFFD.
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in s)


def main() -> None:
    payload = json.load(open(sys.argv[1], encoding="utf-8"))
    tok = Tokenizer.from_file(payload["base"])
    if payload.get("out"):
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in LVR_TOKENS])
        tok.save(payload["out"])
    strings = [well_formed(s) for s in payload.get("strings", [])]
    enc = tok.encode_batch(strings, add_special_tokens=False) if strings else []
    dec = payload.get("decode", [])
    out = {
        "encode": [e.ids for e in enc],
        "decode": tok.decode_batch(dec, skip_special_tokens=False) if dec else [],
        "decode_skip": tok.decode_batch(dec, skip_special_tokens=True) if dec else [],
    }
    json.dump(out, sys.stdout, ensure_ascii=True)


if __name__ == "__main__":
    main()

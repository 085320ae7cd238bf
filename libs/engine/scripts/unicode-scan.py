"""Scans every code point with Python `tokenizers` (Rust/Oniguruma Unicode data) and prints its classes as JSON.

Used by gen-unicode-compat.ts to emit src/tokenizer/unicode-compat.ts: the tables where the Rust side's (older)
Unicode data differs from Node's ICU. Classes: L (letter), N (number), W (white space), C (canonical combining class
> 0 for NFC reordering), D (has a canonical decomposition).
"""
import json
import sys

from tokenizers import normalizers, pre_tokenizers, Regex

split = lambda pat: pre_tokenizers.Split(Regex(pat), behavior="isolated")
letter = split(r"\p{L}")
number = split(r"\p{N}")
space = split(r"\s")
nfc = normalizers.NFC()
nfd = normalizers.NFD()

out = {"L": [], "N": [], "W": [], "C": [], "D": []}
for cp in range(0x110000):
    if 0xD800 <= cp <= 0xDFFF:
        continue
    c = chr(cp)
    # A class pattern yields the char as its own matched piece; we detect a match by the piece count on "c c".
    if len(letter.pre_tokenize_str("!" + c + "!")) == 3:
        out["L"].append(cp)
    if len(number.pre_tokenize_str("!" + c + "!")) == 3:
        out["N"].append(cp)
    if len(space.pre_tokenize_str("!" + c + "!")) == 3:
        out["W"].append(cp)
    if nfd.normalize_str(c) != c:
        out["D"].append(cp)
    # With U+0345 (ccc 240) before it, any char of ccc in 1..239 is reordered in front of it.
    if cp == 0x345 or nfd.normalize_str("a\u0345" + c) == "a" + nfd.normalize_str(c) + "\u0345":
        out["C"].append(cp)
json.dump(out, sys.stdout)

"""Copy a safetensors file with every floating-point tensor in fp16 and without `lm_head.weight` when it equals the
token embedding (the demo model ties them; the training checkpoint stores both): 22 MB instead of 44 MB to carry
back under the 64 MiB return limit. Loading re-ties the head.  python scripts/demo/half_weights.py SRC DEST"""

from __future__ import annotations

import sys

import torch
from safetensors.torch import load_file, save_file

src, dest = sys.argv[1:3]
tensors = {k: (v.half() if v.is_floating_point() else v) for k, v in load_file(src).items()}
embed = next((v for k, v in tensors.items() if k.endswith("embed_tokens.weight")), None)
if embed is not None and "lm_head.weight" in tensors and torch.equal(tensors["lm_head.weight"], embed):
    del tensors["lm_head.weight"]
save_file(tensors, dest, metadata={"format": "pt"})

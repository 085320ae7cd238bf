"""Copy a safetensors file with every floating-point tensor in fp16 (half the bytes to carry back; the bundle is
exported in fp16 anyway).  python scripts/demo/half_weights.py SRC DEST"""

from __future__ import annotations

import sys

import torch
from safetensors.torch import load_file, save_file

src, dest = sys.argv[1:3]
tensors = {k: (v.half() if v.is_floating_point() else v) for k, v in load_file(src).items()}
save_file(tensors, dest, metadata={"format": "pt"})

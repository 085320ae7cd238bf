"""The demo model's starting point: a tiny Qwen2.5-VL-architecture LVR model with random weights (nothing pretrained
can be fetched here), written as an HF checkpoint folder that stage-1 SFT starts from.

    PYTHONPATH=workers python scripts/demo/init_model.py DEST [--seed N] [--embed-std S] [--rope-theta T]
        [--dim NAME=VALUE ...]

Sizes: the 151,936-token embedding dominates (tied, hidden 64: 19.4 MB in fp16, once in each of the embedding and
decoder graphs), so the text decoder stays narrow while the vision tower, which does the looking, is wider.
Preprocessing keeps every synthetic image (196-280 px, multiples of 28) at its own size: 49-100 visual tokens.

The token embedding (tied to the LM head) is redrawn at std `--embed-std` (0.02, the Qwen2 initializer range). The
test models' unit-variance embedding makes a tied head start with logits of std ~8 (hidden 64): an initial CE of ~41
instead of ln(151936) = 11.9, and early steps spent shrinking 9.7M embedding weights instead of learning the task.

Attention: two heads of 64/2 = 32 dimensions and RoPE base 10,000 (Qwen2.5's 1,000,000 is made for long contexts:
with 16-dimensional heads only two of its eight frequencies turn by more than 0.03 rad per token, too coarse to tell
an option's letter two tokens back from the line before). On the lookup drill (`scripts/demo/lookup_probe.py`) this
decoder learned the letter within ~500 steps; four 16-dimensional heads at base 1,000,000 needed ~2,000.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from lvr.tiny import save_tiny_checkpoint

DEMO_DIMS = dict(hidden=64, layers=4, heads=2, kv_heads=2, intermediate=256,
                 vision_hidden=128, vision_layers=4, vision_heads=4)
MIN_PIXELS = 4 * 28 * 28
MAX_PIXELS = 100 * 28 * 28
#: Qwen2.5-VL's near-greedy defaults (top_k 1) without the repetition penalty: the option letters are all in the
#: prompt, and a penalty on them would only add noise to a four-way choice
GENERATION = {"repetition_penalty": 1.0, "max_new_tokens": 64}


def rescale_embedding(weights: Path, std: float, seed: int) -> None:
    tensors = load_file(str(weights))
    key = next(k for k in tensors if k.endswith("embed_tokens.weight"))
    g = torch.Generator().manual_seed(seed)
    tensors[key] = (torch.randn(tensors[key].shape, generator=g) * std).to(tensors[key].dtype)
    save_file(tensors, str(weights), metadata={"format": "pt"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dest")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--embed-std", type=float, default=0.02, help="std of the tied token embedding (0: keep)")
    ap.add_argument("--rope-theta", type=float, default=10000.0, help="RoPE base of the text decoder")
    ap.add_argument("--dim", action="append", default=[], metavar="NAME=VALUE", help="override a DEMO_DIMS size")
    args = ap.parse_args()
    dims = dict(DEMO_DIMS)
    for item in args.dim:
        name, value = item.split("=", 1)
        if name not in dims:
            raise SystemExit(f"--dim {name}: not one of {sorted(dims)}")
        dims[name] = int(value)
    dest = save_tiny_checkpoint(Path(args.dest), seed=args.seed, **dims)
    if args.embed_std > 0:
        rescale_embedding(dest / "model.safetensors", args.embed_std, args.seed)
    config = json.loads((dest / "config.json").read_text())
    config["text_config"]["rope_parameters"]["rope_theta"] = args.rope_theta
    (dest / "config.json").write_text(json.dumps(config, indent=2))
    pre = json.loads((dest / "preprocessor_config.json").read_text())
    pre.update(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    (dest / "preprocessor_config.json").write_text(json.dumps(pre, indent=2))
    gen = json.loads((dest / "generation_config.json").read_text())
    gen.update(GENERATION)
    (dest / "generation_config.json").write_text(json.dumps(gen, indent=2))
    print(f"initial model -> {dest}")


if __name__ == "__main__":
    main()

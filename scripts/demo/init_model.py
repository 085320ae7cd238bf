"""The demo model's starting point: a tiny Qwen2.5-VL-architecture LVR model with random weights (nothing pretrained
can be fetched here), written as an HF checkpoint folder that stage-1 SFT starts from.

    PYTHONPATH=workers python scripts/demo/init_model.py DEST [--seed N]

Sizes: the 151,936-token embedding dominates (tied, hidden 64: 19.4 MB in fp16, once in each of the embedding and
decoder graphs), so the text decoder stays narrow while the vision tower, which does the looking, is wider.
Preprocessing keeps every synthetic image (196-280 px, multiples of 28) at its own size: 49-100 visual tokens.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lvr.tiny import save_tiny_checkpoint

DEMO_DIMS = dict(hidden=64, layers=4, heads=4, kv_heads=2, intermediate=256,
                 vision_hidden=128, vision_layers=4, vision_heads=4)
MIN_PIXELS = 4 * 28 * 28
MAX_PIXELS = 100 * 28 * 28
#: Qwen2.5-VL's near-greedy defaults (top_k 1) without the repetition penalty: the option letters are all in the
#: prompt, and a penalty on them would only add noise to a four-way choice
GENERATION = {"repetition_penalty": 1.0, "max_new_tokens": 64}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dest")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    dest = save_tiny_checkpoint(Path(args.dest), seed=args.seed, **DEMO_DIMS)
    pre = json.loads((dest / "preprocessor_config.json").read_text())
    pre.update(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    (dest / "preprocessor_config.json").write_text(json.dumps(pre, indent=2))
    gen = json.loads((dest / "generation_config.json").read_text())
    gen.update(GENERATION)
    (dest / "generation_config.json").write_text(json.dumps(gen, indent=2))
    print(f"initial model -> {dest}")


if __name__ == "__main__":
    main()

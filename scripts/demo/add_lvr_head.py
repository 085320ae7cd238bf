"""Copy a demo checkpoint folder with a freshly initialised LVR head added (config `lvr_head: true`, weights
`lvr_head.*`), for latent training on top of a plain-SFT model: the head maps the decoder's post-norm hidden state to
the visual-token space, so the latent loss no longer has to pull the hidden state that also feeds the tied LM head to
the visual tokens' scale (LVR-SPEC §3.3).  python scripts/demo/add_lvr_head.py SRC DEST [--seed N] [--type simple|glu]"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from lvr.model import LVRHead, LVRHeadGLU


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dest")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--type", choices=("simple", "glu"), default="simple")
    args = ap.parse_args()
    src, dest = Path(args.src), Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.name not in ("model.safetensors", "config.json"):
            shutil.copy2(f, dest / f.name)
    config = json.loads((src / "config.json").read_text())
    hidden = config["text_config"]["hidden_size"]
    torch.manual_seed(args.seed)
    head = LVRHead(hidden) if args.type == "simple" else LVRHeadGLU(hidden, config["text_config"]["intermediate_size"])
    tensors = load_file(str(src / "model.safetensors"))
    dtype = next(v.dtype for v in tensors.values() if v.is_floating_point())
    tensors.update({f"lvr_head.{k}": v.to(dtype).contiguous() for k, v in head.state_dict().items()})
    save_file(tensors, str(dest / "model.safetensors"), metadata={"format": "pt"})
    config.update(lvr_head=True, lvr_head_type=args.type)
    (dest / "config.json").write_text(json.dumps(config, indent=2))
    print(f"{dest}: lvr_head ({args.type}, hidden {hidden}) added to {src}")


if __name__ == "__main__":
    main()

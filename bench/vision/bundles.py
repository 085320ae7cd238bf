"""Three fp32 bundles for `npm run bench -- vision` that differ only in their vision.onnx: the exporter's (`bytes/`:
the image's uint8 `image_bytes`, pixel values computed in the graph, MatMul patch embedding), the graph before it
(`floats/`: float32 `pixel_values`, MatMul) and the one before that (`conv/`: float32, the model's Conv3d). The
model: a tiny text decoder with a Qwen2.5-VL-3B-shaped vision tower (width 1280, MLP 3420, 16 heads) of
VISION_LAYERS windowed blocks, random weights, Qwen2.5-VL's image processor defaults (a 1036 px image keeps its size:
5,476 patches).

    python bench/vision/bundles.py DEST [VISION_LAYERS]    -> prints {"bytes": DIR, "floats": DIR, "conv": DIR}
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch

from lvr import bundle as B
from lvr.export import export_bundle, export_vision_graph
from lvr.model import LVRForConditionalGeneration
from lvr.preprocess import ImageConfig
from lvr.tiny import (GENERATION_DEFAULTS, randomize_weights_, tiny_config, write_preprocessor_config,
                      write_tokenizer_files)


def save_checkpoint(dest: Path, vision_layers: int) -> None:
    cfg = tiny_config(vision_hidden=1280, vision_layers=vision_layers, vision_heads=16)
    cfg.vision_config.intermediate_size = 3420
    # Windowed blocks only: a full-attention block over 5,476 patches would dominate both sides on a CPU.
    cfg.vision_config.fullatt_block_indexes = []
    cfg._attn_implementation = "eager"
    model = LVRForConditionalGeneration(cfg)
    randomize_weights_(model, 0)
    model.eval().save_pretrained(dest)
    write_tokenizer_files(dest)
    (dest / "generation_config.json").write_text(json.dumps(GENERATION_DEFAULTS))
    write_preprocessor_config(dest, ImageConfig())  # Qwen2.5-VL's defaults


def main() -> int:
    dest = Path(sys.argv[1])
    vision_layers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    ckpt = dest / "ckpt"
    save_checkpoint(ckpt, vision_layers)
    bundles = {form: dest / form for form in ("bytes", "floats", "conv")}
    export_bundle(str(ckpt), str(bundles["bytes"]), precision="fp32", run_id="bench-vision", log=lambda *a: None)
    model = LVRForConditionalGeneration.from_pretrained(ckpt, torch_dtype=torch.float32).eval()
    for form in ("floats", "conv"):
        shutil.copytree(bundles["bytes"], bundles[form])
        export_vision_graph(model, bundles[form] / "vision.onnx", image_cfg=None, conv_patch_embed=form == "conv")
        B.write_manifest(bundles[form], B.read_manifest(bundles[form]))  # its files' digests again, then the marker
        B.write_marker(bundles[form])
    print(json.dumps({form: str(path) for form, path in bundles.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

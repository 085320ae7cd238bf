#!/usr/bin/env python
"""GPU check of the LVR bundle exporter: a random model with Qwen2.5-VL-3B shapes exported in fp16.

Needs only torch, transformers, onnx, onnxruntime (onnxruntime-gpu for the CUDA EP) and this repository's
`workers/` folder. It measures the export wall time (graph tracing + save), the bundle size, and the max abs/rel
error of onnxruntime vs PyTorch fp32 on the same inputs (two image sizes, prefill + 3 decode steps with a latent
step). Results go to $OUT/export_3b.json (or --out). The last line of stdout is `BENCH {json}`.

    python bench/gpu/export_3b.py                 # 3B shapes, CUDA if available
    python bench/gpu/export_3b.py --tiny --device cpu   # tiny shapes: a quick check of the script itself
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "workers"))


def config_3b():
    from lvr.tiny import tiny_config

    cfg = tiny_config(hidden=2048, layers=36, heads=16, kv_heads=2, intermediate=11008, vision_hidden=1280,
                      vision_layers=32, vision_heads=16, vocab=151936, tie=True)
    rp = dict(cfg.text_config.rope_parameters)
    rp["mrope_section"] = [16, 24, 24]
    cfg.text_config.rope_parameters = rp
    cfg.vision_config.intermediate_size = 3420
    cfg.vision_config.fullatt_block_indexes = [7, 15, 23, 31]
    return cfg


def build_model(tiny: bool, device: str):
    import torch

    from lvr.model import LVRForConditionalGeneration
    from lvr.tiny import make_tiny_model

    if tiny:
        return make_tiny_model(0).to(device), [(1, 8, 12), (1, 6, 4)]
    cfg = config_3b()
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    with torch.device(device):
        model = LVRForConditionalGeneration(cfg)
    model.eval()
    return model, [(1, 32, 32), (1, 20, 28)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true", help="tiny shapes (CPU smoke test of this script)")
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    ap.add_argument("--precision", default="fp16", choices=("fp16", "fp32"))
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--keep", default=None, help="keep the exported graphs in this folder")
    args = ap.parse_args()

    import onnxruntime as ort
    import torch

    from lvr.export import DEFAULT_BOUNDS, _architecture, export_graphs, verify_against_torch
    from lvr.preprocess import ImageConfig

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if args.precision == "fp16" else torch.float32
    t0 = time.time()
    model, grids = build_model(args.tiny, device)
    build_s = time.time() - t0
    params = sum(p.numel() for p in model.parameters())
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="lvr-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    export_model = model.to(dtype) if dtype != torch.float32 else model
    t1 = time.time()
    graphs = export_graphs(export_model, work, dtype)
    export_s = time.time() - t1
    size = sum(p.stat().st_size for p in work.iterdir() if p.is_file())
    sizes = {p.name: p.stat().st_size for p in sorted(work.iterdir()) if p.is_file()}
    ref_model = export_model.float() if dtype != torch.float32 else model  # fp32 reference, same weights
    del export_model
    avail = ort.get_available_providers()
    providers = (["CUDAExecutionProvider", "CPUExecutionProvider"]
                 if device == "cuda" and "CUDAExecutionProvider" in avail else ["CPUExecutionProvider"])
    np_dt = "float16" if dtype == torch.float16 else "float32"
    manifest = {"architecture": _architecture(ref_model), "graphs": graphs, "lvr_files": {},
                "preprocessing": ImageConfig().to_json(),
                "io_dtypes": {"embeds": np_dt, "kv": np_dt, "logits": "float32"}}
    t2 = time.time()
    ver = verify_against_torch(ref_model, work, manifest, grids=grids, providers=providers)
    verify_s = time.time() - t2
    worst = max(e["max_rel"] for e in ver["outputs"].values())
    result = {
        "bench": "export_3b", "shapes": "tiny" if args.tiny else "qwen2.5-vl-3b", "precision": args.precision,
        "device": device, "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
        "ort_providers": providers, "params": params, "model_build_s": round(build_s, 2),
        "export_wall_s": round(export_s, 2), "verify_s": round(verify_s, 2), "bundle_bytes": size,
        "bundle_gib": round(size / 2**30, 3), "files": sizes, "errors": ver["outputs"],
        "worst_max_rel": worst, "bound_max_rel": DEFAULT_BOUNDS[args.precision],
        "passed": bool(worst <= DEFAULT_BOUNDS[args.precision]), "image_grids": ver["image_grids"],
        "versions": {"torch": torch.__version__, "onnxruntime": ort.__version__},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "export_3b.json").write_text(json.dumps(result, indent=2))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print("BENCH " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

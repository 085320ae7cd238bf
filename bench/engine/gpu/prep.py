"""Prepares the GPU engine bench's model: a random-weight checkpoint with Qwen2.5-VL-3B layer shapes (hidden 2048,
MLP 11008, 16/2 heads, vocab 151936 tied; `--shape 7b`: hidden 3584, MLP 18944, 28/4 heads, vocab 152064 untied;
vision width 1280 / MLP 3420 / 16 heads) but fewer layers, so that export + both sides fit one short device call, and
its bundles (fp16, optionally int4) without verification.

    python bench/engine/gpu/prep.py WORK --layers 8 --vision-layers 4 [--shape 3b|7b] [--int4-before EPOCH_S]
        [--fused] [--vision-floats]

Writes WORK/ckpt (+ WORK/ckpt/_READY), WORK/bundle-fp16, WORK/bundle-int4, WORK/bundle-fp16-floats (--vision-floats)
and WORK/prep.json (shapes, export times, streamed weight bytes per precision).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "workers"))

# Qwen2.5-VL image processor defaults: a 1036 px image keeps its size (1369 visual tokens).
QWEN_MIN_PIXELS = 56 * 56
QWEN_MAX_PIXELS = 28 * 28 * 16384


#: Layer shapes (all but the layer counts) of the two Qwen2.5-VL sizes the bench runs; vision is the same tower.
SHAPES = {
    "3b": dict(hidden=2048, heads=16, kv_heads=2, intermediate=11008, vocab=151936, tie=True, full_layers=36),
    "7b": dict(hidden=3584, heads=28, kv_heads=4, intermediate=18944, vocab=152064, tie=False, full_layers=28),
}


def save_checkpoint(dest: Path, layers: int, vision_layers: int, shape: str = "3b") -> dict:
    import torch

    from lvr.model import LVRForConditionalGeneration
    from lvr.tiny import GENERATION_DEFAULTS, randomize_weights_, tiny_config, write_tokenizer_files

    if os.environ.get("LVR_BENCH_TINY") == "1":  # CPU smoke test of the bench scripts only
        cfg = tiny_config(layers=layers, vision_layers=vision_layers)
    else:
        text = {k: v for k, v in SHAPES[shape].items() if k != "full_layers"}
        cfg = tiny_config(layers=layers, vision_hidden=1280, vision_layers=vision_layers, vision_heads=16, **text)
        cfg.vision_config.intermediate_size = 3420
    cfg.vision_config.fullatt_block_indexes = [vision_layers - 1]
    cfg._attn_implementation = "eager"
    model = LVRForConditionalGeneration(cfg)
    with torch.no_grad():
        randomize_weights_(model, 0)
        # Unit-scale embeddings dominate the residual stream at these widths and, tied to the head, make greedy
        # decoding repeat its input token; HF's initializer range leaves the layers in charge (the parity prompts
        # then decode varied text).
        model.get_input_embeddings().weight.mul_(0.02)
    model.eval()
    model.save_pretrained(dest)
    write_tokenizer_files(dest)
    (dest / "generation_config.json").write_text(json.dumps(GENERATION_DEFAULTS, indent=2))
    (dest / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "Qwen2VLImageProcessor", "patch_size": 14, "temporal_patch_size": 2,
        "merge_size": 2, "min_pixels": QWEN_MIN_PIXELS, "max_pixels": QWEN_MAX_PIXELS,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
        "rescale_factor": 1 / 255, "resample": 3}, indent=2))
    params = sum(p.numel() for p in model.parameters())
    lm = model.model.language_model if hasattr(model.model, "language_model") else model.model
    embed = lm.embed_tokens.weight.numel()
    vision = sum(p.numel() for n, p in model.named_parameters() if "visual" in n)
    return {"params": params, "embed_params": embed, "vision_params": vision,
            # Batch-1 decode streams every decoder weight once per token: layers + final norm + lm_head (tied, so
            # the embedding matrix is read as the head; the embedding lookup itself is a gather).
            "decoder_params": params - vision}


def write_image(path: Path, size: int = 1036) -> None:
    """The one-image prompt's picture: a 1036 x 1036 RGB gradient (PNG)."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:size, 0:size]
    rgb = np.stack([x * 255 // size, y * 255 // size, (x + y) * 255 // (2 * size)], axis=-1).astype(np.uint8)
    Image.fromarray(rgb, "RGB").save(path)


def float_vision_copy(ckpt: Path, src: Path, dest: Path) -> None:
    """`src` (an fp16 bundle) as `dest`, its vision graph exported as before `image_bytes` (float pixel values from
    the host): the decoder files are hard links, the manifest lists the new graph's digests."""
    import torch

    from lvr import bundle as B
    from lvr.export import export_vision_graph
    from lvr.model import LVRForConditionalGeneration

    dest.mkdir(parents=True)
    for f in src.iterdir():
        if f.name not in ("vision.onnx", "vision.onnx.data", B.MANIFEST, B.MARKER):
            os.link(f, dest / f.name)
    model = LVRForConditionalGeneration.from_pretrained(ckpt, torch_dtype=torch.float32).eval().half()
    export_vision_graph(model, dest / "vision.onnx", image_cfg=None)
    manifest = B.read_manifest(src)
    manifest["io_dtypes"].pop("image_bytes", None)
    manifest["io_dtypes"]["pixel_values"] = "float32"
    B.write_manifest(dest, manifest)
    B.write_marker(dest)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("work")
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--vision-layers", type=int, default=4)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="3b", help="Qwen2.5-VL size whose layer shapes to use")
    ap.add_argument("--int4-before", type=float, default=0,
                    help="also export int4 if the fp16 export ends before this epoch second (0: never)")
    ap.add_argument("--fused", action="store_true", help="also export graphs.decoder_fused (ort_fused_probe.py)")
    ap.add_argument("--vision-floats", action="store_true",
                    help="also write bundle-fp16-floats: bundle-fp16 with the vision graph exported before image_bytes")
    args = ap.parse_args()
    from lvr.export import export_bundle

    work = Path(args.work)
    ckpt = work / "ckpt"
    ckpt.mkdir(parents=True, exist_ok=True)
    info: dict = {"shapes": f"qwen2.5-vl-{args.shape} layer shapes", "layers": args.layers,
                  "vision_layers": args.vision_layers, f"full_{args.shape}_layers": SHAPES[args.shape]["full_layers"],
                  f"full_{args.shape}_vision_layers": 32}
    t0 = time.time()
    info.update(save_checkpoint(ckpt, args.layers, args.vision_layers, args.shape))
    info["checkpoint_s"] = round(time.time() - t0, 1)
    write_image(work / "image.png")
    (ckpt / "_READY").write_text("ok")
    (work / "prep.json").write_text(json.dumps(info, indent=2))
    for precision in ("fp16", "int4"):
        if precision == "int4" and time.time() > args.int4_before:
            info["int4"] = "skipped: time budget"
            break
        t1 = time.time()
        dest = work / f"bundle-{precision}"
        # The CUDA EP (the fused graph's bench) runs int4 weights over float16 activations.
        flavour = "int4-fp16" if precision == "int4" and args.fused else precision
        export_bundle(str(ckpt), str(dest), precision=flavour, verify=False, fused_decoder=args.fused,
                      log=lambda m: print(m, flush=True))
        info[f"export_{precision}_s"] = round(time.time() - t1, 1)
        info[f"decoder_weight_bytes_{precision}"] = sum(
            f.stat().st_size for f in dest.iterdir() if f.name.startswith("decoder.onnx"))
        (work / "prep.json").write_text(json.dumps(info, indent=2))
        if precision == "fp16" and args.vision_floats:
            t2 = time.time()
            float_vision_copy(ckpt, dest, work / "bundle-fp16-floats")
            info["vision_floats_s"] = round(time.time() - t2, 1)
        if precision == "fp16":
            (work / "export.done").write_text("ok")
    print(json.dumps(info), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

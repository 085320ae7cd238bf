"""Oracle for preprocessing, chat template, M-RoPE and vision host inputs (Python reference + transformers).

Input JSON keys (all optional):
  sizes: [[h, w, min_pixels, max_pixels]]      -> smart_resize of transformers' Qwen2-VL (PIL) image processor
  processor_sizes: [[h, w, min_pixels, max_pixels]] -> image_grid_thw from running the processor on an image
  images: {"dir": d, "items": [{"seed", "h", "w", "kind"}]} -> writes d/i.png and d/i.resized.rgb (PIL bicubic to
           smart_resize size) and d/i.pv.f32 (lvr.preprocess pixel_values); returns sizes
  chats: [{"messages": [...], "add_generation_prompt": bool}] -> rendered text (lvr.preprocess.render_chat)
  rope: [{"ids": [...], "grids": [[t,h,w]]}]  -> positions [3][S] and delta (lvr.mrope.rope_index)
  vision: [[gh, gw]]                           -> lvr.vision_inputs.vision_host_inputs
"""
import json
import os
import sys

import numpy as np
from PIL import Image


def synthetic(seed, h, w, kind):
    rng = np.random.default_rng(seed)
    if kind == "noise":
        arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    else:  # smooth gradients with a little noise: closer to photos
        y, x = np.mgrid[0:h, 0:w].astype(np.float64)
        base = np.stack([128 + 100 * np.sin(x / (7 + seed % 13)), 128 + 100 * np.cos(y / (5 + seed % 11)),
                         (x + y) * 255.0 / max(h + w, 1)], axis=-1)
        arr = np.clip(base + rng.normal(0, 8, size=base.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def main():
    p = json.load(open(sys.argv[1]))
    out = {}
    if "sizes" in p or "processor_sizes" in p:
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize
        out["sizes"] = [list(smart_resize(h, w, 28, mn, mx)) for h, w, mn, mx in p.get("sizes", [])]
        grids = []
        if p.get("processor_sizes"):
            from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
            for h, w, mn, mx in p["processor_sizes"]:
                proc = Qwen2VLImageProcessorPil(min_pixels=mn, max_pixels=mx)
                img = Image.new("RGB", (w, h), (10, 20, 30))
                res = proc(images=[img], return_tensors="np")
                grids.append([int(v) for v in res["image_grid_thw"][0]])
        out["processor_grids"] = grids
    if "images" in p:
        from lvr.bbox import smart_resize as lvr_smart_resize
        from lvr.preprocess import ImageConfig, image_to_pixel_values
        d = p["images"]["dir"]
        res = []
        for i, it in enumerate(p["images"]["items"]):
            img = synthetic(it["seed"], it["h"], it["w"], it["kind"])
            img.save(os.path.join(d, f"{i}.png"))
            cfg = ImageConfig(min_pixels=it.get("min_pixels", 3136), max_pixels=it.get("max_pixels", 12845056))
            h, w = lvr_smart_resize(img.height, img.width, 28, cfg.min_pixels, cfg.max_pixels)
            resized = img.resize((w, h), resample=Image.Resampling.BICUBIC) if (h, w) != (img.height, img.width) else img
            open(os.path.join(d, f"{i}.resized.rgb"), "wb").write(np.asarray(resized, dtype=np.uint8).tobytes())
            pv, grid = image_to_pixel_values(img, cfg)
            open(os.path.join(d, f"{i}.pv.f32"), "wb").write(pv.astype("<f4").tobytes())
            res.append({"resized": [h, w], "grid": list(grid)})
        out["images"] = res
    if "chats" in p:
        from lvr.preprocess import render_chat
        out["chats"] = [render_chat(c["messages"], add_generation_prompt=c["add_generation_prompt"]) for c in p["chats"]]
    if "rope" in p:
        from lvr.mrope import rope_index
        rr = []
        for r in p["rope"]:
            pos, delta = rope_index(r["ids"], r["grids"])
            rr.append({"positions": pos.tolist(), "delta": delta})
        out["rope"] = rr
    if "vision" in p:
        from lvr.vision_inputs import vision_host_inputs
        out["vision"] = [{k: v.tolist() for k, v in vision_host_inputs((1, gh, gw)).items()} for gh, gw in p["vision"]]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()

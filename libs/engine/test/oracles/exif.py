"""Oracle for EXIF orientation parity: the Python reference's load_image + image_to_pixel_values on image files.

Input JSON: {"files": [path, ...], "out_dir": dir}. For each file i: writes out_dir/i.pv.f32 (pixel_values, <f4) and
returns {"size": [w, h] after load_image, "raw_size": [w, h] without EXIF handling, "grid": [t, gh, gw],
"tokens": gh*gw/4}.
"""
import json
import os
import sys

from PIL import Image


def main():
    p = json.load(open(sys.argv[1]))
    from lvr.preprocess import ImageConfig, image_to_pixel_values, load_image

    cfg = ImageConfig()
    out = []
    for i, path in enumerate(p["files"]):
        img = load_image(path)
        pv, grid = image_to_pixel_values(img, cfg)
        open(os.path.join(p["out_dir"], f"{i}.pv.f32"), "wb").write(pv.astype("<f4").tobytes())
        raw = Image.open(path)
        out.append({"size": [img.width, img.height], "raw_size": [raw.width, raw.height], "grid": list(grid),
                    "tokens": grid[0] * grid[1] * grid[2] // cfg.merge_size ** 2})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()

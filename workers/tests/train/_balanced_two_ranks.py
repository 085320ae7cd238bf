"""Token-balanced SFT stream over real records (images of many sizes and modes, varied conversations): the data
helpers of test_balanced_stream.py, and, run under `torch.distributed.run --nproc_per_node 2` (gloo, CPU), a few
steps of each rank's BalancedStream; rank 0 writes {"steps": [[rank 0's group, rank 1's group], ...] as
[[dataset, record, tokens], ...], "builds": [samples built by rank 0, by rank 1]} as JSON to argv[4]."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

# (file, size (width, height), mode): below min_pixels, above max_pixels, odd sizes, extreme aspect ratios
IMAGES = [("a.png", (150, 120), "RGB"), ("b.png", (90, 90), "RGB"), ("wide.png", (900, 40), "RGB"),
          ("tall.jpg", (33, 410), "L"), ("big.jpg", (1000, 700), "RGB"), ("tiny.png", (15, 17), "RGBA"),
          ("pal.png", (301, 199), "P"), ("rot.jpg", (200, 120), "RGB")]
MAX_TOKENS, MAX_INSTANCES, STEPS = 400, 4, 8


def write_varied_images(folder: Path) -> None:
    rng = np.random.default_rng(1)
    for name, (w, h), mode in IMAGES:
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(mode)
        if name == "rot.jpg":          # EXIF orientation 6 (rotated 90°): training keeps the stored orientation
            exif = Image.Exif()
            exif[0x0112] = 6
            img.save(folder / name, exif=exif)
        else:
            img.save(folder / name)


def varied_records(n: int) -> list[dict]:
    """n records cycling through the images, with 1-2 latent blocks, 1-2 turns and text of many lengths."""
    out = []
    for i in range(n):
        img = IMAGES[i % len(IMAGES)][0]
        words = " ".join(f"w{j}" for j in range((i * 7) % 60))
        if i % 5 == 3:      # two latent blocks
            answer, boxes = "<lvr> and <lvr>\n<answer> two </answer>", [[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0]]
        else:
            answer, boxes = f"first {words} <lvr>\n<answer> x{i} </answer>", [[0.03 * (i % 30), 0.1, 0.95, 0.9]]
        conv = [{"from": "human", "value": f"<image>\nWhat is in region {i}? {words}"},
                {"from": "gpt", "value": answer}]
        if i % 4 == 1:      # a second turn
            conv += [{"from": "human", "value": "And then?"}, {"from": "gpt", "value": f"then {words}"}]
        out.append({"image": img, "conversations": conv, "bboxes": boxes})
    return out


def real_stream(tiny_dir: str, data_dir: str, n: int, rank: int, world: int, builds: list | None = None):
    """The stream run_sft builds over `n` varied records (tiny pixel limits); `builds` collects built keys."""
    from lvr.data.packing import PackingOptions, packed_stream
    from lvr.data.records import validate_sft_record
    from lvr.data.sft import build_sft_sample, measure_sft_sample
    from lvr.data.text import TextCodec

    from _train_helpers import tiny_opts

    codec, opts = TextCodec.from_dir(tiny_dir), tiny_opts()
    recs = [validate_sft_record(r, "sft.json", i, data_dir) for i, r in enumerate(varied_records(n))]

    def build(d, i):
        if builds is not None:
            builds.append((d, i))
        return build_sft_sample(recs[i], codec, data_dir, opts, key=(d, i))

    return packed_stream([n], build, lambda d, i: measure_sft_sample(recs[i], codec, data_dir, opts), seed=7,
                         rank=rank, world=world, opts=PackingOptions(MAX_TOKENS, 300, MAX_INSTANCES), balance=True)


def main() -> None:
    import torch.distributed as dist

    from lvr.train.processes import init_env

    tiny_dir, data_dir, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    env = init_env()
    builds: list = []
    stream = real_stream(tiny_dir, data_dir, n, env.rank, env.world, builds)
    mine = [[[*s.key, len(s)] for s in next(stream)] for _ in range(STEPS)]
    gathered: list = [None] * env.world
    dist.all_gather_object(gathered, {"steps": mine, "builds": len(builds)})
    if env.rank == 0:
        steps = [[g["steps"][k] for g in gathered] for k in range(STEPS)]
        Path(out).write_text(json.dumps({"steps": steps, "builds": [g["builds"] for g in gathered]}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

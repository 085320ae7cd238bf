"""Shared pieces of the training benchmarks (bench/gpu/train_*.py): model shapes, synthetic packed batches, FLOPs.

Standalone: needs only torch + transformers; imports the worker package from workers/ of this checkout so the
benchmarks time the real training code path (lvr.train.losses / runtime / rollout).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "workers"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lvr import tokens as T  # noqa: E402

PEAK_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0}  # dense bf16, SXM


#: Text-model shapes of the Qwen2.5-VL releases (config.json of Qwen/Qwen2.5-VL-3B-Instruct and -7B-Instruct); the
#: vision tower is the same in both, its merger projecting to the text width.
TEXT_SHAPES = {
    "3b": dict(vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
               num_attention_heads=16, num_key_value_heads=2, tie_word_embeddings=True),
    "7b": dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
               num_attention_heads=28, num_key_value_heads=4, tie_word_embeddings=False),
}


def model_config(tiny: bool, shapes: str = "3b"):
    """Qwen2.5-VL-3B (LVR-SPEC §1.1) or -7B shapes, or a tiny CPU stand-in."""
    from lvr.tiny import tiny_config

    if tiny:
        return tiny_config(hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128)
    from transformers import Qwen2_5_VLConfig

    shape = TEXT_SHAPES[shapes]
    text = dict(**shape, rms_norm_eps=1e-6, max_position_embeddings=128000,
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]})
    vision = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16,
                  out_hidden_size=shape["hidden_size"],
                  patch_size=14, temporal_patch_size=2, spatial_merge_size=2, window_size=112,
                  fullatt_block_indexes=[7, 15, 23, 31], in_channels=3, tokens_per_second=2)
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=shape["tie_word_embeddings"],
                            image_token_id=T.IMAGE_PAD_ID, video_token_id=T.VIDEO_PAD_ID,
                            vision_start_token_id=T.VISION_START_ID, vision_end_token_id=T.VISION_END_ID)


def build_model(tiny: bool, device, attn: str = "sdpa", shapes: str = "3b"):
    from lvr.model import LVRForConditionalGeneration

    cfg = model_config(tiny, shapes)
    cfg._attn_implementation = attn
    torch.manual_seed(0)
    with torch.device(device):
        model = LVRForConditionalGeneration(cfg)
    model.model.visual.requires_grad_(False)
    return model


def synthetic_instance(rng: np.random.Generator, tiny: bool):
    """One Visual-CoT-like stage-1 sample: image (48..110 patches a side: 576..3025 image tokens, within the stage-1
    pixel range), question, ROI latents (~1/8 of the image tokens), short answer; about 0.7k to 3.3k tokens.
    Returns lvr.data.sft.Sample."""
    from lvr.bbox import bbox_to_token_indices
    from lvr.data.sft import IGNORE, Sample

    gh, gw = (int(rng.integers(2, 5)) * 2, int(rng.integers(2, 5)) * 2) if tiny else \
        (int(rng.integers(24, 56)) * 2, int(rng.integers(24, 56)) * 2)
    n_img = gh * gw // 4
    x0, y0 = rng.uniform(0, 0.6, 2)
    idx = bbox_to_token_indices((x0, y0, x0 + 0.35, y0 + 0.35), gh, gw)
    words = lambda n: [int(v) for v in rng.integers(100, 150000, n)]
    prompt = [T.IM_START_ID] + words(8) + [T.IM_END_ID, T.IM_START_ID] + words(2) + [T.VISION_START_ID] + \
        [T.IMAGE_PAD_ID] * n_img + [T.VISION_END_ID] + words(int(rng.integers(15, 40))) + \
        [T.IM_END_ID, T.IM_START_ID] + words(2)
    answer = [T.LVR_START_ID] + [T.LVR_ID] * len(idx) + [T.LVR_LATENT_END_ID, T.LVR_END_ID] + \
        words(int(rng.integers(6, 20))) + [T.IM_END_ID] + words(1)
    labels = [IGNORE] * len(prompt) + [IGNORE if t == T.LVR_ID else t for t in answer]
    pv = rng.standard_normal((gh * gw, 1176), dtype=np.float32)
    return Sample(prompt + answer, labels, pv, [(1, gh, gw)], idx)


def full_packs(n: int, tiny: bool, max_tokens: int, seed: int = 0, min_fill: float = 0.9, pool_size: int = 32):
    """`n` packs of synthetic_instance samples, each filled to at least `min_fill` of `max_tokens` real tokens: each
    pack takes the largest pending sample that still fits, from a pool of `pool_size` pending samples, until none
    fits (no cap on samples per pack). The upstream packer (packed_groups) caps a pack at 4 samples below
    max_tokens / 4 tokens each, so its 16k packs hold ~7k real tokens and its 32k packs the same work."""
    rng = np.random.default_rng(seed)
    pool: list = []
    out = []
    while len(out) < n:
        pack, used = [], 0
        while True:
            pool.extend(synthetic_instance(rng, tiny) for _ in range(pool_size - len(pool)))
            fits = [i for i, s in enumerate(pool) if used + len(s) <= max_tokens]
            if not fits:
                break
            best = pool.pop(max(fits, key=lambda i: len(pool[i])))
            pack.append(best)
            used += len(best)
        if used < min_fill * max_tokens:
            raise RuntimeError(f"pack of {used} tokens is below {min_fill:.0%} of {max_tokens}: samples too long "
                               f"for this pack size")
        out.append(pack)
    return out


def real_token_fraction(groups, max_tokens: int) -> float:
    """Real (non-padding) tokens over the capacity of the packs."""
    return sum(len(s) for g in groups for s in g) / (len(groups) * max_tokens)


def packed_groups(n: int, tiny: bool, max_tokens: int, seed: int = 0):
    """The worker's packer with the upstream options (4 samples per pack, long-sequence threshold max_tokens / 4)."""
    from lvr.data.packing import PackedBuffer, PackingOptions

    rng = np.random.default_rng(seed)
    buf = PackedBuffer(PackingOptions(max_packed_tokens=max_tokens, long_seq_threshold=max_tokens // 4))
    out = []
    while len(out) < n:
        out.extend(buf.add(synthetic_instance(rng, tiny)))
    return out[:n]


class ListStream:
    """Pre-built groups in the shape of lvr.data.packing.PackedStream for the worker's Prefetcher."""

    def __init__(self, groups):
        self.groups, self.pos = list(groups), 0

    def __next__(self):
        if self.pos >= len(self.groups):
            raise StopIteration
        self.pos += 1
        return self.groups[self.pos - 1]

    def state(self) -> dict:
        return {"pos": self.pos}


def text_linear_params(cfg) -> int:
    t = cfg.text_config
    H, I, L = t.hidden_size, t.intermediate_size, t.num_hidden_layers
    kv = H // t.num_attention_heads * t.num_key_value_heads
    return L * (2 * H * H + 2 * H * kv + 3 * H * I)


def vision_params(cfg) -> int:
    v = cfg.vision_config
    C, I, D = v.hidden_size, v.intermediate_size, v.depth
    merger = (4 * C) * (4 * C) + (4 * C) * v.out_hidden_size
    return D * (4 * C * C + 3 * C * I) + 3 * 14 * 14 * 2 * C + merger


def sft_step_flops(cfg, group) -> dict:
    """Model FLOPs of one stage-1 micro-batch (recompute from gradient checkpointing is not counted):
    6·P_text·tokens + causal attention 6·L·H·s² per instance + 6·H·V per CE target, vision forward only
    (frozen): 2·P_vis·patches + full/windowed attention."""
    t, v = cfg.text_config, cfg.vision_config
    tokens = sum(len(s) for s in group)
    ce = sum(sum(1 for x in s.labels[1:] if x != -100) for s in group)
    text = 6 * text_linear_params(cfg) * tokens + sum(6 * t.num_hidden_layers * t.hidden_size * len(s) ** 2
                                                      for s in group)
    head = 6 * t.hidden_size * t.vocab_size * ce
    patches = sum(s.pixel_values.shape[0] for s in group)
    n_full = len(v.fullatt_block_indexes)
    win = (v.window_size // v.patch_size) ** 2
    vis_attn = sum(4 * v.hidden_size * (n_full * s.pixel_values.shape[0] ** 2 +
                                        (v.depth - n_full) * s.pixel_values.shape[0] * win) for s in group)
    vision = 2 * vision_params(cfg) * patches + vis_attn
    return {"tokens": tokens, "flops": text + head + vision, "ce_targets": ce, "patches": patches}


def peak_flops(device) -> tuple[float | None, str]:
    if device.type != "cuda":
        return None, "cpu"
    name = torch.cuda.get_device_name(device)
    override = os.environ.get("BENCH_PEAK_TFLOPS")
    if override:
        return float(override) * 1e12, name
    for key, tf in PEAK_BF16_TFLOPS.items():
        if key in name:
            return tf * 1e12, name
    return None, name


def emit(result: dict, out_name: str) -> None:
    out = os.environ.get("OUT")
    if out and result.get("rank", 0) == 0:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / out_name).write_text(json.dumps(result, indent=2))
    if result.get("rank", 0) == 0:
        print("BENCH " + json.dumps(result), flush=True)


def balanced_packs(n: int, world: int, rank: int, tiny: bool, max_tokens: int, seed: int = 0, min_fill: float = 0.9):
    """This rank's `n` packs when every rank draws the same synthetic samples (same seed) and each step's packs are
    dealt by lvr.data.packing.balanced_rank_packs: equal real tokens per rank per step (each sample used once)."""
    from lvr.data.packing import balanced_rank_packs

    rng = np.random.default_rng(seed)
    pool: list = []
    out = []
    while len(out) < n:
        while sum(len(s) for s in pool) < 2 * world * max_tokens:   # pending samples for two steps
            pool.append(synthetic_instance(rng, tiny))
        packs, pool = balanced_rank_packs(pool, world, max_tokens)
        if min(sum(len(s) for s in p) for p in packs) < min_fill * max_tokens:
            raise RuntimeError(f"balanced packs below {min_fill:.0%} of {max_tokens}: samples too long")
        out.append(packs[rank])
    return out


def worker_stream_packs(n: int, world: int, rank: int, tiny: bool, max_tokens: int, balance: bool,
                        seed: int = 0, max_instances: int = 64) -> list:
    """This rank's first `n` groups from the worker's own training stream (lvr.data.packing.packed_stream: the
    token-balanced BalancedStream when `balance` and world > 1, else each rank packing its own shard), over
    synthetic_instance records that every rank generates alike (record r from seed (seed, r)); `max_instances`
    raises the upstream cap of 4 samples a pack so that packs can fill up."""
    from lvr.data.packing import PackingOptions, SampleShape, packed_stream

    def record(_dataset: int, r: int):
        return synthetic_instance(np.random.default_rng((seed, r)), tiny)

    opts = PackingOptions(max_packed_tokens=max_tokens, max_instance_per_batch=max_instances)
    stream = packed_stream([100_000], record, lambda d, r: SampleShape.of(record(d, r).input_ids), seed=seed,
                           rank=rank, world=world, opts=opts, balance=balance)
    return [next(stream) for _ in range(n)]

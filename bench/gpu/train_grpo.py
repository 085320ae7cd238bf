"""Stage-2 GRPO_latent step time, split into rollout vs learning: a random model with Qwen2.5-VL-3B shapes, one
prompt with an image, G=8 generations of up to 512 tokens with `steps` decoding (8 latent steps), bf16, then the
learning pass (policy forward/backward with replayed latents + reference forward, 2 micro-batches of 4) and AdamW.

A random model practically never samples `<|lvr_start|>`, so by default every completion starts with it
(`--force-lvr-start`, the rollout's `force_first_token`), as the completions of a stage-1 model do: each runs one latent
block of `--lvr-steps` latent inputs. The JSON reports `latent_inputs` (latent inputs fed in the last step's rollout)
and `latent_share` (latent inputs / completion steps).

GPU:       python bench/gpu/train_grpo.py
CPU check: python bench/gpu/train_grpo.py --tiny --steps 1 --max-new 16

Writes $OUT/train_grpo.json and prints `BENCH {json}`.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

import train_common as C  # noqa: E402

from lvr import tokens as T  # noqa: E402
from lvr.train import runtime as R  # noqa: E402
from lvr.train.grpo import GrpoPolicy, ScoredGroup, learn_on_batch  # noqa: E402
from lvr.train.losses import group_advantages  # noqa: E402
from lvr.train.rollout import SamplingConfig  # noqa: E402
from lvr.train.train_config import TrainConfig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--micro-batch", type=int, default=4)
    ap.add_argument("--max-new", type=int, default=512)
    ap.add_argument("--lvr-steps", type=int, default=8)
    ap.add_argument("--attn", choices=["sdpa", "flash_varlen_torch"], default="sdpa")
    ap.add_argument("--grid", type=int, default=32, help="image patch grid side (32 -> 448 px, 256 visual tokens)")
    ap.add_argument("--force-lvr-start", action=argparse.BooleanOptionalAction, default=True,
                    help="start every completion with <|lvr_start|> so that the rollout runs latent blocks")
    args = ap.parse_args()

    env = R.init_env()
    cfg = TrainConfig(run_id="bench", stage="grpo", model_uri="-", data_uri="-", checkpoint_uri="-", bundle_uri="-",
                      max_steps=1000, num_generations=args.generations, micro_batch_size=args.micro_batch,
                      max_completion_length=args.max_new, temperature=0.9).resolved()
    dtype = R.compute_dtype(cfg, env)
    model = C.build_model(args.tiny, env.device)
    if args.attn != "sdpa":
        from lvr.train.attention import use_varlen

        use_varlen(model)
    ref = copy.deepcopy(model).eval().requires_grad_(False)
    if dtype == torch.bfloat16:
        ref = ref.to(torch.bfloat16)
    if env.device.type == "cuda":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    policy = GrpoPolicy(model)
    optimizer = R.build_optimizer(model, cfg, env, no_decay_norm_bias=True)
    autocast = R.autocast_factory(cfg, env, dtype)
    rng = np.random.default_rng(0)
    g = 4 if args.tiny else args.grid
    n_img = g * g // 4
    ids = [T.IM_START_ID] + [int(x) for x in rng.integers(100, 150000, 8)] + [T.IM_END_ID, T.IM_START_ID, 872,
                                                                             T.VISION_START_ID] + \
        [T.IMAGE_PAD_ID] * n_img + [T.VISION_END_ID] + [int(x) for x in rng.integers(100, 150000, 30)] + \
        [T.IM_END_ID, T.IM_START_ID, 77091, 198]
    prompt = torch.tensor([ids], device=env.device)
    pv = torch.from_numpy(rng.standard_normal((g * g, 1176)).astype(np.float32)).to(env.device)
    grid = torch.tensor([[1, g, g]], device=env.device)
    sampling = SamplingConfig(0.9, 50, 1.0, 1.0, args.max_new, args.lvr_steps,
                              force_first_token=T.LVR_START_ID if args.force_lvr_start else None)
    gen = torch.Generator(device=env.device).manual_seed(0)
    G, mb = args.generations, args.micro_batch
    sync = (lambda: torch.cuda.synchronize()) if env.device.type == "cuda" else (lambda: None)

    def step():
        t0 = time.time()
        model.eval()
        with autocast():
            ro = policy("rollout", prompt_ids=prompt, pixel_values=pv, grid=grid, G=G, cfg=sampling, generator=gen)
        sync()
        t1 = time.time()
        adv = group_advantages(torch.arange(G, dtype=torch.float32), G).to(env.device)
        model.train()   # the worker's learning pass: micro-batches of --micro-batch, policy + reference forwards
        learn_on_batch(policy, ref, [ScoredGroup(prompt, pv, grid, ro, adv, ro.completion_mask & ~ro.latent_mask)],
                       cfg, autocast)
        R.clip_grad(policy, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync()
        t2 = time.time()
        return t1 - t0, t2 - t1, int(ro.completion_ids.shape[1]), int(ro.latent_mask.sum()), \
            int(ro.completion_mask.sum())

    for _ in range(args.warmup):
        step()
    if env.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = [step() for _ in range(args.steps)]
    roll = sum(t[0] for t in times) / len(times)
    learn = sum(t[1] for t in times) / len(times)
    _, card = C.peak_flops(env.device)
    C.emit({"bench": "train_grpo", "card": card, "shapes": "tiny" if args.tiny else "qwen2.5-vl-3b",
            "dtype": str(dtype), "attn": args.attn, "generations": G, "micro_batch": mb, "prompt_tokens": len(ids),
            "completion_tokens": times[-1][2], "latent_inputs": times[-1][3], "completion_steps": times[-1][4],
            "latent_share": times[-1][3] / max(1, times[-1][4]), "forced_lvr_start": args.force_lvr_start,
            "lvr_steps": args.lvr_steps,
            "rollout_s": roll, "learn_s": learn, "step_s": roll + learn, "rollout_fraction": roll / (roll + learn),
            "decode_tokens_per_s": G * times[-1][2] / roll,
            "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if env.device.type == "cuda" else None},
           "train_grpo.json")


if __name__ == "__main__":
    main()

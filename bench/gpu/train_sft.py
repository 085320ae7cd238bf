"""Stage-1 SFT throughput: a random model with Qwen2.5-VL-3B shapes on packed Visual-CoT-like batches, bf16.

One GPU:   python bench/gpu/train_sft.py
Two GPUs:  torchrun --nproc_per_node 2 bench/gpu/train_sft.py --baseline $OUT/train_sft_w1.json
CPU check: python bench/gpu/train_sft.py --tiny --steps 2 --warmup 1

Reports tokens/s (real tokens, padding excluded), MFU = model FLOPs/s over the card's dense bf16 peak
(bench/gpu/train_common.py::sft_step_flops; recompute not counted), peak memory, and with --baseline the
scaling efficiency tokens/s(world) / (world * tokens/s(1 GPU)). Writes $OUT/train_sft_w<world>.json and prints
`BENCH {json}`.
"""

from __future__ import annotations

import argparse
import time

import torch

import train_common as C  # noqa: E402  (adds workers/ to sys.path)

from lvr.data.packing import collate  # noqa: E402
from lvr.train import runtime as R  # noqa: E402
from lvr.train.losses import SftObjective  # noqa: E402
from lvr.train.spec import TrainConfig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true", help="tiny shapes (CPU check)")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--max-packed-tokens", type=int, default=16384)
    ap.add_argument("--packing", choices=["flat", "pad"], default="flat")
    ap.add_argument("--strategy", choices=["auto", "ddp", "fsdp"], default="auto")
    ap.add_argument("--no-grad-ckpt", action="store_true")
    ap.add_argument("--attn", choices=["sdpa", "flash_varlen_torch"], default="sdpa",
                    help="flash_varlen_torch: torch varlen flash kernels for vision windows and packed text")
    ap.add_argument("--baseline", help="JSON of the 1-GPU run, for scaling efficiency")
    args = ap.parse_args()

    env = R.init_env()
    cfg = TrainConfig(run_id="bench", stage="sft", model_uri="-", data_uri="-", checkpoint_uri="-", bundle_uri="-",
                      strategy=args.strategy, learning_rate=1e-5, max_steps=1000).resolved()
    dtype = R.compute_dtype(cfg, env)
    model = C.build_model(args.tiny, env.device)
    if args.attn != "sdpa":
        from lvr.train.attention import use_varlen

        use_varlen(model)
    if not args.no_grad_ckpt and env.device.type == "cuda":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    objective = R.wrap(SftObjective(model), model, cfg, env, dtype)
    optimizer = R.build_optimizer(model, cfg, env, no_decay_norm_bias=False)
    autocast = R.autocast_factory(cfg, env, dtype)
    groups = C.packed_groups(args.warmup + args.steps, args.tiny, args.max_packed_tokens, seed=env.rank)

    def step(group):
        batch = {k: (v.to(env.device) if torch.is_tensor(v) else v) for k, v in collate(group, args.packing).items()}
        with autocast():
            parts = objective(batch)
        parts["loss"].backward()
        R.clip_grad(objective, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(parts["loss"].detach())

    sync = (lambda: torch.cuda.synchronize()) if env.device.type == "cuda" else (lambda: None)
    for g in groups[:args.warmup]:
        step(g)
    sync()
    if env.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    R.barrier(env)
    t0 = time.time()
    tokens = flops = 0
    losses = []
    for g in groups[args.warmup:]:
        losses.append(step(g))
        f = C.sft_step_flops(model.config, g)
        tokens += f["tokens"]
        flops += f["flops"]
    sync()
    R.barrier(env)
    dt = time.time() - t0
    tokens_all = R.all_reduce_sum(env, tokens)
    flops_all = R.all_reduce_sum(env, flops)
    peak, card = C.peak_flops(env.device)
    res = {"bench": "train_sft", "card": card, "world": env.world, "rank": env.rank,
           "strategy": "single" if env.world == 1 else ("fsdp" if args.strategy == "auto" else args.strategy),
           "shapes": "tiny" if args.tiny else "qwen2.5-vl-3b", "packing": args.packing, "attn": args.attn, "dtype": str(dtype),
           "grad_ckpt": not args.no_grad_ckpt and env.device.type == "cuda", "steps": args.steps,
           "max_packed_tokens": args.max_packed_tokens,
           "instances_per_step": sum(len(g) for g in groups[args.warmup:]) / args.steps,
           "tokens_per_s": tokens_all / dt, "tokens_per_s_per_gpu": tokens_all / dt / env.world,
           "step_s": dt / args.steps, "model_tflops_per_s_per_gpu": flops_all / dt / env.world / 1e12,
           "mfu": (flops_all / dt / env.world / peak) if peak else None, "last_loss": losses[-1],
           "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if env.device.type == "cuda" else None}
    if args.baseline:
        import json

        base = json.load(open(args.baseline))
        res["speedup"] = res["tokens_per_s"] / base["tokens_per_s"]
        res["scaling_efficiency"] = res["speedup"] / env.world
    C.emit(res, f"train_sft_w{env.world}.json")


if __name__ == "__main__":
    main()

"""Stage-1 SFT throughput: a random model with Qwen2.5-VL-3B shapes on packed Visual-CoT-like batches, bf16.

One GPU:   python bench/gpu/train_sft.py
Two GPUs:  torchrun --nproc_per_node 2 bench/gpu/train_sft.py --baseline $OUT/train_sft_w1.json
           [--reshard | --no-reshard] [--defer-grad-sync | --no-defer-grad-sync] [--grad-accum N] [--tag NAME]
CPU check: python bench/gpu/train_sft.py --tiny --steps 2 --warmup 1
Old path:  python bench/gpu/train_sft.py --legacy --attn flash_varlen_torch   (autocast, in-step collate)
Step levers (lvr.train.compute_levers.SftLevers): --host-plan --fused-ce --fused-rope --fused-adamw --no-step-sync,
           or --levers for all of them; --balance-ranks: token-balanced packs across ranks; --shapes 7b: Qwen2.5-VL-7B
           shapes; --profile-steps N: N more steps under torch.profiler, summarised into the JSON (`profile`: top CUDA
           kernels, GPU busy/idle share of the wall time).

Packs are filled to >= 90% real tokens by default (`--packs full`; `--packs upstream`: the worker's packer with the
upstream options, 4 samples per pack); the JSON reports `real_token_fraction` (real tokens / pack capacity).
Reports tokens/s (real tokens, padding excluded), MFU = model FLOPs/s over the card's dense bf16 peak
(bench/gpu/train_common.py::sft_step_flops; recompute not counted), peak memory, and with --baseline the
scaling efficiency tokens/s(world) / (world * tokens/s(1 GPU)). Writes $OUT/train_sft_w<world>.json and prints
`BENCH {json}`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

import train_common as C  # noqa: E402  (adds workers/ to sys.path)

from lvr.data.packing import collate  # noqa: E402
from lvr.train.host_plan import plan_batch, tensors_to  # noqa: E402
from lvr.vision_inputs import VisionGeometry  # noqa: E402
from lvr.train import runtime as R  # noqa: E402
from lvr.train.losses import SftObjective  # noqa: E402
from lvr.train.train_config import TrainConfig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true", help="tiny shapes (CPU check)")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--max-packed-tokens", type=int, default=16384)
    ap.add_argument("--packs", choices=["full", "upstream"], default="full",
                    help="full: packs filled to >= 90%% real tokens (train_common.full_packs); upstream: the worker's "
                         "packer with the upstream options, at most 4 samples per pack (~7k real tokens at 16k)")
    ap.add_argument("--packing", choices=["flat", "pad"], default="flat")
    ap.add_argument("--strategy", choices=["auto", "ddp", "fsdp"], default="auto")
    ap.add_argument("--no-grad-ckpt", action="store_true")
    ap.add_argument("--ckpt-ratio", type=float, default=1.0, help="fraction of decoder layers checkpointed")
    ap.add_argument("--attn", choices=["auto", "sdpa", "flash_varlen_torch"], default="auto",
                    help="flash_varlen_torch: torch varlen flash kernels for vision windows and packed text; "
                         "auto: that on CUDA when available, else sdpa")
    ap.add_argument("--mp", choices=["auto", "autocast", "fsdp"], default="auto",
                    help="mixed precision: autocast over fp32 weights, or FSDP2 bf16 compute params + fp32 master "
                         "(also at world 1); auto: fsdp on CUDA")
    ap.add_argument("--compile", action="store_true", help="regional torch.compile of MLPs and RMS norms")
    ap.add_argument("--no-prefetch", action="store_true",
                    help="collate inside the timed step from pageable memory (the old bench) instead of the "
                         "worker's background Prefetcher with pinned batches and non-blocking copies")
    ap.add_argument("--legacy", action="store_true",
                    help="today's single-GPU path before these levers: --mp autocast --no-prefetch, per-step "
                         "loss sync (combine with --attn)")
    ap.add_argument("--reshard", action=argparse.BooleanOptionalAction, default=None,
                    help="FSDP2 reshard_after_forward of the decoder layers (TrainConfig.fsdp_reshard_after_forward): "
                         "--reshard = ZeRO-3 (FSDP2's default, the old behaviour), --no-reshard = keep gathered "
                         "(ZeRO-2 style); default auto")
    ap.add_argument("--defer-grad-sync", action=argparse.BooleanOptionalAction, default=None,
                    help="FSDP2: no reduce-scatter on non-final --grad-accum micro-steps (fsdp_defer_grad_sync); "
                         "default auto")
    ap.add_argument("--grad-accum", type=int, default=1, help="packed micro-batches per timed optimizer step")
    ap.add_argument("--shapes", choices=["3b", "7b"], default="3b", help="Qwen2.5-VL-3B or -7B shapes")
    ap.add_argument("--levers", action="store_true", help="all step levers below")
    ap.add_argument("--host-plan", action="store_true", help="positions, vision windows and gather indices in the "
                                                             "prefetcher thread (lvr.train.host_plan)")
    ap.add_argument("--fused-ce", action="store_true", help="fused linear cross-entropy")
    ap.add_argument("--fused-rope", action="store_true", help="compiled text and vision RoPE")
    ap.add_argument("--fused-adamw", action="store_true", help="AdamW fused=True")
    ap.add_argument("--no-step-sync", action="store_true", help="gradient norm stays on the device (no host sync)")
    ap.add_argument("--balance-ranks", action="store_true", help="token-balanced packs across ranks")
    ap.add_argument("--stream", choices=["bench", "worker"], default="bench",
                    help="packs from the bench's packers, or from the worker's training stream (lvr.data.packing: "
                         "BalancedStream with --balance-ranks at world > 1, else per-rank packing)")
    ap.add_argument("--profile-steps", type=int, default=0, help="steps profiled after the timed ones")
    ap.add_argument("--sync-check", action="store_true",
                    help="one more step under torch.cuda.set_sync_debug_mode: host syncs and where they happen")
    ap.add_argument("--tag", default="", help="suffix of the output JSON name")
    ap.add_argument("--baseline", help="JSON of the 1-GPU run, for scaling efficiency")
    args = ap.parse_args()
    if args.legacy:
        args.mp, args.no_prefetch = "autocast", True
    if args.levers:
        args.host_plan = args.fused_ce = args.fused_rope = args.fused_adamw = args.no_step_sync = True

    env = R.init_env()
    cuda = env.device.type == "cuda"
    cfg = TrainConfig(run_id="bench", stage="sft", model_uri="-", data_uri="-", checkpoint_uri="-", bundle_uri="-",
                      strategy=args.strategy, learning_rate=1e-5, max_steps=1000, attn_implementation=args.attn,
                      mixed_precision=args.mp, packing_mode=args.packing, gradient_checkpointing=not args.no_grad_ckpt,
                      checkpoint_ratio=args.ckpt_ratio, compile_layers=args.compile,
                      fsdp_reshard_after_forward=args.reshard, fsdp_defer_grad_sync=args.defer_grad_sync,
                      grad_accum=args.grad_accum).resolved()
    dtype = R.compute_dtype(cfg, env)
    attn = R.attn_choice(cfg, env)
    model = C.build_model(args.tiny, env.device, shapes=args.shapes)
    if attn != "sdpa":
        from lvr.train.attention import use_varlen

        use_varlen(model)
    ckpt_layers = R.enable_checkpointing(model, cfg, env) if cuda else []
    backend = "eager" if not cuda else None   # CPU check: dynamo capture without a C++ toolchain
    if args.compile:
        R.compile_regions(model, backend=backend)
    if args.fused_rope:
        R.fuse_rope(backend=backend)
    model.train()
    objective = R.wrap(SftObjective(model, fused_ce=args.fused_ce), model, cfg, env, dtype)
    fsdp = R.use_fsdp(cfg, env, dtype)
    plan = getattr(objective, "lvr_fsdp_plan", None)
    optimizer = R.build_optimizer(model, cfg, env, no_decay_norm_bias=False, fused=args.fused_adamw)
    autocast = R.autocast_factory(cfg, env, dtype)
    ga = args.grad_accum
    n_extra = args.profile_steps + int(args.sync_check)
    n_groups = (args.warmup + args.steps + n_extra) * ga
    if args.stream == "worker":
        groups = C.worker_stream_packs(n_groups, env.world, env.rank, args.tiny, args.max_packed_tokens,
                                       balance=args.balance_ranks)
    elif args.balance_ranks:
        groups = C.balanced_packs(n_groups, env.world, env.rank, args.tiny, args.max_packed_tokens)
    elif args.packs == "full":
        groups = C.full_packs(n_groups, args.tiny, args.max_packed_tokens, seed=env.rank)
    else:
        groups = C.packed_groups(n_groups, args.tiny, args.max_packed_tokens, seed=env.rank)
    prefetch = not args.no_prefetch
    spec = VisionGeometry.from_config(model.config.vision_config)
    if prefetch:
        from lvr.data.packing import Prefetcher

        prepare = (lambda b: plan_batch(b, spec)) if args.host_plan else None
        batches = Prefetcher(C.ListStream(groups), args.packing, pin=cuda, prepare=prepare)

    def step(micro_groups):
        loss = 0.0
        for i, group in enumerate(micro_groups):   # as the worker's grad-accumulation loop
            if prefetch:   # as the worker: collated (and pinned) in a background thread, non-blocking copies
                batch = tensors_to(batches.next(), env.device)
            else:
                batch = tensors_to(collate(group, args.packing), env.device, non_blocking=False)
            with R.micro_step(objective, last=i == len(micro_groups) - 1), autocast():
                parts = objective(batch)
                (parts["loss"] / len(micro_groups)).backward()
            loss = loss + parts["loss"].detach() / len(micro_groups)
        if args.no_step_sync:
            R.clip_grad_tensor(objective, 1.0)
        else:
            R.clip_grad(objective, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss) if args.legacy else loss

    sync = (lambda: torch.cuda.synchronize()) if env.device.type == "cuda" else (lambda: None)
    steps = [groups[i * ga:(i + 1) * ga] for i in range(args.warmup + args.steps + n_extra)]
    t_start = time.time()
    for g in steps[:args.warmup]:
        step(g)
    sync()
    warmup_s = time.time() - t_start
    if env.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    R.barrier(env)
    t0 = time.time()
    tokens = flops = 0
    losses = []
    timed = steps[args.warmup:args.warmup + args.steps]
    for micro_groups in timed:
        losses.append(step(micro_groups))
        for g in micro_groups:
            f = C.sft_step_flops(model.config, g)
            tokens += f["tokens"]
            flops += f["flops"]
    sync()
    R.barrier(env)
    dt = time.time() - t0
    peak_mem = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    losses = [float(x) for x in losses]
    profile = syncs = None
    first = args.warmup + args.steps
    try:   # diagnostics after the measurement: a failure here must not lose it
        if args.profile_steps:
            profile = profile_steps(lambda: [step(g) for g in steps[first:first + args.profile_steps]], sync, cuda)
        if args.sync_check and cuda:
            syncs = host_syncs(lambda: step(steps[first + args.profile_steps]), sync)
    except Exception as e:  # noqa: BLE001
        profile = {**(profile or {}), "error": f"{type(e).__name__}: {e}"[:300]}
    if prefetch:
        batches.close()
    tokens_all = R.all_reduce_sum(env, tokens)
    # real tokens of each rank in each timed step: the slowest rank sets the step, so max / mean is the imbalance
    per_rank = [[R.all_reduce_sum(env, sum(len(s) for g in m for s in g) if r == env.rank else 0) for m in timed]
                for r in range(env.world)]
    step_max = [max(col) for col in zip(*per_rank)]
    step_mean = [sum(col) / env.world for col in zip(*per_rank)]
    flops_all = R.all_reduce_sum(env, flops)
    peak, card = C.peak_flops(env.device)
    res = {"bench": "train_sft", "card": card, "world": env.world, "rank": env.rank,
           "strategy": "single" if env.world == 1 else ("fsdp" if args.strategy == "auto" else args.strategy),
           "shapes": "tiny" if args.tiny else f"qwen2.5-vl-{args.shapes}", "packing": args.packing, "attn": attn, "dtype": str(dtype),
           "grad_ckpt": bool(ckpt_layers), "levers": {
               "attn": attn, "mixed_precision": f"fsdp-{str(dtype)[6:]}-params" if fsdp else ("autocast" if dtype == torch.bfloat16
                                                                                 else "fp32"),
               "ckpt_layers": len(ckpt_layers), "ckpt_ratio": args.ckpt_ratio if ckpt_layers else 0.0,
               "compile": args.compile, "prefetch_pinned": prefetch and cuda, "prefetch": prefetch,
               "per_step_loss_sync": args.legacy, "legacy": args.legacy, "grad_accum": ga,
               "fsdp_reshard_after_forward": plan.reshard_after_forward if plan else None,
               "fsdp_defer_grad_sync": plan.defer_grad_sync if plan else None,
               "host_plan": args.host_plan, "fused_ce": args.fused_ce, "fused_rope": args.fused_rope,
               "fused_adamw": args.fused_adamw, "no_step_sync": args.no_step_sync,
               "balance_ranks": args.balance_ranks, "stream": args.stream},
           "losses": losses, "steps": args.steps,
           "max_packed_tokens": args.max_packed_tokens, "packs": args.packs,
           "real_token_fraction": C.real_token_fraction([g for m in timed for g in m], args.max_packed_tokens),
           "instances_per_step": sum(len(g) for m in timed for g in m) / args.steps,
           "rank_tokens_per_step": per_rank, "rank_imbalance": sum(step_max) / sum(step_mean),
           "params": sum(p.numel() for p in model.parameters()), "warmup_s": warmup_s,
           "tokens_per_s": tokens_all / dt, "tokens_per_s_per_gpu": tokens_all / dt / env.world,
           "step_s": dt / args.steps, "model_tflops_per_s_per_gpu": flops_all / dt / env.world / 1e12,
           "mfu": (flops_all / dt / env.world / peak) if peak else None, "last_loss": losses[-1],
           "peak_mem_gib": peak_mem,
           "card_mem_gib": torch.cuda.get_device_properties(env.device).total_memory / 2**30 if cuda else None,
           "profile": profile, "sync_check": syncs}
    if args.baseline:
        import json

        base = json.load(open(args.baseline))
        res["speedup"] = res["tokens_per_s"] / base["tokens_per_s"]
        res["scaling_efficiency"] = res["speedup"] / env.world
    C.emit(res, f"train_sft_w{env.world}{('_' + args.tag) if args.tag else ''}.json")


def profile_steps(run, sync, cuda: bool, top: int = 15) -> dict:
    """Run `run()` under torch.profiler: the wall time, the time at least one GPU kernel or copy ran (union of their
    intervals), the idle share, and the top kernels by GPU time."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    sync()
    t0 = time.time()
    with profile(activities=acts) as prof:
        run()
        sync()
    wall = time.time() - t0
    spans = []
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            spans.append((e.time_range.start, e.time_range.end))
    spans.sort()
    busy, end = 0.0, None
    for a, b in spans:
        if end is None or a > end:
            busy += b - a
            end = b
        elif b > end:
            busy += b - end
            end = b
    key = "self_device_time_total" if hasattr(next(iter(prof.key_averages()), None), "self_device_time_total") \
        else "self_cuda_time_total"
    rows = [k for k in prof.key_averages() if getattr(k, key, 0) > 0]
    rows.sort(key=lambda k: -getattr(k, key))
    total = sum(getattr(k, key) for k in rows) or 1.0
    kernels = [{"name": k.key[:100], "ms": getattr(k, key) / 1e3, "calls": k.count,
                "share": getattr(k, key) / total} for k in rows[:top]]
    busy_s = busy / 1e6
    return {"wall_s": wall, "gpu_busy_s": busy_s, "gpu_idle_fraction": max(0.0, 1 - busy_s / wall) if cuda else None,
            "gpu_kernel_s": total / 1e6, "kernel_launches": sum(k.count for k in rows), "top_kernels": kernels}


def host_syncs(run, sync) -> dict:
    """Run `run()` with CUDA sync debugging on: how many operations made the host wait for the GPU, by call site."""
    import warnings
    from collections import Counter

    sync()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    sync()
    sites = Counter(f"{os.path.basename(w.filename)}:{w.lineno}" for w in caught if "synchroniz" in str(w.message))
    return {"host_syncs": sum(sites.values()), "sites": dict(sites.most_common(10))}


def _tag() -> str:
    argv = sys.argv
    return argv[argv.index("--tag") + 1] if "--tag" in argv[:-1] else ""


if __name__ == "__main__":
    try:
        main()
    except torch.OutOfMemoryError as e:   # a configuration that does not fit is a result too: record it
        rank = int(os.environ.get("RANK", "0"))
        C.emit({"bench": "train_sft", "oom": True, "rank": rank, "argv": sys.argv[1:], "error": str(e)[:400],
                "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
                "card_mem_gib": torch.cuda.get_device_properties(0).total_memory / 2**30},
               f"train_sft_oom{('_' + _tag()) if _tag() else ''}.json")
        raise SystemExit(3)

"""Stage-2 GRPO_latent step time, split into rollout vs learning: a random model with Qwen2.5-VL-3B shapes, one
prompt with an image, G=8 generations of up to 512 tokens with `steps` decoding (8 latent steps), bf16, then the
learning pass (policy forward/backward with replayed latents + reference forward, 2 micro-batches of 4) and AdamW.

One call times both rollout engines of lvr.train.rollout on the same steps: `static` (one batch over a preallocated
cache, a CUDA graph per token; it runs first and also takes the process's start-up costs), then the baseline
`dynamic` (the previous loop: transformers' forward per token over a DynamicCache), after a greedy check that decodes
`--check-tokens` tokens with the static engine with and without its CUDA graph (the tokens must be identical) and
with the dynamic engine (the share of equal greedy tokens; bf16 numerics differ slightly). Peak GPU memory is read
per engine (the static engine's buffers are freed before the baseline runs).

A random model practically never samples `<|lvr_start|>`, so by default every completion starts with it
(`--force-lvr-start`, the rollout's `force_first_token`), as the completions of a stage-1 model do: each runs one latent
block of `--lvr-steps` latent inputs. The JSON reports `latent_inputs` (latent inputs fed in the last step's rollout)
and `latent_share` (latent inputs / completion steps).

`--only-compiled` times just the compiled static engine (the worker's default on CUDA) on the same steps, so that
two trees can be compared in one call: the script imports workers/ of the checkout it sits in (copy it into an older
tree's bench/gpu/ to time that tree's rollout). `--decode-attention` / `--decode-split` pick the static engine's
attention over its cache (lvr.train.decode_attention), `--decode-projections` its weight projections
(lvr.train.decode_linear's Triton kernels or cuBLAS); with `--only-compiled` a greedy check then compares the
chosen engine's tokens with those of SDPA attention and cuBLAS projections.

GPU:       python bench/gpu/train_grpo.py
CPU check: python bench/gpu/train_grpo.py --tiny --steps 1 --baseline-steps 1 --max-new 16 --check-tokens 8

Writes $OUT/train_grpo.json and prints `BENCH {json}`.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import inspect
import json
import os
import time
from dataclasses import replace

from pathlib import Path

import numpy as np
import torch

import train_common as C  # noqa: E402

from lvr import tokens as T  # noqa: E402
from lvr.train import runtime as R  # noqa: E402
from lvr.train.grpo import GrpoPolicy, ScoredGroup, learn_on_batch  # noqa: E402
from lvr.train.losses import group_advantages  # noqa: E402
from lvr.train.decode_step import free_static_decoders  # noqa: E402
from lvr.train.rollout import PromptInputs, SamplingConfig  # noqa: E402
from lvr.train.train_config import TrainConfig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--steps", type=int, default=3, help="timed steps of the static engine")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--baseline-steps", type=int, default=1, help="timed steps of the dynamic (baseline) engine")
    ap.add_argument("--baseline-warmup", type=int, default=0,
                    help="its warm-up steps (the static engine's steps and the greedy check ran before it)")
    ap.add_argument("--check-tokens", type=int, default=64)
    ap.add_argument("--compile-step", action=argparse.BooleanOptionalAction, default=False,
                    help="also time the static engine with its decoder layer under torch.compile")
    ap.add_argument("--compile-if-before-s", type=float, default=1e9,
                    help="skip the compiled phase when the run is already this many seconds old")
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--prompts", type=int, default=1,
                    help="prompts per step (the worker's promptsPerStep): their G completions each decode in one batch")
    ap.add_argument("--micro-batch", type=int, default=4)
    ap.add_argument("--max-new", type=int, default=512)
    ap.add_argument("--lvr-steps", type=int, default=8)
    ap.add_argument("--attn", choices=["auto", "sdpa", "flash_varlen_torch"], default="auto",
                    help="auto: the worker's choice for GRPO (lvr.train.model_loading: text sdpa; vision varlen "
                         "flash on CUDA where the tree has that rule); otherwise text and vision alike")
    ap.add_argument("--grid", type=int, default=32, help="image patch grid side (32 -> 448 px, 256 visual tokens)")
    ap.add_argument("--force-lvr-start", action=argparse.BooleanOptionalAction, default=True,
                    help="start every completion with <|lvr_start|> so that the rollout runs latent blocks")
    ap.add_argument("--profile-rollout", action="store_true",
                    help="profile one rollout of the fastest static engine (top kernels, host ops, device busy time)")
    ap.add_argument("--only-compiled", action="store_true",
                    help="time only the compiled static engine (no eager static phase, no dynamic baseline)")
    ap.add_argument("--decode-attention", choices=["split_k", "sdpa"], default=None,
                    help="the static engine's attention over its cache (default: the engine's own choice)")
    ap.add_argument("--decode-split", type=int, default=None, help="cache slots per split-K program")
    ap.add_argument("--decode-projections", choices=["triton", "cublas"], default=None,
                    help="the static engine's weight projections (default: the engine's own choice)")
    ap.add_argument("--out-name", default="train_grpo.json")
    ap.add_argument("--label", default="", help="a name for this tree's figures in the JSON")
    args = ap.parse_args()

    started = time.time()
    env = R.init_env()
    cfg = TrainConfig(run_id="bench", stage="grpo", model_uri="-", data_uri="-", checkpoint_uri="-", bundle_uri="-",
                      max_steps=1000, num_generations=args.generations, micro_batch_size=args.micro_batch,
                      max_completion_length=args.max_new, temperature=0.9).resolved()
    dtype = R.compute_dtype(cfg, env)
    model = C.build_model(args.tiny, env.device)
    if args.attn == "auto":   # the worker's rule; an older tree has none for vision: sdpa throughout, as it ran
        apply = getattr(R, "set_varlen_attention", None)
        text_attn, vision_attn = apply(model, cfg, env) if apply else (R.attn_choice(cfg, env), "sdpa")
    else:
        text_attn = vision_attn = args.attn
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
    for field, value in (("decode_attention", args.decode_attention), ("decode_split", args.decode_split),
                         ("decode_projections", args.decode_projections)):
        if value is not None:   # only when asked: an older tree's SamplingConfig has no such field
            sampling = replace(sampling, **{field: value})
    gen = torch.Generator(device=env.device).manual_seed(0)
    G, mb = args.generations, args.micro_batch
    cuda = env.device.type == "cuda"
    sync = (lambda: torch.cuda.synchronize()) if cuda else (lambda: None)
    # the same text with another image per extra prompt
    prompts = [PromptInputs(prompt, pv, grid)] + [
        PromptInputs(prompt, torch.from_numpy(rng.standard_normal((g * g, 1176)).astype(np.float32)).to(env.device),
                     grid) for _ in range(args.prompts - 1)]

    def step(rollout_cfg: SamplingConfig):
        t0 = time.time()
        model.eval()
        with autocast():
            ros = policy("rollout", prompts=prompts, G=G, cfg=rollout_cfg, generator=gen)
        sync()
        t1 = time.time()
        adv = group_advantages(torch.arange(G, dtype=torch.float32), G).to(env.device)
        model.train()   # the worker's learning pass: micro-batches of --micro-batch, policy + reference forwards
        learn_on_batch(policy, ref, [ScoredGroup(p.ids, p.pixel_values, p.grid, ro, adv,
                                                 ro.completion_mask & ~ro.latent_mask) for p, ro in zip(prompts, ros)],
                       cfg, autocast)
        R.clip_grad(policy, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync()
        t2 = time.time()
        return t1 - t0, t2 - t1, max(int(ro.completion_ids.shape[1]) for ro in ros), \
            sum(int(ro.latent_mask.sum()) for ro in ros), sum(int(ro.completion_mask.sum()) for ro in ros)

    def measure(name: str, rollout_cfg: SamplingConfig, steps: int, warmup: int = args.warmup) -> dict:
        t0 = time.time()
        for _ in range(warmup):
            step(rollout_cfg)
        warmup_s = time.time() - t0
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        times = [step(rollout_cfg) for _ in range(steps)]
        roll = sum(t[0] for t in times) / len(times)
        learn = sum(t[1] for t in times) / len(times)
        last = times[-1]
        return {"config": name + ("+compile" if rollout_cfg.compile_step else ""), "steps": steps,
                "warmup_s": warmup_s, "completion_tokens": last[2], "latent_inputs": last[3],
                "completion_steps": last[4], "latent_share": last[3] / max(1, last[4]),
                "rollout_s": roll, "learn_s": learn, "step_s": roll + learn, "rollout_fraction": roll / (roll + learn),
                "rollout_s_each": [t[0] for t in times], "learn_s_each": [t[1] for t in times],
                "decode_tokens_per_s": len(prompts) * G * last[2] / roll,
                "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None}

    _, card = C.peak_flops(env.device)
    result = {"bench": "train_grpo", "label": args.label, "card": card,
              "shapes": "tiny" if args.tiny else "qwen2.5-vl-3b",
              "dtype": str(dtype), "attn": {"text": text_attn, "vision": vision_attn}, "generations": G,
              "prompts_per_step": len(prompts), "micro_batch": mb, "prompt_tokens": len(ids),
              "forced_lvr_start": args.force_lvr_start, "lvr_steps": args.lvr_steps, "max_new_tokens": args.max_new}

    def partial(**kw):   # each phase's figures are on disk before the next starts (a killed run keeps them)
        result.update(kw)
        if os.environ.get("OUT"):
            Path(os.environ["OUT"]).mkdir(parents=True, exist_ok=True)
            partial_name = args.out_name.replace(".json", ".partial.json")
            (Path(os.environ["OUT"]) / partial_name).write_text(json.dumps(result, indent=2))
        print("PHASE", json.dumps(kw), flush=True)

    if args.only_compiled:
        only_compiled(args, result, partial, measure, policy, prompts, G, sampling, autocast, model, env, cuda)
        return
    # the static engine first (it also takes the process's one-time CUDA and cuBLAS start-up), then the greedy checks,
    # then the baseline with the static engine's buffers freed (its peak memory is its own)
    graph_error = None
    try:
        new = measure("static", sampling, args.steps)
    except Exception as e:  # noqa: BLE001 - a failed graph capture is reported, and the eager static step timed
        graph_error = repr(e)
        if cuda:
            torch.cuda.synchronize()
        sampling = replace(sampling, cuda_graphs=False)
        new = measure("static", sampling, args.steps)
    partial(static=new, graph_error=graph_error)

    greedy = replace(sampling, temperature=1.0, top_k=1, max_new_tokens=args.check_tokens)

    def greedy_tokens(cfg: SamplingConfig) -> torch.Tensor:
        # top-k 1 keeps every logit tied with the maximum (bf16 logits tie often), so each run draws from its own
        # generator with the same seed: equal logits then give equal tokens
        model.eval()
        with autocast():
            (ro,) = policy("rollout", prompts=prompts[:1], G=G, cfg=cfg,
                           generator=torch.Generator(device=env.device).manual_seed(0))
        return ro.completion_ids

    graph_tokens = greedy_tokens(greedy)
    eager_tokens = greedy_tokens(replace(greedy, cuda_graphs=False))
    dynamic_tokens = greedy_tokens(replace(greedy, engine="dynamic"))
    n = min(graph_tokens.shape[1], dynamic_tokens.shape[1])
    partial(check_tokens=args.check_tokens, graph_equals_eager=bool(torch.equal(graph_tokens, eager_tokens)),
            greedy_agreement_with_dynamic=float((graph_tokens[:, :n] == dynamic_tokens[:, :n]).float().mean()))

    free_static_decoders()
    baseline = measure("dynamic", replace(sampling, engine="dynamic"), args.baseline_steps, args.baseline_warmup)
    partial(dynamic_baseline=baseline, rollout_speedup=baseline["rollout_s"] / new["rollout_s"],
            step_speedup=baseline["step_s"] / new["step_s"])
    best = new
    if args.compile_step and time.time() - started < args.compile_if_before_s:
        try:
            t0 = time.time()
            compiled = measure("static", replace(sampling, compile_step=True), args.steps)
            partial(static_compiled=compiled, compiled_rollout_speedup=baseline["rollout_s"] / compiled["rollout_s"],
                    compile_phase_s=time.time() - t0)
            if compiled["rollout_s"] < best["rollout_s"]:
                best = compiled
        except Exception as e:  # noqa: BLE001 - reported; the uncompiled figures stand
            partial(compile_error=repr(e))
    if args.profile_rollout:
        best_cfg = replace(sampling, compile_step=best["config"].endswith("+compile"))

        def one_rollout() -> None:
            model.eval()
            with autocast():
                policy("rollout", prompts=prompts, G=G, cfg=best_cfg, generator=gen)

        partial(rollout_profile={"config": best["config"], **profile_summary(one_rollout, cuda)})
    result.update({k: v for k, v in best.items() if k not in ("config", "steps")})   # the best static figures on top
    result["best"] = best["config"]
    C.emit(result, args.out_name)


def only_compiled(args, result, partial, measure, policy, prompts, G, sampling, autocast, model, env, cuda) -> None:
    """The compiled static engine alone (and, when an attention was chosen, its greedy tokens against SDPA's)."""
    compiled_cfg = replace(sampling, compile_step=True)
    t0 = time.time()
    compiled = measure("static", compiled_cfg, args.steps)
    from lvr.train.decode_step import _DECODERS

    # the timed decoder's attention, split and projections (an older tree may have none)
    partial(static_compiled=compiled, compile_phase_s=time.time() - t0,
            decoder=[{k: getattr(d, k, None) for k in ("attention", "split", "projections")}
                     for d in _DECODERS.values()])
    if hasattr(sampling, "decode_attention") and args.check_tokens > 0:   # this tree has the choice: vs SDPA
        def greedy(cfg: SamplingConfig) -> torch.Tensor:
            model.eval()
            with autocast():
                (ro,) = policy("rollout", prompts=prompts[:1], G=G, cfg=replace(cfg, temperature=1.0, top_k=1,
                                                                            max_new_tokens=args.check_tokens),
                               generator=torch.Generator(device=env.device).manual_seed(0))
            return ro.completion_ids

        chosen = greedy(compiled_cfg)
        plain = {"decode_attention": "sdpa", "decode_split": None}    # and cuBLAS, where the tree has the choice
        if hasattr(sampling, "decode_projections"):
            plain["decode_projections"] = "cublas"
        sdpa = greedy(replace(compiled_cfg, **plain))
        n = min(chosen.shape[1], sdpa.shape[1])
        first = (chosen[:, :n] != sdpa[:, :n]).int().argmax(1)
        partial(check_tokens=args.check_tokens,
                greedy_agreement_with_sdpa=float((chosen[:, :n] == sdpa[:, :n]).float().mean()),
                greedy_equal_prefix_with_sdpa=[int(f) if bool((chosen[r, :n] != sdpa[r, :n]).any()) else n
                                               for r, f in enumerate(first.tolist())])

    partial(rollout_split=rollout_split(model, prompts, G, compiled_cfg, autocast, compiled, cuda))
    if args.profile_rollout:
        def one_rollout() -> None:
            model.eval()
            with autocast():
                policy("rollout", prompts=prompts, G=G, cfg=compiled_cfg, generator=torch.Generator(
                    device=env.device).manual_seed(1))

        partial(rollout_profile={"config": compiled["config"], **profile_summary(one_rollout, cuda)})
    result.update({k: v for k, v in compiled.items() if k not in ("config", "steps")})
    result["best"] = compiled["config"]
    C.emit(result, args.out_name)


@torch.no_grad()
def rollout_split(model, prompts, G: int, cfg: SamplingConfig, autocast, timed: dict, cuda: bool,
                  reps: int = 3) -> dict:
    """Where a rollout's time goes: the decoder's weight refresh, the prompts' prefills (each timed alone, `reps`
    times, synchronised; the prefill also split into the vision tower, the M-RoPE index and the text forward, one
    prompt at a time), the rest of the timed rollout being the token loop; per decode step from
    that."""
    from transformers import DynamicCache

    from lvr.train import rollout as RO
    from lvr.train.decode_step import static_decoder
    from lvr.train.losses import embed_inputs, visual_features

    dev = prompts[0].ids.device
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    times: dict[str, list[float]] = {k: [] for k in ("refresh_s", "prefill_s", "vision_s", "rope_index_s", "text_s")}

    def timed_part(name: str, fn):
        sync()
        t0 = time.time()
        out = fn()
        sync()
        times[name].append(time.time() - t0)
        return out

    # the tree's own prefill of all prompts: through the decoder's weights where the tree has that (batched
    # prompts; an older tree prefilled one prompt at a time through transformers)
    own = hasattr(RO, "prefill_prompts") and "decoder" in inspect.signature(RO.prefill_prompts).parameters
    vision_ctx = getattr(RO, "compiled_vision_blocks", None)
    model.eval()
    with autocast():
        for _ in range(reps):
            dec = timed_part("refresh_s", lambda: static_decoder(
                model, len(prompts) * G, max(int(p.ids.shape[1]) for p in prompts) + cfg.max_new_tokens,
                RO._compute_dtype(model, dev, cfg), dev, cfg.cuda_graphs, cfg.compile_step, cfg.decode_attention,
                cfg.decode_split, **({"projections": cfg.decode_projections}
                                     if hasattr(cfg, "decode_projections") else {})))
            if own:
                timed_part("prefill_s", lambda: RO.prefill_prompts(model, prompts, dec))
            elif hasattr(RO, "prefill_prompts"):
                timed_part("prefill_s", lambda: RO.prefill_prompts(model, prompts))
            else:
                timed_part("prefill_s", lambda: [RO._prefill(model, p) for p in prompts])
            for p in prompts:
                with vision_ctx(model, dec.compiled) if own and vision_ctx else contextlib.nullcontext():
                    vis = timed_part("vision_s", lambda: visual_features(model, p.pixel_values, p.grid))
                emb, pos = timed_part("rope_index_s", lambda: (
                    embed_inputs(model, p.ids, vis),
                    model.model.get_rope_index(p.ids, mm_token_type_ids=(p.ids == T.IMAGE_PAD_ID).int(),
                                               image_grid_thw=p.grid)[0]))
                if own:
                    timed_part("text_s", lambda: dec.prefill(emb, pos, [int(p.ids.shape[1])]))
                else:
                    cache = DynamicCache(config=model.config.get_text_config())
                    timed_part("text_s", lambda: model.model.language_model(
                        inputs_embeds=emb, position_ids=pos, past_key_values=cache, use_cache=True))
    med = {k: float(np.median(v)) for k, v in times.items()}
    loop_s = timed["rollout_s"] - med["refresh_s"] - med["prefill_s"]
    return {**med, "loop_s": loop_s, "ms_per_decode_step": 1e3 * loop_s / max(1, timed["completion_tokens"] - 1)}


def profile_summary(run, cuda: bool, top: int = 30) -> dict:
    """One call of `run` under torch.profiler: the ops and kernels that take the device's and the host's time, the
    summed device time against the profiled wall time (a single stream: their ratio is the device's busy share)."""
    from torch.profiler import ProfilerActivity, profile

    run()   # warm: a first call may still build graphs or compile
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    if cuda:
        torch.cuda.synchronize()
    t0 = time.time()
    with profile(activities=activities) as prof:
        run()
        if cuda:
            torch.cuda.synchronize()
    wall_ms = (time.time() - t0) * 1e3
    events = list(prof.key_averages())

    def device_ms(e) -> float:
        return getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0.0)) / 1e3

    def row(e) -> dict:
        return {"name": e.key[:100], "calls": e.count, "self_device_ms": round(device_ms(e), 3),
                "self_cpu_ms": round(e.self_cpu_time_total / 1e3, 3)}

    by_device = sorted(events, key=device_ms, reverse=True)[:top]
    by_cpu = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    # kernels alone (the ops that launched them carry the same device time): the device's busy time
    kernel_ms = sum(device_ms(e) for e in events 
                    if getattr(e, "device_type", torch.autograd.DeviceType.CPU) != torch.autograd.DeviceType.CPU)
    return {"profiled_wall_ms": round(wall_ms, 1), "device_ms_sum": round(sum(device_ms(e) for e in events), 1),
            "kernel_ms_sum": round(kernel_ms, 1),
            "top_device": [row(e) for e in by_device], "top_host": [row(e) for e in by_cpu]}


if __name__ == "__main__":
    main()

"""The rollout's decode step at 3B shapes (8 rows, 36 layers): cuBLAS projections (the baseline) against
lvr.train.decode_linear's Triton projections, in one process on the same model.

1. Per projection (o, gate/up with SiLU·up, down; q/k/v stays on cuBLAS), each timed as a CUDA-graph replay of 36 calls
   over 36 distinct weights (nothing stays in L2), median of `--reps` replays: the baseline (F.linear; for gate/up
   F.linear then SiLU·up, compiled as the step compiles it), the worker's default tiling (`plan`) and a sweep of
   other tilings; error against an fp32 product.
2. The whole step (the worker's StaticDecoder: compiled layer, split-K attention, CUDA graph) with cuBLAS, with
   cuBLAS and SDPA attention, with the default tiling, with the sweep's best tiling per projection and with other
   K-slice counts for o and down (`--splits`), median ms per step over `--reps` blocks of 20 replays at cache index
   `--fill`; the logits of one step from the same state against the cuBLAS step's (relative error, equal argmax per
   row: the SDPA row shows how far any other kernel moves them on a random model).

GPU:       python bench/gpu/decode_step.py
CPU check: TRITON_INTERPRET=1 python bench/gpu/decode_step.py --tiny
Writes $OUT/decode_step.json and prints `BENCH {json}`.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import torch
import torch.nn.functional as F

import train_common as C
from cuda_graph_timing import time_graph

from lvr.train import decode_linear as DL  # noqa: E402
from lvr.train.decode_step import StaticDecoder  # noqa: E402


def projections(cfg) -> dict:
    """name -> (outputs, K, swiglu, split the step asks for (None: the plan's)); q/k/v stays on cuBLAS."""
    return {"o": (cfg.hidden_size, cfg.hidden_size, False, None),
            "gate_up": (cfg.intermediate_size, cfg.hidden_size, True, 1),
            "down": (cfg.hidden_size, cfg.intermediate_size, False, None)}


def candidate_plans(n: int, k: int, rows: int, split: int | None, swiglu: bool, cuda: bool) -> list[DL.Plan]:
    default = DL.plan(n, k, rows, split)
    if not cuda:
        return [default, DL.Plan(bn=16, bk=32, split=3, stages=2, evict_first=True)] if split != 1 else [default]
    out = [default]
    space = ([1], [32, 64], [64, 128], [3, 4, 6]) if swiglu else \
        ([2, 4, 8], [32, 64], [64, 128, 256], [3, 5]) if k > n else ([2, 4, 8], [32, 64], [64, 128], [4, 6])
    for s, bn, bk, stages, evict in itertools.product(*space, [False, True]):
        p = DL.Plan(bn=bn, bk=bk, split=s, stages=stages, evict_first=evict)
        if n % bn == 0 and k % bk == 0 and p != default:
            out.append(p)
    return out


def sweep(cfg, rows: int, reps: int, cuda: bool, dev, dt, layers: int) -> dict:
    out = {}
    for name, (n, k, swiglu, split) in projections(cfg).items():
        gen = torch.Generator(device=dev).manual_seed(0)
        x = torch.randn(rows, k, device=dev, generator=gen).to(dt)
        n_w = 2 * n if swiglu else n
        ws = [(torch.randn(n_w, k, device=dev, generator=gen) * k ** -0.5).to(dt) for _ in range(layers)]
        if swiglu:
            g, u = F.linear(x.float(), ws[0].float()).chunk(2, -1)
            ref = F.silu(g) * u
            unfused = torch.compile(lambda x, w: (lambda gu: F.silu(gu[0]) * gu[1])(F.linear(x, w).chunk(2, -1)))
            base = (lambda w: unfused(x, w))

            def ours(w, p):
                return DL.swiglu_into(x, w, p)
        else:
            ref = F.linear(x.float(), ws[0].float())
            base = (lambda w: F.linear(x, w))

            def ours(w, p):   # partial sums stay unsummed: in the step the next norm's kernel adds them
                return DL.rows_linear_into(x, w, p=p)

        rows_out = {}
        variants = [("cublas", base)] + [(plan_name(p),
                                          (lambda p: lambda w: ours(w, p))(p))
                                         for p in candidate_plans(n, k, rows, split, swiglu, cuda)]
        for i, (v, fn) in enumerate(variants):
            try:
                y = fn(ws[0])
                err = float(((y.sum(0) if y.dim() == 3 else y).float() - ref).norm() / ref.norm())
                us = time_graph(lambda: [fn(w) for w in ws], reps, layers) if cuda else None
                rows_out[v] = {"us": None if us is None else round(us, 2), "rel_err": err, "default": i == 1}
            except Exception as e:  # noqa: BLE001 - a tiling that does not build is reported
                rows_out[v] = {"error": f"{type(e).__name__}: {e}"[:200]}
        ok = {v: r for v, r in rows_out.items() if r.get("us") is not None and r["rel_err"] < 2e-2}
        best = min((v for v in ok if v != "cublas"), key=lambda v: ok[v]["us"], default=None)
        default = variants[1][0]
        out[name] = {"N": n, "K": k, "weight_mb": n_w * k * 2 / 1e6, "variants": rows_out, "default": default,
                     "best": best,
                     "default_vs_cublas": ok["cublas"]["us"] / ok[default]["us"] if default in ok and "cublas" in ok
                     else None,
                     "best_vs_cublas": ok["cublas"]["us"] / ok[best]["us"] if best and "cublas" in ok else None}
        print("PROJ", name, out[name]["default_vs_cublas"], best, out[name]["best_vs_cublas"], flush=True)
    return out


def plan_name(p: DL.Plan) -> str:
    return f"bn{p.bn}_bk{p.bk}_s{p.split}_w{p.warps}_st{p.stages}_ev{int(p.evict_first)}"


def parse_plan(name: str) -> DL.Plan:
    f = dict((part[:2] if part[:2] in ("bn", "bk", "st", "ev") else part[:1], int(part.lstrip("bkstnwev")))
             for part in name.split("_"))
    return DL.Plan(bn=f["bn"], bk=f["bk"], split=f["s"], warps=f["w"], stages=f["st"], evict_first=bool(f["ev"]))


def step_variants(cfg, best: dict[str, DL.Plan], splits: list[tuple[int, int]]) -> list[tuple]:
    """(name, projections, attention, plan override or None): the cuBLAS step (the reference), the cuBLAS step with
    SDPA attention (how far another attention kernel moves the logits), the Triton default, the sweep's best tiling
    per projection, and the default tiling with other (o, down) K-slice counts."""
    o, down = (cfg.hidden_size, cfg.hidden_size), (cfg.hidden_size, cfg.intermediate_size)
    shapes = {(n, k): name for name, (n, k, *_rest) in projections(cfg).items()}

    def override(table):
        return lambda n, k, r, split=None, default=DL.plan: table.get((n, k)) or default(n, k, r, split)

    out = [("cublas", "cublas", "split_k", None), ("cublas_sdpa", "cublas", "sdpa", None),
           ("triton", "triton", "split_k", None)]
    if best:
        out.append(("triton_best", "triton", "split_k", override({nk: best[name] for nk, name in shapes.items()
                                                                   if name in best})))
    for so, sd in splits:
        out.append((f"triton_o{so}_down{sd}", "triton", "split_k",
                    override({o: DL.Plan(split=so), down: DL.Plan(split=sd)})))
    return out


def step_timings(model, cfg, rows: int, fill: int, max_len: int, reps: int, cuda: bool, dev, dt,
                 variants: list[tuple]) -> dict:
    """ms per graph-replayed step and the logits against the cuBLAS step's, from the same cache and inputs."""
    gen = torch.Generator(device=dev).manual_seed(1)
    tok = torch.randint(100, cfg.vocab_size, (rows,), device=dev, generator=gen)
    caches = None
    out, ref_logits = {}, None
    default_plan = DL.plan
    for variant, kind, attention, plan in variants:
        DL.plan = plan or default_plan
        # the compiled layer's guards and Inductor's graph cache do not see the tiling: compile each variant afresh
        torch._dynamo.reset()
        torch._inductor.config.fx_graph_cache = False
        try:
            dec = StaticDecoder(model, rows, max_len, dt, dev, graph=cuda, compile_layer=True, attention=attention,
                                projections=kind)
            if caches is None:
                caches = [(torch.randn_like(k, dtype=torch.float32) * 0.5).to(k.dtype) for k in dec.k + dec.v]
            for dst, src in zip(dec.k + dec.v, caches):
                dst.copy_(src)

            def reset() -> None:
                dec.idx.fill_(fill)
                dec.pos.fill_(fill)
                dec.tok.copy_(tok)
                dec.h.zero_()
                dec.mode.zero_()

            reset()
            dec.step()
            logits = dec.logits.clone()
            row = {}
            if cuda:
                times = []
                for _ in range(reps):
                    reset()
                    torch.cuda.synchronize()
                    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    a.record()
                    for _ in range(20):
                        dec.step()
                    b.record()
                    b.synchronize()
                    times.append(a.elapsed_time(b) / 20)
                row["ms_per_step"] = statistics.median(times)
            if ref_logits is None:
                ref_logits = logits
            else:
                row["logits_rel_err"] = float((logits - ref_logits).norm() / ref_logits.norm())
                row["argmax_equal"] = (logits.argmax(-1) == ref_logits.argmax(-1)).tolist()
            row["projections"] = dec.projections
            out[variant] = row
            print("STEP", variant, row, flush=True)
            del dec
            if cuda:
                torch.cuda.empty_cache()
        finally:
            DL.plan = default_plan
    if cuda:
        out["speedup"] = {v: out["cublas"]["ms_per_step"] / out[v]["ms_per_step"] for v in out if v != "cublas"}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--fill", type=int, default=560, help="cache slots already filled (prompt + half a completion)")
    ap.add_argument("--max-len", type=int, default=1024)
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--splits", default="2:2,2:4,4:2,4:8,8:8",
                    help="o:down K-slice counts to time in the whole step beside the default tiling")
    args = ap.parse_args()
    t0 = time.time()
    cuda = torch.cuda.is_available() and not args.tiny
    dev = torch.device("cuda" if cuda else "cpu")
    dt = torch.bfloat16 if cuda else torch.float32
    model = C.build_model(args.tiny, dev).eval()
    cfg = model.config.get_text_config()
    fill, max_len = (args.fill, args.max_len) if cuda else (20, 64)
    out = {"bench": "decode_step", "card": torch.cuda.get_device_name() if cuda else "cpu", "rows": args.rows,
           "layers": cfg.num_hidden_layers, "fill": fill}
    sw = {} if args.no_sweep else sweep(cfg, args.rows, args.reps, cuda, dev, dt, cfg.num_hidden_layers if cuda else 1)
    out["projections"] = sw
    best = {name: parse_plan(r["best"]) for name, r in sw.items() if r.get("best")}
    out["best_plans"] = {name: vars(p) for name, p in best.items()}
    with torch.no_grad():
        splits = [tuple(int(v) for v in pair.split(":")) for pair in args.splits.split(",") if pair]
        out["step"] = step_timings(model, cfg, args.rows, fill, max_len, args.reps, cuda, dev, dt,
                                   step_variants(cfg, best, splits))
    out["wall_s"] = time.time() - t0
    C.emit(out, "decode_step.json")


if __name__ == "__main__":
    main()

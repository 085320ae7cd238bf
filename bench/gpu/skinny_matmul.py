"""Decode-step projections at 3B shapes (8 rows): cuBLAS (F.linear, what the rollout step runs) against other ways of
computing the same product, each timed as a CUDA-graph replay of 36 calls over 36 distinct weights (one per layer, so
nothing stays in L2), median of `--reps` replays; error against an fp32 product.

Variants: `cublas` (F.linear), `cublas_wt` ((W @ xᵀ)ᵀ: the weight as the left operand, other kernels), `cublas_m16`
(x padded to 16 rows), and `triton_BN_BK_w_s` (the kernel below: one program per BN output columns, the whole K per
program, BK per step, w warps, s pipeline stages; x's rows padded to 16 for the tensor-core dot). Why try: cuBLAS runs
the small projections (q/k/v, o: 8-10 MB) on 32-40 thread blocks of 64 columns; 16-column programs give 128-160.
Result on an H200 (bench/results/skinny_matmul-h200.json): the best Triton configurations beat cuBLAS by 2% (q/k/v),
10% (o) and 6% (gate/up), not on down: ~40 ms of a 1.55 s rollout, so the step keeps cuBLAS (no per-GPU tuning).

GPU:       python bench/gpu/skinny_matmul.py
CPU check: TRITON_INTERPRET=1 python bench/gpu/skinny_matmul.py --tiny
Writes $OUT/skinny_matmul.json and prints `BENCH {json}`.
"""

from __future__ import annotations

import argparse
import itertools
import statistics

import torch
import torch.nn.functional as F

import train_common as C

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - triton ships with CUDA builds of torch
    triton = None

if triton is not None:
    @triton.jit
    def _skinny(x_ptr, w_ptr, b_ptr, y_ptr, M, K, sx, sw, sy, HAS_BIAS: tl.constexpr, BM: tl.constexpr,
                BN: tl.constexpr, BK: tl.constexpr, STAGES: tl.constexpr):
        n = tl.program_id(0) * BN + tl.arange(0, BN)
        m = tl.arange(0, BM)
        kk = tl.arange(0, BK)
        acc = tl.zeros((BM, BN), tl.float32)
        for k in tl.range(0, K, BK, num_stages=STAGES):
            x = tl.load(x_ptr + m[:, None] * sx + (k + kk)[None, :], mask=m[:, None] < M, other=0.0)
            w = tl.load(w_ptr + n[:, None] * sw + (k + kk)[None, :])
            acc = tl.dot(x, tl.trans(w), acc)
        if HAS_BIAS:
            acc += tl.load(b_ptr + n).to(tl.float32)[None, :]
        tl.store(y_ptr + m[:, None] * sy + n[None, :], acc.to(y_ptr.dtype.element_ty), mask=m[:, None] < M)


def skinny_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None, bn: int = 16, bk: int = 256,
                  warps: int = 4, stages: int = 3) -> torch.Tensor:
    """F.linear(x, w, b) for x [M ≤ 16, K], w [N, K] with N a multiple of `bn` and K of `bk` (unit inner strides)."""
    M, K = x.shape
    N = w.shape[0]
    if M > 16 or N % bn or K % bk or x.stride(-1) != 1 or w.stride(-1) != 1:
        raise ValueError(f"skinny_linear needs ≤16 rows, N % {bn} == 0, K % {bk} == 0 and unit inner strides; got "
                         f"x {tuple(x.shape)}, w {tuple(w.shape)}")
    y = torch.empty(M, N, dtype=x.dtype, device=x.device)
    _skinny[(N // bn,)](x, w, b if b is not None else w, y, M, K, x.stride(0), w.stride(0), y.stride(0),
                        HAS_BIAS=b is not None, BM=16, BN=bn, BK=bk, STAGES=stages, num_warps=warps)
    return y


SHAPES = {"qkv_w": (2560, 2048, True), "o_w": (2048, 2048, False), "gu_w": (22016, 2048, False),
          "down_w": (2048, 11008, False)}
TINY = {"qkv_w": (192, 128, True), "down_w": (64, 256, False)}


def time_graph(fn, reps: int) -> float:
    """Median µs per call of `fn` (36 calls per replay)."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        fn()
        fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1e3 / 36)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    cuda = torch.cuda.is_available() and not args.tiny
    dev = torch.device("cuda" if cuda else "cpu")
    dt = torch.bfloat16 if cuda else torch.float32
    layers = 36 if cuda else 1
    configs = list(itertools.product([16, 32, 64], [128, 256], [2, 4], [3, 5])) if cuda else [(16, 64, 4, 2)]
    out = {"bench": "skinny_matmul", "card": torch.cuda.get_device_name() if cuda else "cpu", "rows": args.rows,
           "shapes": {}}
    for name, (N, K, bias) in (SHAPES if cuda else TINY).items():
        gen = torch.Generator(device=dev).manual_seed(0)
        x = torch.randn(args.rows, K, device=dev, generator=gen).to(dt)
        ws = [(torch.randn(N, K, device=dev, generator=gen) * K ** -0.5).to(dt) for _ in range(layers)]
        b = (torch.randn(N, device=dev, generator=gen) * 0.1).to(dt) if bias else None
        ref = F.linear(x.float(), ws[0].float(), b.float() if bias else None)
        x16 = torch.zeros(16, K, device=dev, dtype=dt)
        x16[:args.rows] = x
        variants = {"cublas": lambda w: F.linear(x, w, b),
                    "cublas_wt": lambda w: (torch.addmm(b[:, None], w, x.T) if bias else w @ x.T).T,
                    "cublas_m16": lambda w: F.linear(x16, w, b)[:args.rows]}
        for bn, bk, warps, stages in configs:
            variants[f"triton_{bn}_{bk}_{warps}_{stages}"] = \
                (lambda c: lambda w: skinny_linear(x, w, b, *c))((bn, bk, warps, stages))
        row = {}
        for v, fn in variants.items():
            try:
                err = float((fn(ws[0]).float() - ref).norm() / ref.norm())
                us = time_graph(lambda: [fn(w) for w in ws], args.reps) if cuda else None
                row[v] = {"us": None if us is None else round(us, 2), "rel_err": err}
            except Exception as e:  # noqa: BLE001 - a config that does not build is reported
                row[v] = {"error": f"{type(e).__name__}: {e}"[:200]}
        ok = {v: r for v, r in row.items() if "us" in r and r["us"] is not None and r["rel_err"] < 2e-2}
        best = min(ok, key=lambda v: ok[v]["us"]) if ok else None
        out["shapes"][name] = {"N": N, "K": K, "bias": bias, "weight_mb": N * K * 2 / 1e6, "variants": row,
                               "best": best, "best_vs_cublas": (row["cublas"]["us"] / ok[best]["us"]) if best else None}
        print(name, best, out["shapes"][name]["best_vs_cublas"], flush=True)
    C.emit(out, "skinny_matmul.json")


if __name__ == "__main__":
    main()

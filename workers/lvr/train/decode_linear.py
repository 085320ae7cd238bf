"""The decode step's weight projections at rollout batch sizes (≤ 16 rows) as Triton kernels, for
lvr.train.decode_step's "triton" projections.

Why not cuBLAS (profile of a 3B rollout on an H200, bench/results/train_grpo_vision_varlen_ab-h200.json): at 8 rows
the step is bandwidth-bound, yet cuBLAS streams the down projection at ~2.9 TB/s through a split-K GEMM plus a
separate reduce kernel, and the gate/up product is followed by its own SiLU·up kernel. Here:
- one program per `bn` output columns and K-slice, every row at once (rows padded to 16 for the tensor-core dot);
- `split` > 1 cuts K into slices whose fp32 partial sums [split, M, N] are summed by the consumer (a compiled
  layer folds that sum into its next residual-add + RMSNorm kernel), so no reduce kernel and no atomics: the result
  does not depend on program timing;
- the gate/up projection computes matching gate and up columns in one program and writes SiLU(gate)·up, each factor
  rounded to the compute dtype first as the unfused product would be.

Torch custom ops (`lvr::rows_linear`, `lvr::swiglu_linear`) so that a `torch.compile`d decoder layer and a CUDA graph
capture them. Under TRITON_INTERPRET=1 the same kernels run on CPU tensors (how the tests check them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - triton ships with CUDA builds of torch
    triton = None

MAX_ROWS = 16          # rows are padded to one 16-row tensor-core tile
TARGET_PROGRAMS = 256  # about two programs per SM on an H200 (132 SMs)


@dataclass(frozen=True)
class Plan:
    """How one projection is tiled: `bn` output columns and one of `split` K-slices per program, `bk` inputs per
    pipelined step (`stages` in flight); weights loaded with an evict-first cache hint when `evict_first`."""
    bn: int = 32
    bk: int = 64
    split: int = 1
    warps: int = 4
    stages: int = 5
    evict_first: bool = False


def plan(n_out: int, k: int, rows: int, split: int | None = None) -> Plan | None:
    """The tiling for an [rows, k] x [n_out, k]ᵀ product, or None when these kernels do not cover it. K is cut into
    the fewest slices (1, 2, 4, 8) that give at least TARGET_PROGRAMS programs (or exactly `split`)."""
    tile = Plan()
    if rows > MAX_ROWS or n_out % tile.bn or k % tile.bk:
        return None
    blocks = n_out // tile.bn
    return Plan(split=split or next((s for s in (1, 2, 4) if blocks * s >= TARGET_PROGRAMS), 8))


def slice_len(k: int, p: Plan) -> int:
    """Inputs per K-slice: whole `bk` steps, the last slice shorter (or empty) when they do not divide evenly."""
    return -(-(k // p.bk) // p.split) * p.bk


if triton is not None:
    @triton.jit
    def _rows_linear(x_ptr, w_ptr, y_ptr, M, K, sx, sw, sy_s, sy_m, n_up,
                     K_SLICE: tl.constexpr, SWIGLU: tl.constexpr, IEEE: tl.constexpr, EVICT: tl.constexpr,
                     BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, STAGES: tl.constexpr):
        n = tl.program_id(0) * BN + tl.arange(0, BN)
        s = tl.program_id(1)
        m = tl.arange(0, BM)
        kk = tl.arange(0, BK)
        rows_ok = m[:, None] < M
        acc = tl.zeros((BM, BN), tl.float32)
        up = tl.zeros((BM, BN), tl.float32)
        for k in tl.range(s * K_SLICE, tl.minimum((s + 1) * K_SLICE, K), BK, num_stages=STAGES):
            x = tl.load(x_ptr + m[:, None] * sx + (k + kk)[None, :], mask=rows_ok, other=0.0)
            if EVICT:
                w = tl.load(w_ptr + n[:, None] * sw + (k + kk)[None, :], eviction_policy="evict_first")
            else:
                w = tl.load(w_ptr + n[:, None] * sw + (k + kk)[None, :])
            if IEEE:
                acc = tl.dot(x, tl.trans(w), acc, input_precision="ieee")
            else:
                acc = tl.dot(x, tl.trans(w), acc)
            if SWIGLU:
                if EVICT:
                    wu = tl.load(w_ptr + (n_up + n)[:, None] * sw + (k + kk)[None, :], eviction_policy="evict_first")
                else:
                    wu = tl.load(w_ptr + (n_up + n)[:, None] * sw + (k + kk)[None, :])
                if IEEE:
                    up = tl.dot(x, tl.trans(wu), up, input_precision="ieee")
                else:
                    up = tl.dot(x, tl.trans(wu), up)
        if SWIGLU:
            gate = acc.to(y_ptr.dtype.element_ty).to(tl.float32)
            acc = gate * tl.sigmoid(gate) * up.to(y_ptr.dtype.element_ty).to(tl.float32)
        tl.store(y_ptr + s * sy_s + m[:, None] * sy_m + n[None, :], acc.to(y_ptr.dtype.element_ty), mask=rows_ok)


def _check(x: torch.Tensor, w: torch.Tensor, n_out: int, p: Plan | None) -> Plan:
    if (p is None or x.stride(-1) != 1 or w.stride(-1) != 1 or x.shape[1] != w.shape[1] or x.shape[0] > MAX_ROWS
            or n_out % p.bn or x.shape[1] % p.bk):
        tile = p or Plan()
        raise ValueError(f"no Triton tiling for x {tuple(x.shape)} x w {tuple(w.shape)} ({n_out} outputs); needs "
                         f"≤ {MAX_ROWS} rows, outputs a multiple of {tile.bn}, K a multiple of {tile.bk}, unit inner "
                         "strides")
    return p


def _launch(x, w, y, n_out: int, p: Plan, swiglu: bool) -> None:
    M, K = x.shape
    _rows_linear[(n_out // p.bn, p.split)](
        x, w, y, M, K, x.stride(0), w.stride(0), y.stride(0) if y.dim() == 3 else 0, y.stride(-2),
        n_out if swiglu else 0, K_SLICE=slice_len(K, p), SWIGLU=swiglu, IEEE=x.dtype == torch.float32,
        EVICT=p.evict_first, BM=MAX_ROWS, BN=p.bn, BK=p.bk, STAGES=p.stages, num_warps=p.warps)


def rows_linear_into(x: torch.Tensor, w: torch.Tensor, split: int | None = None, p: Plan | None = None
                     ) -> torch.Tensor:
    """x [M, K] · w [N, K]ᵀ. One slice: [M, N] in x's dtype; `split` > 1 slices: fp32 partial sums [split, M, N]
    whose sum over dim 0 is the product."""
    p = _check(x, w, w.shape[0], p or plan(w.shape[0], x.shape[1], x.shape[0], split))
    y = _product(x, w.shape[0], p)
    _launch(x, w, y, w.shape[0], p, swiglu=False)
    return y


def _product(x: torch.Tensor, n_out: int, p: Plan) -> torch.Tensor:
    """The empty output of a product tiled by `p` (also the custom op's fake): fp32 partial sums per slice, or the
    product itself in x's dtype."""
    if p.split > 1:
        return x.new_empty((p.split, x.shape[0], n_out), dtype=torch.float32)
    return x.new_empty((x.shape[0], n_out))


def swiglu_into(x: torch.Tensor, gate_up: torch.Tensor, p: Plan | None = None) -> torch.Tensor:
    """SiLU(x·gateᵀ)·(x·upᵀ) for gate_up = [gate; up] ([2I, K]) -> [M, I] in x's dtype."""
    n_out = gate_up.shape[0] // 2
    p = _check(x, gate_up, n_out, p or plan(n_out, x.shape[1], x.shape[0], 1))
    if p.split != 1:
        raise ValueError("the SiLU·up product needs whole sums: split must be 1")
    y = torch.empty(x.shape[0], n_out, dtype=x.dtype, device=x.device)
    _launch(x, gate_up, y, n_out, p, swiglu=True)
    return y


def covers(rows: int, hidden: int, intermediate: int) -> bool:
    """Whether the o, gate/up and down projections of a decoder layer of these sizes have a tiling (`plan`)."""
    return all(plan(n, k, rows) is not None for n, k in [(hidden, hidden), (intermediate, hidden),
                                                           (hidden, intermediate)])


@torch.library.custom_op("lvr::rows_linear", mutates_args=())
def rows_linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """`rows_linear_into` with the plan's split, as one opaque op for torch.compile."""
    return rows_linear_into(x, w)


@rows_linear.register_fake
def _(x, w):
    return _product(x, w.shape[0], plan(w.shape[0], x.shape[1], x.shape[0]) or Plan())


@torch.library.custom_op("lvr::swiglu_linear", mutates_args=())
def swiglu_linear(x: torch.Tensor, gate_up: torch.Tensor) -> torch.Tensor:
    """`swiglu_into` as one opaque op for torch.compile."""
    return swiglu_into(x, gate_up)


@swiglu_linear.register_fake
def _(x, gate_up):
    return x.new_empty((x.shape[0], gate_up.shape[0] // 2))

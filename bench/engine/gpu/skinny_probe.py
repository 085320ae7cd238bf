"""Decode projections on the GPU: the addon's NVRTC-compiled skinny kernels (libs/engine/native/skinny_linear.cu)
against cuBLAS through PyTorch, at the decoder's matrix shapes and 1-8 rows (issue #14's bandwidth floor).

Both sides run inside one CUDA graph per shape (`cuda_graph_timing.time_graph`: 20 launches, each on its own copy of the weights, together larger
than L2, so every launch reads its weights from HBM as a decode step does) and are timed in turn.
Sides: `ours` (w [N, K]), `torch_linear` (F.linear, the same layout) and `torch_matmul` (x @ w with w [K, N], ONNX
Runtime's MatMul layout). `gate_up` (N = the MLP width, two weights) compares our silu_mul kernel with two
projections plus silu(gate) * up. The kernels are built for one row (the lvr ops send more rows to cuBLAS).

  python3 bench/engine/gpu/skinny_probe.py OUT.json [--shapes 7b,3b]
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import json
import os
import site
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "gpu"))
from cuda_graph_timing import time_graph  # noqa: E402

SOURCE = os.path.join(HERE, "..", "..", "..", "libs", "engine", "native", "skinny_linear.cu")
SHAPES = {
    "7b": {"qkv": (3584, 4608, True), "o": (3584, 3584, False), "gate_up": (3584, 18944, False),
           "down": (18944, 3584, False), "lm_head": (3584, 152064, False)},
    "3b": {"qkv": (2048, 2560, True), "o": (2048, 2048, False), "gate_up": (2048, 11008, False),
           "down": (11008, 2048, False), "lm_head": (2048, 151936, False)},
}
LAUNCHES = 20


def _lib(pattern: str) -> ctypes.CDLL:
    for root in site.getsitepackages():
        hits = sorted(glob.glob(os.path.join(root, "nvidia", "**", pattern), recursive=True))
        if hits:
            return ctypes.CDLL(hits[-1])
    return ctypes.CDLL(pattern.replace("*", ""))


class Kernels:
    """NVRTC compile of skinny_linear.cu for this GPU and its entry points through the driver API."""

    def __init__(self):
        self.nvrtc = _lib("libnvrtc.so*")
        self.cu = ctypes.CDLL("libcuda.so.1")
        major, minor = torch.cuda.get_device_capability()
        src = open(SOURCE, "rb").read()
        prog = ctypes.c_void_p()
        self._check(self.nvrtc.nvrtcCreateProgram(ctypes.byref(prog), src, b"skinny_linear.cu", 0, None, None))
        opts = [f"--gpu-architecture=sm_{major}{minor}".encode(), b"-std=c++17", b"--use_fast_math"]
        arr = (ctypes.c_char_p * len(opts))(*opts)
        rc = self.nvrtc.nvrtcCompileProgram(prog, len(opts), arr)
        size = ctypes.c_size_t()
        self.nvrtc.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        self.nvrtc.nvrtcGetProgramLog(prog, log)
        if rc != 0:
            raise RuntimeError(f"nvrtc: {log.value.decode(errors='replace')}")
        self.nvrtc.nvrtcGetCUBINSize(prog, ctypes.byref(size))
        cubin = ctypes.create_string_buffer(size.value)
        self._check(self.nvrtc.nvrtcGetCUBIN(prog, cubin))
        torch.cuda.init()
        torch.zeros(1, device="cuda")  # the primary context exists
        self.module = ctypes.c_void_p()
        self._check(self.cu.cuModuleLoadData(ctypes.byref(self.module), cubin))
        self.fns = {}

    @staticmethod
    def _check(rc):
        if rc != 0:
            raise RuntimeError(f"CUDA/NVRTC error {rc}")

    def fn(self, name: str):
        if name not in self.fns:
            f = ctypes.c_void_p()
            self._check(self.cu.cuModuleGetFunction(ctypes.byref(f), self.module, name.encode()))
            self.fns[name] = f
        return self.fns[name]

    def launch(self, name: str, warps: int, args: list):
        ptrs = (ctypes.c_void_p * len(args))(*[ctypes.addressof(a) for a in args])
        blocks = (warps + 7) // 8
        stream = torch.cuda.current_stream().cuda_stream
        self._check(self.cu.cuLaunchKernel(self.fn(name), blocks, 1, 1, 256, 1, 1, 0, ctypes.c_void_p(stream),
                                           ptrs, None))


def bench_shape(k: Kernels, name: str, K: int, N: int, bias: bool, m: int) -> dict:
    dev = torch.device("cuda")
    silu = name == "gate_up"
    mats = 2 if silu else 1
    copies = max(2, -(-256 * 2**20 // (mats * K * N * 2)))
    ws = [torch.randn(mats * N, K, device=dev, dtype=torch.float16) * K ** -0.5 for _ in range(min(copies, LAUNCHES))]
    wts = [w.t().contiguous() for w in ws]
    b = torch.randn(N, device=dev, dtype=torch.float16) if bias else None
    x = torch.randn(m, K, device=dev, dtype=torch.float16)
    y = torch.empty(m, N, device=dev, dtype=torch.float16)
    warps = N
    ptr = lambda t: ctypes.c_void_p(t.data_ptr()) if t is not None else ctypes.c_void_p(0)

    def ours():
        for i in range(LAUNCHES):
            w = ws[i % len(ws)]
            if silu:
                k.launch(f"lvr_silu_mul_m{m}", warps, [ptr(x), ptr(w), ptr(w[N:]), ptr(y), ctypes.c_int(K),
                                                       ctypes.c_int(N)])
            else:
                k.launch(f"lvr_linear_m{m}", warps, [ptr(x), ptr(w), ptr(b), ptr(y), ctypes.c_int(K),
                                                     ctypes.c_int(N)])

    def ref_of(z):
        return F.silu(z[:, :N]) * z[:, N:] if silu else z

    def torch_linear():
        for i in range(LAUNCHES):
            ref_of(F.linear(x, ws[i % len(ws)], b))

    def torch_matmul():
        for i in range(LAUNCHES):
            wt = wts[i % len(wts)]
            if silu:  # two projections, as the fused graph's gate and up MatMuls
                ref_of(torch.cat([x @ wt[:, :N], x @ wt[:, N:]], dim=1))
            else:
                z = x @ wt
                ref_of(z + b if b is not None else z)

    ours()
    torch.cuda.synchronize()
    want = ref_of(F.linear(x.float(), ws[(LAUNCHES - 1) % len(ws)].float(), b.float() if b is not None else None))
    err = ((y.float() - want).abs().max() / want.abs().max()).item()
    res = {"K": K, "N": N, "rows": m, "weight_mb": mats * K * N * 2 / 1e6, "rel_err": err}
    for side, fn in (("ours", ours), ("torch_linear", torch_linear), ("torch_matmul", torch_matmul)):
        us = time_graph(fn, reps=7, calls=LAUNCHES)
        res[side + "_us"] = us
        res[side + "_tbs"] = mats * K * N * 2 / us / 1e6
    res["ours_vs_linear"] = res["ours_us"] / res["torch_linear_us"]
    res["ours_vs_matmul"] = res["ours_us"] / res["torch_matmul_us"]
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--shapes", default="7b,3b")
    ap.add_argument("--rows", default="1")
    a = ap.parse_args()
    k = Kernels()
    out = {"bench": "skinny_probe", "card": torch.cuda.get_device_name(), "launches_per_graph": LAUNCHES, "runs": []}
    for shape in a.shapes.split(","):
        for name, (K, N, bias) in SHAPES[shape].items():
            for m in (int(r) for r in a.rows.split(",")):
                r = {"shape": shape, "matrix": name, **bench_shape(k, name, K, N, bias, m)}
                out["runs"].append(r)
                print(f"{shape} {name:8s} m={m} ours {r['ours_us']:7.1f} us ({r['ours_tbs']:.2f} TB/s) "
                      f"linear {r['torch_linear_us']:7.1f} ({r['torch_linear_tbs']:.2f}) matmul "
                      f"{r['torch_matmul_us']:7.1f} ({r['torch_matmul_tbs']:.2f}) err {r['rel_err']:.1e}", flush=True)
                torch.cuda.empty_cache()
    json.dump(out, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    sys.exit(main())

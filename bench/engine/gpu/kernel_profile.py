"""Where a fused decode step's GPU time goes (issue #14's bandwidth-floor question): the bundle's
graphs.decoder_fused on ONNX Runtime's CUDA EP (ort_fused_probe.FusedStep, no CUDA graph so that every kernel is
traced), one new position per row, under torch.profiler's CUPTI tracing, which sees ONNX Runtime's kernels because
they run in the same process. Per kernel name: launches and GPU microseconds per step; per kind (matmul, attention,
norm, rotary, elementwise, top-k, copy): the sum; the step's wall time and kernel time; the weight bytes a step reads
over its matmul time (the matmuls' achieved bandwidth).

    python bench/engine/gpu/kernel_profile.py BUNDLE [BUNDLE ...] --out kernels.json [--batches 1,32] [--context 1024]

Several bundles (e.g. WORK/bundle-fp16 WORK/bundle-int4) are profiled one after the other into one JSON.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ort_fused_probe import FusedStep, time_steps  # noqa: E402

KINDS = (("attention", ("flash", "attention", "fmha", "gqa", "mha", "softmax")), ("matmul", ("gemv", "gemm", "sm90", "xmma",
         "cutlass", "cublas", "splitk", "matmul")), ("norm", ("layernorm", "layer_norm", "rmsnorm")),
         ("rotary", ("rotary",)), ("top-k", ("topk", "radix", "sort")), ("copy", ("memcpy", "copy", "concat")))


def kind_of(name: str) -> str:
    low = name.lower()
    for kind, marks in KINDS:
        if any(m in low for m in marks):
            return kind
    return "elementwise/other"


def profile(step: FusedStep, context: int, steps: int) -> dict:
    wall_ms = time_steps(step, context, steps)  # 6 warm-up steps, then `steps` timed ones
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for s in range(steps):
            step.step(context + 6 + steps + s)
        torch.cuda.synchronize()
    per_name: dict[str, list[float]] = collections.defaultdict(list)
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            per_name[e.name].append(e.time_range.elapsed_us())
    kernels = sorted(({"name": n[:160], "kind": kind_of(n), "launches_per_step": len(t) / steps,
                       "us_per_step": sum(t) / steps, "mean_us": sum(t) / len(t)} for n, t in per_name.items()),
                     key=lambda k: -k["us_per_step"])
    kinds: dict[str, float] = collections.defaultdict(float)
    for k in kernels:
        kinds[k["kind"]] += k["us_per_step"]
    return {"context": context, "steps": steps, "wall_ms_per_step": wall_ms,
            "kernel_us_per_step": sum(kinds.values()),
            "launches_per_step": sum(k["launches_per_step"] for k in kernels),
            "kinds_us_per_step": dict(sorted(kinds.items(), key=lambda kv: -kv[1])), "kernels": kernels[:40]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("bundles", nargs="+")
    ap.add_argument("--out", required=True)
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=32)
    args = ap.parse_args()
    out: dict = {"card": torch.cuda.get_device_name(0), "bundles": {}}
    for path in args.bundles:
        bundle = Path(path)
        arch = json.loads((bundle / "manifest.json").read_text())["architecture"]
        weight_bytes = sum(f.stat().st_size for f in bundle.iterdir() if f.name.startswith("decoder_fused.onnx"))
        entry: dict = {"layers": arch["num_hidden_layers"], "decoder_fused_bytes": weight_bytes, "runs": []}
        out["bundles"][bundle.name] = entry
        for batch in (int(b) for b in args.batches.split(",")):
            step = FusedStep(bundle / "decoder_fused.onnx", arch, batch, args.context + 2 * args.steps + 8,
                             cuda_graph=False)
            run = profile(step, args.context, args.steps)
            del step
            matmul_us = run["kinds_us_per_step"].get("matmul", 0.0)
            run["batch"] = batch
            run["matmul_read_tb_s"] = weight_bytes / (matmul_us * 1e-6) / 1e12 if matmul_us else None
            entry["runs"].append(run)
            Path(args.out).write_text(json.dumps(out, indent=2))
            print(bundle.name, json.dumps({k: v for k, v in run.items() if k != "kernels"}), flush=True)
            for k in run["kernels"][:25]:
                print(f"  {k['us_per_step']:8.1f} us  x{k['launches_per_step']:5.1f}  {k['kind']:18s} {k['name'][:90]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Feasibility probe for issue #14's native path: the bundle's decoder graph (prep.py's fp16 bundle) on ONNX Runtime's
CUDA execution provider with IO binding, the KV cache kept on the GPU between steps (each step's `present` outputs,
allocated by ONNX Runtime on the device, bound as the next step's `past` inputs). Batch 1, greedy-shaped decode steps
(one new position per step, a fixed embedding as input), ms per step after a prefill of `--context` positions.

This is what a native addon over the C API would run (same graph, same bindings), without the addon: its numbers say
how close the CUDA EP gets to PyTorch on the same card before any addon is built. Needs `onnxruntime-gpu` importable.

    python bench/engine/gpu/ort_cuda_probe.py WORK --out probe.json [--contexts 32,1024] [--steps 64]
    (CPU check of the plumbing: LVR_BENCH_TINY=1 python bench/engine/gpu/prep.py WORK, then --device cpu)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def decode_ms(sess, arch: dict, context: int, steps: int, device_name: str, warmup: int = 8) -> dict:
    import onnxruntime as ort

    H, L = arch["hidden_size"], arch["num_hidden_layers"]
    kvh, D = arch["num_key_value_heads"], arch["hidden_size"] // arch["num_attention_heads"]
    rng = np.random.default_rng(0)

    def device(a: np.ndarray):
        return ort.OrtValue.ortvalue_from_numpy(a, device_name, 0)

    def run(embeds, start: int, n: int, past: list) -> tuple[float, list]:
        io = sess.io_binding()
        io.bind_ortvalue_input("inputs_embeds", embeds)
        io.bind_cpu_input("attention_mask", np.ones((1, start + n), dtype=np.int64))
        io.bind_cpu_input("position_ids", np.broadcast_to(np.arange(start, start + n, dtype=np.int64),
                                                          (3, 1, n)).copy())
        for i in range(L):
            io.bind_ortvalue_input(f"past_key_values.{i}.key", past[2 * i])
            io.bind_ortvalue_input(f"past_key_values.{i}.value", past[2 * i + 1])
        names = [o.name for o in sess.get_outputs()]
        for name in names:
            io.bind_output(name, device_name)
        t0 = time.perf_counter()
        sess.run_with_iobinding(io)
        io.synchronize_outputs()
        dt = time.perf_counter() - t0
        outs = dict(zip(names, io.get_outputs()))
        return dt, [outs[f"present.{i}.{kind}"] for i in range(L) for kind in ("key", "value")]

    kv_dtype = np.float16 if sess.get_inputs()[0].type == "tensor(float16)" else np.float32
    empty = [ort.OrtValue.ortvalue_from_shape_and_type([1, kvh, 0, D], kv_dtype, device_name, 0)
             for _ in range(2 * L)]
    prefill_s, past = run(device(rng.standard_normal((1, context, H)).astype(kv_dtype)), 0, context, empty)
    token = device(rng.standard_normal((1, 1, H)).astype(kv_dtype))
    times = []
    for s in range(warmup + steps):
        dt, past = run(token, context + s, 1, past)
        if s >= warmup:
            times.append(dt)
    return {"context": context, "prefill_ms": prefill_s * 1e3, "ms_per_step_median": float(np.median(times)) * 1e3,
            "ms_per_step_mean": float(np.mean(times)) * 1e3, "steps": steps}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("work")
    ap.add_argument("--out", required=True)
    ap.add_argument("--contexts", default="32,1024")
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    args = ap.parse_args()
    import onnxruntime as ort

    bundle = Path(args.work) / "bundle-fp16"
    arch = json.loads((bundle / "manifest.json").read_text())["architecture"]
    out: dict = {"probe": "ort_cuda", "ort_version": ort.__version__, "available": ort.get_available_providers(),
                 "layers": arch["num_hidden_layers"]}
    try:
        t0 = time.perf_counter()
        providers = ([("CUDAExecutionProvider", {"device_id": 0})] if args.device == "cuda" else []) + \
            ["CPUExecutionProvider"]
        sess = ort.InferenceSession(str(bundle / "decoder.onnx"), providers=providers)
        out["session_s"] = time.perf_counter() - t0
        out["providers"] = sess.get_providers()
        out["runs"] = [decode_ms(sess, arch, int(c), args.steps, args.device) for c in args.contexts.split(",")]
    except Exception as e:  # noqa: BLE001 - the probe reports what failed
        out["error"] = repr(e)[:2000]
    Path(args.out).write_text(json.dumps(out, indent=2))
    print("PROBE " + json.dumps(out))


if __name__ == "__main__":
    main()

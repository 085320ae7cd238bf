"""Joins the GPU engine bench's parts (prep.json, torch.json, ts.json in OUT) into OUT/engine_gpu.json with the
roofline and the TS-vs-PyTorch ratios, and prints it as the final `BENCH {json}` line.

    python bench/engine/gpu/combine.py OUT WORK
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return {"missing": f"{path.name}: {e}"}


def get(d: dict, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def ratio(a, b):
    return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None


def main() -> int:
    out, work = Path(sys.argv[1]), Path(sys.argv[2])
    prep, torch, ts = load(work / "prep.json"), load(out / "torch.json"), load(out / "ts.json")
    profile = load(out / "ort_profile_summary.json")
    read_bw = get(torch, "bandwidth", "read_tb_s")
    floors = {}
    for precision in ("fp16", "int4"):
        nbytes = prep.get(f"decoder_weight_bytes_{precision}")
        if nbytes and read_bw:
            floors[precision] = {"weight_bytes": nbytes, "floor_ms_per_token": nbytes / (read_bw * 1e12) * 1000}
    cfgs = ts.get("configs", {})
    dev = get(cfgs, "fp16_device_kv", "decode_b1", "ms_per_token")
    host = get(cfgs, "fp16_host_kv", "decode_b1", "ms_per_token")
    int4 = get(cfgs, "int4_device_kv", "decode_b1", "ms_per_token")
    static = get(torch, "hf_static_compile_b1", "ms_per_step")
    eager = get(torch, "hf_eager_b1", "ms_per_step")
    summary = {
        "decode_ms_per_token_b1": {"ts_webgpu_device_kv_fp16": dev, "ts_webgpu_host_kv_fp16": host,
                                   "ts_webgpu_device_kv_int4": int4, "hf_static_compile_fp16": static,
                                   "hf_eager_fp16": eager,
                                   "floor_fp16": get(floors, "fp16", "floor_ms_per_token"),
                                   "floor_int4": get(floors, "int4", "floor_ms_per_token")},
        "device_kv_speedup_vs_host_kv": ratio(host, dev),
        "ts_over_hf_static_compile": ratio(dev, static),
        "ts_over_hf_eager": ratio(dev, eager),
        "ts_over_floor_fp16": ratio(dev, get(floors, "fp16", "floor_ms_per_token")),
        "hf_static_over_floor_fp16": ratio(static, get(floors, "fp16", "floor_ms_per_token")),
        "int4_ts_over_floor_int4": ratio(int4, get(floors, "int4", "floor_ms_per_token")),
        "ttft_image_ms": {"ts_device_kv": get(cfgs, "fp16_device_kv", "ttft_image", "ttft_ms"),
                          "torch_lvr_eager": get(torch, "lvr_torch_ttft", "ttft_ms")},
        "ttft_ts_over_torch": ratio(get(cfgs, "fp16_device_kv", "ttft_image", "ttft_ms"),
                                    get(torch, "lvr_torch_ttft", "ttft_ms")),
        "latent_step_over_token_step": get(cfgs, "fp16_device_kv", "latent_vs_token", "ratio"),
        "aggregate_tok_s_8": {"ts_device_kv": get(cfgs, "fp16_device_kv", "streams_8", "aggregate_tok_s"),
                              "hf_static_compile": get(torch, "hf_static_compile_b8", "aggregate_tok_s"),
                              "hf_eager": get(torch, "hf_eager_b8", "aggregate_tok_s")},
    }
    result = {"bench": "engine-gpu", "card": torch.get("card"), "model": prep, "bandwidth": torch.get("bandwidth"),
              "roofline": floors, "summary": summary, "torch": torch, "ts": ts,
              "decoder_profile": profile}
    (out / "engine_gpu.json").write_text(json.dumps(result, indent=2))
    print("BENCH " + json.dumps({"bench": "engine-gpu", "card": torch.get("card"), **summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

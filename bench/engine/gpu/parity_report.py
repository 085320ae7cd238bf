"""Where the TS engine's greedy tokens first differ from PyTorch's on the fp16 bundle (issue #14's numerics report):
per parity prompt the first differing position (None: all equal) and PyTorch's top-1 minus top-2 logit at that
step, so a divergence at a near-tie reads as rounding and one at a wide margin as a bug.

    python bench/engine/gpu/parity_report.py OUT     (reads OUT/torch.json and OUT/ts.json, writes OUT/parity_fp16.json)

With the engine that steps every KV slot in ts.json too (`fp16_device_kv_allslots`), also its report and where its
tokens first differ from the default engine's; the same for each other variant of the default engine
(`fp16_device_kv_VARIANT`: attention kernels as `attention_KERNEL`, ONNX Runtime's projections as `onnx_projections`),
and each int4 variant (`int4_device_kv_*`) against the default int4 engine.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def first_divergence(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def engines_compared(side: dict, reference: dict) -> dict:
    """Where one engine's greedy tokens first differ from another's, per parity prompt."""
    at = [first_divergence(a["tokens"], b["tokens"]) for a, b in zip(side["prompts"], reference["prompts"])]
    return {"identical": at.count(None), "first_divergence_positions": sorted(p for p in at if p is not None)}


def report(torch_side: dict, ts_side: dict) -> dict:
    rows = []
    for ref, got in zip(torch_side["prompts"], ts_side["prompts"]):
        at = first_divergence(ref["tokens"], got["tokens"])
        rows.append({"prompt_tokens": ref["prompt_tokens"], "same_prompt": ref["prompt_tokens"] == got["prompt_tokens"],
                     "tokens": len(ref["tokens"]), "first_divergence": at,
                     "torch_top2_margin_there": None if at is None or at >= len(ref["margins"]) else ref["margins"][at]})
    positions = [r["first_divergence"] for r in rows if r["first_divergence"] is not None]
    margins = [r["torch_top2_margin_there"] for r in rows if r["torch_top2_margin_there"] is not None]
    return {"prompts": len(rows), "identical": sum(r["first_divergence"] is None for r in rows),
            "first_divergence_positions": sorted(positions),
            "median_first_divergence": statistics.median(positions) if positions else None,
            "max_margin_at_divergence": max(margins) if margins else None, "rows": rows}


def main() -> int:
    out = Path(sys.argv[1])
    read = lambda name: json.loads((out / name).read_text()) if (out / name).exists() else {}  # noqa: E731
    torch_side = read("torch.json").get("parity_fp16")
    configs = read("ts.json").get("configs", {})
    ts_side = configs.get("fp16_device_kv", {}).get("parity_fp16")
    if not ts_side:
        print("parity_fp16: the default engine's tokens are missing", file=sys.stderr)
        return 1
    # Without a PyTorch side (SKIP_TORCH=1) only the engines are compared with each other.
    result = report(torch_side, ts_side) if torch_side else {"torch_side": "absent"}
    # The engine whose steps cover every KV slot, against PyTorch and against the default engine (step sizes).
    all_slots = configs.get("fp16_device_kv_allslots", {}).get("parity_fp16")
    if all_slots:
        if torch_side:
            result["all_slots"] = {k: v for k, v in report(torch_side, all_slots).items() if k != "rows"}
        result["step_sizes_vs_all_slots"] = engines_compared(all_slots, ts_side)
    # The default engine's variants (other attention kernels, ONNX Runtime's projections, ...): against PyTorch and
    # against the default engine.
    for name, config in configs.items():
        variant = name.removeprefix("fp16_device_kv_")
        if name == variant or variant == "allslots" or not config.get("parity_fp16"):
            continue
        other = config["parity_fp16"]
        key = f"attention_{variant}" if variant in ("xqa", "cudnn", "flash") else variant
        result[key] = {"vs_default": engines_compared(other, ts_side)}
        if torch_side:
            vs_torch = report(torch_side, other)
            result[key]["vs_torch"] = {k: v for k, v in vs_torch.items() if k != "rows"}
    # The int4 engines (e.g. int4's second session on the mixed-input GEMM) against the default int4 engine.
    int4 = configs.get("int4_device_kv", {}).get("parity_int4")
    for name, config in configs.items():
        if int4 and name.startswith("int4_device_kv_") and config.get("parity_int4"):
            result[f"int4_{name.removeprefix('int4_device_kv_')}_vs_int4"] = engines_compared(config["parity_int4"], int4)
    (out / "parity_fp16.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

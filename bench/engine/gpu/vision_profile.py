"""Where the one-image prompt's vision time goes (issue #14's TTFT lead): the bundle's vision.onnx on ONNX Runtime's
CUDA EP for one 1036 px image (74 x 74 patches, 1,369 visual tokens), as the engine runs it (host tensors in, host
features out), against the same graph with its inputs already on the device and its output left there (IO binding),
which splits the host copies from the graph's own time; then one profiled run summed by op type (kernel time) with
the slowest nodes.

    python bench/engine/gpu/vision_profile.py BUNDLE_DIR OUT.json [RUNS]
"""

from __future__ import annotations

import collections
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "workers"))
from lvr.vision_inputs import VisionGeometry, vision_host_inputs  # noqa: E402

GRID = (1, 74, 74)  # a 1036 px square image: 1036 / 14 = 74 patches a side


def feeds_for(session: ort.InferenceSession, manifest: dict) -> dict[str, np.ndarray]:
    vision = manifest["architecture"]["vision"]
    geo = VisionGeometry(int(vision["spatial_merge_size"]), int(vision["window_size"]), int(vision["patch_size"]))
    host = vision_host_inputs(GRID, geo)
    patches = GRID[0] * GRID[1] * GRID[2]
    rng = np.random.default_rng(0)
    # Graphs exported before `image_bytes` take float pixel values.
    side = GRID[1] * int(vision["patch_size"])
    available = {"image_bytes": rng.integers(0, 256, (side, side, 3), dtype=np.uint8),
                 "pixel_values": rng.standard_normal((patches, 1176), dtype=np.float32), **host}
    return {i.name: available[i.name] for i in session.get_inputs()}


def timed(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> int:
    bundle, out_path = Path(sys.argv[1]), Path(sys.argv[2])
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    manifest = json.loads((bundle / "manifest.json").read_text())
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    session = ort.InferenceSession(str(bundle / "vision.onnx"), providers=providers)
    feeds = feeds_for(session, manifest)
    on_gpu = session.get_providers()[0] == "CUDAExecutionProvider"
    for _ in range(3):
        session.run(None, feeds)
    host_ms = timed(lambda: session.run(None, feeds), runs)
    result: dict = {"providers": session.get_providers(), "grid_thw": GRID,
                    "image_input": {name: int(feeds[name].nbytes) for name in ("image_bytes", "pixel_values")
                                    if name in feeds},
                    "host_tensors_ms": {"median": statistics.median(host_ms), "runs": host_ms}}
    if on_gpu:
        binding = session.io_binding()
        for name, value in feeds.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(value, "cuda", 0))
        for o in session.get_outputs():
            binding.bind_output(o.name, "cuda", 0)
        for _ in range(3):
            session.run_with_iobinding(binding)
        device_ms = timed(lambda: session.run_with_iobinding(binding), runs)
        result["device_tensors_ms"] = {"median": statistics.median(device_ms), "runs": device_ms}
    opts = ort.SessionOptions()
    opts.enable_profiling = True
    opts.profile_file_prefix = os.path.join(tempfile.mkdtemp(prefix="lvr-vision-profile-"), "ort")
    profiled = ort.InferenceSession(str(bundle / "vision.onnx"), opts, providers=providers)
    for _ in range(3):
        profiled.run(None, feeds)
    trace = json.load(open(profiled.end_profiling()))
    # The last run's node events: the profile file holds every run, in order.
    runs_seen = [e for e in trace if e.get("cat") == "Session" and e.get("name") == "model_run"]
    last_start = runs_seen[-1]["ts"] if runs_seen else 0
    by_op: dict[str, float] = collections.defaultdict(float)
    nodes = []
    for event in trace:
        if event.get("cat") != "Node" or event.get("ts", 0) < last_start or not event["name"].endswith("_kernel_time"):
            continue
        op = event.get("args", {}).get("op_name", "?")
        by_op[op] += event["dur"] / 1000
        nodes.append((event["dur"] / 1000, event["name"][: -len("_kernel_time")], op))
    result["profiled_run_ms"] = runs_seen[-1]["dur"] / 1000 if runs_seen else None
    result["node_ms_by_op"] = dict(sorted(by_op.items(), key=lambda kv: -kv[1]))
    result["slowest_nodes"] = [{"ms": ms, "node": name, "op": op} for ms, name, op in sorted(nodes, reverse=True)[:15]]
    out_path.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("providers", "host_tensors_ms", "profiled_run_ms")}, default=str)[:600])
    print(json.dumps(dict(list(result["node_ms_by_op"].items())[:10])))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Which execution provider runs each node of a fused decoder graph (issue #14's int4 capture question): one decode
step of zeros under ONNX Runtime's profiler with the CUDA EP asked for; prints and writes the nodes that ran anywhere
but on the CUDA EP (a node on the CPU is what stops a CUDA-graph capture), with their op types.

    python bench/engine/gpu/ep_profile.py GRAPH.onnx OUT.json
"""

from __future__ import annotations

import collections
import json
import os
import sys
import tempfile

import numpy as np
import onnxruntime as ort

DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64,
          "tensor(int32)": np.int32}


def main() -> int:
    graph, out = sys.argv[1], sys.argv[2]
    opts = ort.SessionOptions()
    opts.enable_profiling = True
    opts.profile_file_prefix = os.path.join(tempfile.mkdtemp(prefix="lvr-ep-profile-"), "ort")
    session = ort.InferenceSession(graph, opts, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    capacity = 8
    feeds = {}
    for i in session.get_inputs():
        shape = [capacity if d == "capacity" else 1 if isinstance(d, str) else d for d in i.shape]
        feeds[i.name] = np.zeros(shape, dtype=DTYPES[i.type])
    feeds["total_sequence_length"] = np.array(1, dtype=np.int32)
    session.run(None, feeds)
    trace = json.load(open(session.end_profiling()))
    nodes = {}
    for event in trace:
        args = event.get("args", {})
        if event.get("cat") == "Node" and "provider" in args:
            nodes[event["name"].removesuffix("_kernel_time")] = (args.get("op_name"), args["provider"])
    off_cuda = {name: op for name, (op, provider) in nodes.items() if provider != "CUDAExecutionProvider"}
    result = {"graph": graph, "nodes": len(nodes), "off_cuda": off_cuda,
              "off_cuda_ops": collections.Counter(off_cuda.values())}
    json.dump(result, open(out, "w"), indent=2)
    print(json.dumps(result)[:2000])
    return 0


if __name__ == "__main__":
    sys.exit(main())

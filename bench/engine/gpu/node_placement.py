"""Which nodes of a graph ONNX Runtime leaves on the CPU EP when the CUDA EP is asked for (a node on the CPU is what
stops a CUDA-graph capture): ONNX Runtime's verbose "Node placements" log, the CPU lines only.

    python bench/engine/gpu/node_placement.py GRAPH.onnx OUT.json
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile


def main() -> int:
    graph, out = sys.argv[1], sys.argv[2]
    # ONNX Runtime logs to stderr from C++: capture file descriptor 2 around session creation.
    with tempfile.TemporaryFile(mode="w+") as log:
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.log_severity_level = 0
            session = ort.InferenceSession(graph, opts, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
            providers = session.get_providers()
        finally:
            os.dup2(saved, 2)
        log.seek(0)
        text = log.read()
    lines = text.splitlines()
    at = next((i for i, line in enumerate(lines) if "Node placements" in line), None)
    placements = [] if at is None else [line.strip() for line in lines[at:at + 200] if "placed on" in line
                                        or not line.lstrip().startswith(("2", "["))]
    cpu_lines = [line.strip() for line in lines if "CPUExecutionProvider" in line][:60]
    json.dump({"graph": graph, "providers": providers, "placements": placements, "cpu_lines": cpu_lines},
              open(out, "w"), indent=2)
    print(json.dumps({"placements": placements[:30], "cpu_lines": cpu_lines[:10]})[:3000])
    return 0


if __name__ == "__main__":
    sys.exit(main())

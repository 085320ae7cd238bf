"""Summarizes an onnxruntime profile (JSON trace) of the decoder: per decode run (sequence length 1) the time spent in
nodes by execution provider and by op type, the node count per EP, and the run wall time. The raw trace is too large
to bring back from a device call; this summary is what the bench keeps.

    python bench/engine/gpu/profile_summary.py PROFILE.json OUT.json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict


def main() -> int:
    events = json.load(open(sys.argv[1]))
    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    nodes = [e for e in events if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]
    # Decode runs are the model_run spans whose nodes see a sequence length of 1; attribute nodes to runs by time.
    decode = []
    for r in runs:
        inside = [n for n in nodes if r["ts"] <= n["ts"] <= r["ts"] + r["dur"]]
        shapes = [s for n in inside for s in n["args"].get("input_type_shape", [])]
        if any(list(s.values())[0][:2] == [1, 1] for s in shapes if s):
            decode.append((r, inside))
    by_ep: dict = defaultdict(float)
    by_op: dict = defaultdict(float)
    count_ep: dict = defaultdict(int)
    for _, inside in decode:
        for n in inside:
            ep = n["args"].get("provider", "?")
            by_ep[ep] += n["dur"]
            by_op[f"{ep}:{n['args'].get('op_name', '?')}"] += n["dur"]
            count_ep[ep] += 1
    k = max(len(decode), 1)
    summary = {
        "decode_runs": len(decode),
        "run_ms": sum(r["dur"] for r, _ in decode) / k / 1000,
        "node_ms_by_ep": {ep: v / k / 1000 for ep, v in sorted(by_ep.items(), key=lambda x: -x[1])},
        "nodes_per_run_by_ep": {ep: v / k for ep, v in count_ep.items()},
        "top_ops_ms": dict(sorted(((op, v / k / 1000) for op, v in by_op.items()), key=lambda x: -x[1])[:25]),
    }
    json.dump(summary, open(sys.argv[2], "w"), indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

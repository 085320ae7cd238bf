"""Self time per function of V8 .cpuprofile files (one per thread): DIR OUT.json [TOP]."""

import collections
import glob
import json
import sys
from pathlib import Path


def summarize(path: str, top: int) -> dict:
    p = json.loads(Path(path).read_text())
    nodes = {n["id"]: n for n in p["nodes"]}
    self_us: collections.Counter = collections.Counter()
    for sample, dt in zip(p["samples"], p["timeDeltas"]):
        cf = nodes[sample]["callFrame"]
        self_us[f"{cf['functionName'] or '(anonymous)'} {cf['url'].split('/')[-1]}:{cf['lineNumber']}"] += dt
    total = sum(self_us.values())
    return {"file": Path(path).name, "total_ms": total / 1e3,
            "top": [{"fn": k, "ms": v / 1e3, "share": v / total} for k, v in self_us.most_common(top)]}


def main() -> None:
    folder, out = sys.argv[1], sys.argv[2]
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 25
    res = [summarize(f, top) for f in sorted(glob.glob(f"{folder}/*.cpuprofile"))]
    Path(out).write_text(json.dumps(res, indent=2))
    for r in res:
        print(r["file"], round(r["total_ms"]), "ms")
        for t in r["top"][:15]:
            print(f"  {100 * t['share']:5.1f}%  {t['fn']}")


if __name__ == "__main__":
    main()

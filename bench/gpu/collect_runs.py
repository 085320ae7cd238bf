"""One call's runs as two files, however many runs it made: every run JSON in RUNS into $OUT/NAME.json (keyed by file
stem, PREFIX stripped; `*.partial.json` left out) and the last lines of every log in LOGS into $OUT/NAME_logs.txt.

    python bench/gpu/collect_runs.py RUNS LOGS NAME [--strip PREFIX] [--tail N]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", type=Path)
    ap.add_argument("logs", type=Path)
    ap.add_argument("name")
    ap.add_argument("--strip", default="")
    ap.add_argument("--tail", type=int, default=30)
    args = ap.parse_args()
    out = Path(os.environ["OUT"])
    rows = {f.stem.removeprefix(args.strip): json.loads(f.read_text()) for f in sorted(args.runs.glob("*.json"))
            if not f.name.endswith(".partial.json")}
    (out / f"{args.name}.json").write_text(json.dumps(rows, indent=2))
    tails = (f"===== {f.name}\n" + "".join(f.read_text().splitlines(True)[-args.tail:])
             for f in sorted(args.logs.glob("*.txt")))
    (out / f"{args.name}_logs.txt").write_text("".join(tails))


if __name__ == "__main__":
    main()

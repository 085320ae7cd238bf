"""Pick the LVR model to ship: the better of (a) stage-1 SFT and (c) GRPO_latent on the *validation* split (the test
split only reports), by their best accuracy over the LVR step settings; a tie goes to (c)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else "demo-work")
path = root / "results" / "eval-validation.json"
if not path.is_file():
    sys.exit(f"no {path}: nothing to choose from")
models = json.loads(path.read_text())["models"]
best = {}
for name, by_steps in models.items():
    steps, entry = max(by_steps.items(), key=lambda kv: (kv[1]["overall"]["accuracy"], -int(kv[0])))
    best[name] = (entry["overall"]["accuracy"], int(steps))
    print(f"validation {name}: best {entry['overall']['accuracy']:.3f} at {steps} steps")
a = best.get("a-sft-lvr", (-1.0, 8))
c = best.get("c-grpo-latent", (-1.0, 8))
chosen = "stage2-grpo" if c[0] >= a[0] else "stage1-lvr"
(root / "chosen.txt").write_text(chosen)
(root / "results" / "chosen.json").write_text(json.dumps({"bundle": chosen, "validation": best}, indent=1))
print(f"chosen: {chosen}")

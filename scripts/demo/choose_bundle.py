"""Choices of the demo sweep, made on the *validation* split only (the test split only reports):

    choose_bundle.py best EVAL.json        the stage-1 LVR run (a) for stage 2: best accuracy at 4 LVR steps (the
                                           count it was trained with); a tie goes to the run listed first
    choose_bundle.py ship WORK BEST_A      the LVR model to ship: (c) GRPO_latent if it scores at least (a)'s
                                           validation accuracy, else (a); writes WORK/results/chosen.json with the
                                           plain baseline (b) trained with the same learning rate
    choose_bundle.py plain A_RUN           that plain baseline's run name
    choose_bundle.py chain RESULTS         the model of scripts/demo/lvr_chain.sh to ship: c if its validation accuracy
                                           at 4 LVR steps is at least a's, else a
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def accuracy_at(path: Path, steps: str = "4") -> dict[str, float]:
    if not path.is_file():
        return {}
    models = json.loads(path.read_text())["models"]
    return {name: by_steps[steps]["overall"]["accuracy"] for name, by_steps in models.items() if steps in by_steps}


def paired_plain(lvr_run: str) -> str:
    """a-lr002-l01 -> b-lr002 (same learning rate, same data, steps and batch)."""
    return "b-" + lvr_run.split("-")[1]


def main(argv: list[str]) -> None:
    if len(argv) == 2 and argv[0] == "best":
        scores = accuracy_at(Path(argv[1]))
        if not scores:
            sys.exit(f"no validation scores in {argv[1]}")
        for name, acc in scores.items():
            print(f"validation {name}: {acc:.3f}", file=sys.stderr)
        print(max(scores, key=lambda n: (scores[n], -list(scores).index(n))))
        return
    if len(argv) == 2 and argv[0] == "plain":
        print(paired_plain(argv[1]))
        return
    if len(argv) == 2 and argv[0] == "chain":
        results = Path(argv[1])
        a = accuracy_at(results / "a.validation.json").get("a", -1.0)
        c = accuracy_at(results / "c.validation.json").get("c", -1.0)
        if a < 0 and c < 0:
            sys.exit(f"no validation scores for a or c in {results}")
        print(f"validation at 4 steps: a={a:.3f} c={c:.3f}", file=sys.stderr)
        print("c" if c >= a else "a")
        return
    if len(argv) == 3 and argv[0] == "ship":
        root, best_a = Path(argv[1]), argv[2]
        a = accuracy_at(root / "results" / "eval-validation-a.json").get(best_a, -1.0)
        c = accuracy_at(root / "results" / "eval-validation-c.json").get("c-grpo", -1.0)
        ship = "c-grpo" if c >= a else best_a
        chosen = {"ship": ship, "a": best_a, "b": paired_plain(best_a), "c": "c-grpo",
                  "validation_at_4_steps": {best_a: a, "c-grpo": c}}
        (root / "results" / "chosen.json").write_text(json.dumps(chosen, indent=1))
        print(f"ship={ship} a={best_a} b={chosen['b']} validation a={a:.3f} c={c:.3f}")
        return
    sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])

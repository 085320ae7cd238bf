"""Summarise the CPU curriculum runs (scripts/demo/cpu_curriculum.sh) into one JSON: per run the loss curve, the
letter accuracy (protocol `lvr`) and, for answers that name the option first, the accuracy of that word and how often
the letter names the option the model wrote (the lookup alone), each with a Wilson 95% interval, and how many distinct
answers the model wrote (1 = a constant answer).

    python scripts/demo/curriculum_summary.py --dir bench/results/demo/cpu-curriculum --benchmark NAME=DIR ...
        --run NAME:BENCHMARK ... --out summary.json
"""

from __future__ import annotations

import argparse
import collections
import json
import re
from pathlib import Path

from evaluate import wilson


def load_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def loss_curve(events: Path) -> list[list[float]]:
    return [[e["data"]["step"], round(e["data"]["loss"], 4)] for e in load_jsonl(events) if e.get("type") == "Progress"]


def rate(k: int, n: int) -> dict:
    lo, hi = wilson(k, n)
    return {"correct": k, "n": n, "accuracy": round(k / n, 4) if n else 0.0, "wilson95": [round(lo, 4), round(hi, 4)]}


def written_word(line: str) -> str:
    """The option text a `text` (`red`) or `aligned` (`It is red (B)`) answer names."""
    return re.sub(r" \([A-Z]\)$", "", line.removeprefix("It is ").strip())


def summarise(run: str, folder: Path, bench: Path, split: str) -> dict:
    truth = {r["id"]: r for r in load_jsonl(bench / f"{split}.jsonl")}
    samples = load_jsonl(folder / f"{run}.samples.jsonl")
    letters = sum(s["correct"] for s in samples)
    texts = [(s["raw"].rsplit("<|lvr_end|>\n", 1)[-1], s) for s in samples]  # the text after a latent block
    named = [(written_word(t.split("\n", 1)[0]), s) for t, s in texts if not t.startswith("<answer>")]
    word_hits = sum(w == truth[s["id"]]["meta"]["answerText"] for w, s in named)
    # the letter lookup on its own: does the letter written name the option whose text the model wrote?
    lookups = sum({o["text"]: o["letter"] for o in truth[s["id"]]["options"]}.get(w) == s["parsed"] for w, s in named)
    answers = collections.Counter(s["raw"] for s in samples)
    out = {
        "run": json.loads((folder / f"{run}.run.json").read_text()),
        "loss": loss_curve(folder / f"{run}.events.jsonl"),
        "letter": rate(letters, len(samples)),
        "distinct_answers": len(answers),
        "most_common_answer": answers.most_common(1)[0],
        "by_category": {},
    }
    if named:
        out["word"] = rate(word_hits, len(named))
        out["letter_names_written_word"] = rate(lookups, len(named))
    for cat in sorted({s["category"] for s in samples}):
        sub = [s for s in samples if s["category"] == cat]
        out["by_category"][cat] = rate(sum(s["correct"] for s in sub), len(sub))
        if named:
            hits = [w == truth[s["id"]]["meta"]["answerText"] for w, s in named if s["category"] == cat]
            out["by_category"][cat]["word"] = rate(sum(hits), len(hits))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--run", action="append", required=True, metavar="NAME:BENCHMARK_DIR")
    ap.add_argument("--out", required=True)
    ap.add_argument("--split", default="validation", help="the split the runs were scored on")
    args = ap.parse_args()
    folder = Path(args.dir)
    result = {}
    for item in args.run:
        name, bench = item.split(":", 1)
        result[name] = summarise(name, folder, Path(bench), args.split)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    for name, r in result.items():
        word = r.get("word", {}).get("accuracy", "-")
        print(f"{name}: letter {r['letter']['accuracy']} {r['letter']['wilson95']} word {word} "
              f"distinct {r['distinct_answers']} last loss {r['loss'][-1] if r['loss'] else None}")


if __name__ == "__main__":
    main()

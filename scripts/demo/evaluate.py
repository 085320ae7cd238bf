"""Score bundles on a synthetic benchmark split with the reference decoding (workers/lvr/decoding.py) over
onnxruntime on the CPU: the same graphs the API serves, decoded by the Python reference (token-identical to the
TypeScript engine in the parity tests). Protocol `lvr` (LVR-SPEC §6): the letter inside the last `<answer>` tag,
exact match; answers without a letter count as wrong and are reported as unparsed.

    PYTHONPATH=workers:scripts/demo python scripts/demo/evaluate.py --bundle NAME=DIR [--bundle ...]
        --benchmark DIR --split test --steps 0,4,8,16 --out results.json [--samples samples.jsonl] [--workers N]

`--steps 0` decodes with LVR off (a `<|lvr_start|>` the model writes is fed back as a token, never as a latent).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

from demo_rewards import answer_letter

_STATE: dict = {}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


def prompt_text(rec: dict) -> str:
    lines = [f"{o['letter']}. {o['text']}" for o in rec["options"]]
    return "\n".join([rec["question"], "Options:", *lines,
                      "Answer with the option's letter from the given choices directly."])


def _init(bundles: dict[str, str]) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from lvr.backends import OrtBackend
    from lvr.bundle import verify_bundle
    from lvr.tokens import load_tokenizer

    for name, folder in bundles.items():
        manifest = verify_bundle(folder)
        _STATE[name] = (OrtBackend(folder, manifest, threads=1),  # one thread per process: no oversubscription
                        load_tokenizer(Path(folder)),
                        (Path(folder) / manifest["chat_template"]).read_text(), manifest)


def _run(job: tuple[str, int, dict, str]) -> dict:
    from lvr import tokens as T
    from lvr.decoding import LVROptions, generate
    from lvr.golden import sampling_from
    from lvr.preprocess import ImageConfig, build_prompt

    name, steps, rec, root = job
    backend, tok, template, manifest = _STATE[name]
    messages = [{"role": "user", "content": [{"type": "image", "image": str(Path(root) / rec["image"])},
                                             {"type": "text", "text": prompt_text(rec)}]}]
    prompt = build_prompt(messages, tok, template, ImageConfig.from_json(manifest["preprocessing"]))
    params = sampling_from(manifest, {"do_sample": False, "max_new_tokens": 48})
    lvr = LVROptions(strategy="steps", steps=max(steps, 1))
    if steps == 0:
        lvr = replace(lvr, ids=replace(T.SpecialIds(), lvr_start_id=-1))
    t0 = time.perf_counter()
    res = generate(backend, prompt, params, lvr, int(manifest["architecture"]["vision"]["spatial_merge_size"]))
    latency = time.perf_counter() - t0
    text = tok.decode(res.output_ids, skip_special_tokens=False)
    got = answer_letter(text)
    return {"model": name, "steps": steps, "id": rec["id"], "category": rec["category"],
            "difficulty": rec.get("difficulty"), "answer": rec["answer"], "parsed": got, "correct": got == rec["answer"],
            "latent_steps": res.latent_steps, "raw": text, "seconds": round(latency, 4),
            "prompt_tokens": len(res.prompt_ids), "completion_tokens": len(res.output_ids)}


def summarise(samples: list[dict]) -> dict:
    def score(rows: list[dict]) -> dict:
        k, n = sum(r["correct"] for r in rows), len(rows)
        lo, hi = wilson(k, n)
        return {"correct": k, "n": n, "accuracy": k / n if n else 0.0, "wilson95": [lo, hi],
                "unparsed": sum(r["parsed"] is None for r in rows)}

    out: dict = {}
    for (model, steps) in sorted({(s["model"], s["steps"]) for s in samples}):
        rows = [s for s in samples if s["model"] == model and s["steps"] == steps]
        entry = {"overall": score(rows), "by_category": {}, "by_difficulty": {},
                 "mean_seconds": sum(r["seconds"] for r in rows) / len(rows),
                 "mean_latent_steps": sum(r["latent_steps"] for r in rows) / len(rows)}
        for key, field in (("by_category", "category"), ("by_difficulty", "difficulty")):
            for v in sorted({r[field] for r in rows}):
                entry[key][v] = score([r for r in rows if r[field] == v])
        out.setdefault(model, {})[str(steps)] = entry
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", action="append", required=True, metavar="NAME=DIR[@STEPS]",
                    help="bundle to score; @0 limits it to the given steps (e.g. a model without LVR)")
    ap.add_argument("--benchmark", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--steps", default="0,4,8,16")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", required=True)
    ap.add_argument("--samples")
    args = ap.parse_args()
    records = [json.loads(l) for l in (Path(args.benchmark) / f"{args.split}.jsonl").read_text().splitlines() if l]
    if args.limit:
        records = records[:args.limit]
    default_steps = [int(s) for s in args.steps.split(",")]
    bundles, jobs = {}, []
    for spec in args.bundle:
        name, _, rest = spec.partition("=")
        folder, _, only = rest.partition("@")
        bundles[name] = folder
        for steps in ([int(s) for s in only.split(",")] if only else default_steps):
            jobs += [(name, steps, r, args.benchmark) for r in records]
    t0 = time.time()
    with ProcessPoolExecutor(args.workers, initializer=_init, initargs=(bundles,)) as pool:
        samples = list(pool.map(_run, jobs, chunksize=8))
    wall = time.time() - t0
    if args.samples:
        Path(args.samples).write_text("".join(json.dumps(s) + "\n" for s in samples))
    result = {"benchmark": args.benchmark, "split": args.split, "protocol": "lvr (letter in <answer>, exact match)",
              "decoding": "reference (workers/lvr/decoding.py) over onnxruntime CPU, greedy, max_new_tokens 48",
              "n_records": len(records), "wall_seconds": round(wall, 1), "models": summarise(samples)}
    Path(args.out).write_text(json.dumps(result, indent=1))
    for model, by_steps in result["models"].items():
        for steps, e in by_steps.items():
            o = e["overall"]
            print(f"{model:>14} steps {steps:>2}: {o['accuracy']:.3f} [{o['wilson95'][0]:.3f}, {o['wilson95'][1]:.3f}]"
                  f" n={o['n']} unparsed={o['unparsed']} "
                  + " ".join(f"{c}={v['accuracy']:.2f}" for c, v in e["by_category"].items()))


if __name__ == "__main__":
    main()

"""Training curves from the worker's event streams (JSON lines on stdout, one `Progress` event per logged step).

    python scripts/demo/plot.py --events NAME=FILE[@FIRST_STEP] [...] --out DIR

FIRST_STEP shifts a run that continues another (its step 0 drawn at FIRST_STEP, e.g. (a) after (b)'s 3,000 steps).

Writes sft_loss.png (total, CE and latent MSE per stage-1 run) and grpo_reward.png (reward parts, KL, completion
length of the stage-2 run), plus curves.json with the raw series.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def progress(path: str) -> list[dict]:
    out = []
    for line in Path(path).read_text().splitlines():
        if line.startswith("{"):
            ev = json.loads(line)
            if ev.get("type") == "Progress":
                out.append(ev["data"])
    return out


def smooth(xs: list[float], k: int = 20) -> list[float]:
    out, acc = [], 0.0
    for i, x in enumerate(xs):
        acc += x
        if i >= k:
            acc -= xs[i - k]
        out.append(acc / min(i + 1, k))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", action="append", required=True, metavar="NAME=FILE[@FIRST_STEP]")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = {}
    for entry in args.events:
        name, source = entry.split("=", 1)
        path, _, first = source.partition("@")
        runs[name] = [{**row, "step": row["step"] + int(first or 0)} for row in progress(path)]
    curves = {n: rows for n, rows in runs.items()}
    (out / "curves.json").write_text(json.dumps(curves))

    sft = {n: r for n, r in runs.items() if r and r[0].get("stage") == "sft"}
    if sft:
        fig, axes = plt.subplots(1, 3, figsize=(15, 4))
        for name, rows in sft.items():
            steps = [r["step"] for r in rows]
            axes[0].plot(steps, smooth([r["loss"] for r in rows]), label=name)
            axes[1].plot(steps, smooth([r["lossParts"]["ce"] for r in rows]), label=name)
            axes[2].plot(steps, smooth([r["lossParts"]["lvr"] for r in rows]), label=name)
        titles = ("total loss", "cross-entropy (assistant tokens)", "latent reconstruction (lvrLossFct)")
        for ax, title in zip(axes, titles):
            ax.set_title(title)
            ax.set_xlabel("optimizer step")
            ax.set_yscale("log")
            ax.legend()
            ax.grid(alpha=0.3)
        fig.suptitle("Stage-1 SFT (moving average over 20 logged steps)")
        fig.tight_layout()
        fig.savefig(out / "sft_loss.png", dpi=110)

    grpo = {n: r for n, r in runs.items() if r and r[0].get("stage") == "grpo"}
    for name, rows in grpo.items():
        fig, axes = plt.subplots(1, 3, figsize=(15, 4))
        steps = [r["step"] for r in rows]
        axes[0].plot(steps, smooth([r["reward"] for r in rows]), label="total (weighted)")
        for k in rows[0]["rewards"]:
            axes[0].plot(steps, smooth([r["rewards"][k] for r in rows]), label=k)
        axes[1].plot(steps, smooth([r["lossParts"]["kl"] for r in rows]))
        axes[2].plot(steps, smooth([r["completionLength"] for r in rows]))
        for ax, title in zip(axes, ("reward (moving average)", "KL to the stage-1 model", "completion length")):
            ax.set_title(title)
            ax.set_xlabel("optimizer step")
            ax.grid(alpha=0.3)
        axes[0].legend()
        fig.suptitle(f"Stage-2 GRPO_latent ({name})")
        fig.tight_layout()
        fig.savefig(out / "grpo_reward.png", dpi=110)


if __name__ == "__main__":
    main()

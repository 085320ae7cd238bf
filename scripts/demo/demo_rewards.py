"""GRPO rewards for multiple-choice answers, loaded by name (`rewardFuncs: ["demo_rewards:letter_accuracy"]`,
with scripts/demo on PYTHONPATH): the worker's user-reward hook (workers/lvr/train/rewards.py).

1.0 when the letter inside the completion's last `<answer>...</answer>` equals the solution's letter (LVR-SPEC §6
scoring: first whitespace-delimited token, first character), else 0.0. Exact and dependency-free, unlike the
built-in `accuracy`, which needs math-verify.
"""

from __future__ import annotations

import re

_ANSWER = re.compile(r"<answer>(.*?)</answer", re.DOTALL)


def answer_letter(text: str) -> str | None:
    found = _ANSWER.findall(text)
    if not found:
        return None
    words = found[-1].split()
    return words[0][0].upper() if words else None


def letter_accuracy(completions: list[str], solutions: list[str], **_) -> list[float]:
    out = []
    for comp, sol in zip(completions, solutions):
        got, want = answer_letter(comp), answer_letter(sol)
        out.append(1.0 if got is not None and got == want else 0.0)
    return out


def latent_block(completions: list[str], solutions: list[str] | None = None, **_) -> list[float]:
    """1.0 when the completion opens a latent block and closes it (`<|lvr_start|>` then `<|lvr_end|>`: the paper's
    format reward). The built-in `format` wants `<answer>` right after `<|lvr_end|>`, which the demo's answers
    (`It is TEXT (X)` first) never have."""
    out = []
    for comp in completions:
        start = comp.find("<|lvr_start|>")
        out.append(1.0 if start >= 0 and comp.find("<|lvr_end|>", start) > start else 0.0)
    return out

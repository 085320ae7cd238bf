"""The repetition-penalty rule (HF `RepetitionPenaltyLogitsProcessor`), shared by numpy decoding and torch rollouts."""

from __future__ import annotations

from typing import Callable, TypeVar

import numpy as np

Logits = TypeVar("Logits")


def penalize_seen_logits(seen: Logits, penalty, where: Callable = np.where) -> Logits:
    """Logits of tokens already in the history: a negative one is multiplied by the penalty, any other divided by it,
    so a repeated token always becomes less likely. `where` is the array library's select (`np.where`,
    `torch.where`)."""
    return where(seen < 0, seen * penalty, seen / penalty)

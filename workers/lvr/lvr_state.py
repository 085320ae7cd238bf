"""The LVR mode update of LVR-SPEC §4.2-4.4, one sequence at a time (the Python twin of the engine's
`LvrStateMachine`, libs/engine/src/decoding/lvr-state.ts).

Run `update` after each forward with the token that was that forward's input; `mode` then says whether the *next*
input is the hidden state (a latent) instead of a token embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import tokens as T

STRATEGIES = ("steps", "latent", "end_token")


def steps_transition(mode, remaining, start, steps: int, where=np.where):
    """The `steps` rule (LVR-SPEC §4.2) for one sequence (numpy bools/ints) or a batch (torch tensors with
    `where=torch.where`): entering a block (`start`: this forward's input was `<|lvr_start|>`) resets the quota to
    `steps`, each forward inside the block spends one, and the block lasts while quota is left.
    Returns (mode, remaining): mode says whether the next input is a latent."""
    entering = ~mode & start
    remaining = where(entering, steps, where(mode, remaining - 1, remaining))
    return (mode | start) & (remaining > 0), remaining


@dataclass(frozen=True)
class LvrRule:
    """What decides the latent steps: the strategy, its step cap and (`latent`) the end-vector test."""

    strategy: str = "steps"
    steps: int = 8
    criterion: str = "mse"
    threshold: float = 0.02
    upstream_compat: bool = False
    lvr_start_id: int = T.LVR_START_ID
    lvr_end_id: int = T.LVR_END_ID


def latent_distance(criterion: str, a: np.ndarray, b: np.ndarray) -> float:
    """Distance between a fed latent and the learned latent-end vector (upstream `_criterion`)."""
    a = np.asarray(a, dtype=np.float32).reshape(-1)
    b = np.asarray(b, dtype=np.float32).reshape(-1)
    if criterion == "mse":
        return float(np.mean((a - b) ** 2))
    if criterion == "mae":
        return float(np.mean(np.abs(a - b)))
    if criterion == "cosine":
        return float(1.0 - a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
    raise ValueError(f"unknown latent criterion {criterion!r}")


class LvrStateMachine:
    """`mode` is whether the next input is a latent; it starts off."""

    def __init__(self, rule: LvrRule, latent_end: np.ndarray | None = None):
        self.rule = rule
        self.latent_end = latent_end
        self.mode = False
        self._remaining = rule.steps
        self._counter = 0

    def reached_latent_end(self, fed_latent: np.ndarray | None) -> bool:
        """Whether the latent fed into a forward is within threshold of the latent-end vector (`latent` strategy,
        LVR-SPEC §4.3). Without a fed latent, or for other strategies, a block never ends this way."""
        if self.rule.strategy != "latent" or fed_latent is None or self.latent_end is None:
            return False
        return latent_distance(self.rule.criterion, fed_latent, self.latent_end) < self.rule.threshold

    def after_forward(self, tok_in: int, tok: int, fed_latent: np.ndarray | None) -> bool:
        """The update after a forward, given the previous forward's hidden state (the latent check is part of the
        rule, not of the decoding loop)."""
        return self.update(tok_in, tok, self.reached_latent_end(fed_latent))

    def update(self, tok_in: int, tok: int | None = None, end_reached: bool = False) -> bool:
        """`tok_in`: this forward's input token (the prompt's last token after prefill); `tok`: the token picked
        from its logits (only `end_token` reads it); `end_reached` (`latent`): the fed latent is within threshold of
        the end vector."""
        rule = self.rule
        start = tok_in == rule.lvr_start_id
        if rule.strategy == "none":
            self.mode = False
        elif rule.strategy == "steps":
            mode, remaining = steps_transition(np.bool_(self.mode), self._remaining, np.bool_(start), rule.steps)
            self.mode, self._remaining = bool(mode), int(remaining)
        elif rule.strategy == "latent":
            self._counter = 0 if start else self._counter + int(self.mode)
            self.mode = (self.mode or start) and not end_reached and self._counter < rule.steps
        else:
            self._counter = 0 if start else self._counter + int(self.mode)
            capped = not rule.upstream_compat and self._counter >= rule.steps
            self.mode = (self.mode or start) and tok != rule.lvr_end_id and not capped
        return self.mode

"""GRPO reward functions, selectable by name (LVR-SPEC §5.3).

A reward function is `fn(completions: list[str], solutions: list[str], **kw) -> list[float]`; kw carries
`completion_ids` (list of token-id lists), `prompts` and `upstream_compat`. Built-ins: `accuracy`, `format`. Any other
name of the form `package.module:function` is imported (user-supplied rewards).
"""

from __future__ import annotations

import importlib
import re

from .errors import ConfigError

_ANSWER = r"<answer>(.*?)</answer>"


def extract_answer(text: str, dotall: bool) -> str:
    m = re.search(_ANSWER, text, re.DOTALL if dotall else 0)
    return m.group(1).strip() if m else text.strip()


def accuracy_reward(completions: list[str], solutions: list[str], upstream_compat: bool = False, **_) -> list[float]:
    """1.0 if math-verify says the completion equals the solution, else exact match of the `<answer>` contents.

    Fixed default: regexes cross newlines (DOTALL). upstream_compat: single-line regexes as upstream.
    """
    from math_verify import parse, verify

    out = []
    for comp, sol in zip(completions, solutions):
        reward = 0.0
        try:
            if float(verify(parse(sol), parse(comp))) > 0:
                reward = 1.0
        except Exception:
            pass
        if reward == 0.0:
            dotall = not upstream_compat
            if extract_answer(comp, dotall) == extract_answer(sol, dotall):
                reward = 1.0
        out.append(reward)
    return out


_FORMAT = r"^<\|lvr_start\|>.*?<\|lvr_end\|>\s*<answer>.*?</answer>$"


def format_reward(completions: list[str], solutions: list[str] | None = None, upstream_compat: bool = False,
                  **_) -> list[float]:
    """1.0 for `<|lvr_start|> ... <|lvr_end|> <answer>...</answer>` (DOTALL by default; upstream: no DOTALL)."""
    flags = 0 if upstream_compat else re.DOTALL
    return [1.0 if re.match(_FORMAT, c.strip() if not upstream_compat else c, flags) else 0.0 for c in completions]


BUILTIN = {"accuracy": accuracy_reward, "format": format_reward,
           "accuracy_reward": accuracy_reward, "format_reward": format_reward}


def resolve(name: str):
    if name in BUILTIN:
        return BUILTIN[name]
    if ":" in name:
        mod, fn = name.split(":", 1)
        try:
            return getattr(importlib.import_module(mod), fn)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"reward function {name!r} cannot be imported: {e}") from e
    raise ConfigError(f"unknown reward function {name!r} (built-ins: accuracy, format; or module:function)")

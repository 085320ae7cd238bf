"""`--set name=value` overrides: TrainConfig settings the contract does not carry, parsed by the field's type."""

from __future__ import annotations

import json
import types
import typing
from dataclasses import replace
from typing import Any

from .errors import ConfigError
from .train_config import TrainConfig

_FIELD_TYPES = typing.get_type_hints(TrainConfig)
_TRUE, _FALSE = ("true", "1"), ("false", "0")


def parse_sets(items: list[str] | None) -> dict[str, str]:
    """`["name=value", ...]` from the command line -> {name: text}."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set expects name=value, got {item!r}")
        name, text = item.split("=", 1)
        out[name.strip()] = text.strip()
    return out


def coerce(name: str, text: str) -> Any:
    """Setting `name` written as `text`, typed (ConfigError for an unknown setting or a value of the wrong type)."""
    if name not in _FIELD_TYPES:
        raise ConfigError(f"--set {name}: unknown setting")
    kind = _value_type(_FIELD_TYPES[name])
    try:
        if kind is bool:
            if text.lower() not in _TRUE + _FALSE:
                raise ValueError(f"expected one of {_TRUE + _FALSE}")
            return text.lower() in _TRUE
        if kind in (int, float):
            return kind(text)
        if kind in (list, tuple):
            value = json.loads(text)
            if not isinstance(value, list):
                raise ValueError("expected a JSON array")
            return kind(value)
        return text
    except ValueError as e:
        raise ConfigError(f"--set {name}={text}: {e}") from e


def apply_overrides(cfg: TrainConfig, overrides: dict[str, str] | None) -> TrainConfig:
    return replace(cfg, **{name: coerce(name, text) for name, text in (overrides or {}).items()})


def _value_type(annotation: Any) -> type:
    """`int | None` -> int, `list[str]` -> list, `tuple[float, float]` -> tuple."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return typing.get_origin(annotation) or annotation

"""The run spec: one `lvr.training.requests` message (libs/contracts) -> a validated, resolved TrainConfig.

The message is checked against the contract's JSON Schema (`contract_validation`), mapped onto TrainConfig
(`spec_mapping`), overridden by `--set name=value` (`overrides`), given its stage defaults and checked for settings
that contradict each other (`train_config`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .contract_validation import check_message
from .contracts import TRAINING_REQUEST
from .errors import ConfigError
from .overrides import apply_overrides
from .spec_mapping import config_fields
from .train_config import TrainConfig, check


def config_from_message(msg: Any, overrides: dict[str, str] | None = None) -> TrainConfig:
    """Validate a run-spec message and build the resolved TrainConfig (ConfigError on anything invalid)."""
    if not isinstance(msg, dict):
        raise ConfigError("run spec must be a JSON object")
    check_message(msg, TRAINING_REQUEST, "invalid run spec")
    cfg = apply_overrides(TrainConfig(**config_fields(msg)), overrides)
    return check(cfg.resolved())


def load_spec(path: str, overrides: dict[str, str] | None = None) -> TrainConfig:
    try:
        msg = json.loads(Path(path).read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"run spec {path} not found") from e
    except json.JSONDecodeError as e:
        raise ConfigError(f"run spec {path} is not valid JSON ({e})") from e
    return config_from_message(msg, overrides)

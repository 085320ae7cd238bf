"""The libs/contracts JSON Schemas, generated from the TypeScript DTOs: where the worker reads its topic names, API
versions and message rules, so that they have one source.

Found through LVR_CONTRACTS_SCHEMA_DIR (the worker image sets it) or in the monorepo checkout. Each schema names its
topic (`x-lvr-topic`) and allows one `apiVersion`.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

from .errors import ConfigError

SCHEMA_DIR_ENV = "LVR_CONTRACTS_SCHEMA_DIR"
CHECKOUT_SCHEMA_DIR = Path(__file__).resolve().parents[3] / "libs" / "contracts" / "schema"

TRAINING_REQUEST = "training-request"
TRAINING_EVENT = "training-event"
MODEL_PUBLISHED = "model-published"


def schema_dir() -> Path:
    configured = os.environ.get(SCHEMA_DIR_ENV)
    return Path(configured) if configured else CHECKOUT_SCHEMA_DIR


def message_schema(name: str) -> dict:
    """The JSON Schema of one message (`training-request`, `training-event`, ...); ConfigError when it is missing."""
    return _read_schema(schema_dir() / f"{name}.schema.json")


@functools.cache
def _read_schema(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"contract schema {path} not found (set {SCHEMA_DIR_ENV} to libs/contracts/schema)") from e


def topic(name: str) -> str:
    return message_schema(name)["x-lvr-topic"]


def api_version(name: str) -> str:
    (version,) = message_schema(name)["properties"]["apiVersion"]["enum"]
    return version

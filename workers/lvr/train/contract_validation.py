"""Messages checked against their libs/contracts JSON Schema with `jsonschema` (draft-07), errors as `$.path: rule`."""

from __future__ import annotations

import re
from typing import Any

from jsonschema import Draft7Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from .contracts import message_schema
from .errors import ConfigError

MAX_REPORTED_ERRORS = 10

# The DTOs' timestamps are `oneOf` a date or a date-time: both formats must be checked or every string would match
# both forms. RFC 3339, as class-validator's IsDateString accepts.
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_FORMATS = FormatChecker(formats=())
_FORMATS.checks("date")(lambda value: not isinstance(value, str) or bool(_DATE.match(value)))
_FORMATS.checks("date-time")(lambda value: not isinstance(value, str) or bool(_DATE_TIME.match(value)))


def message_errors(message: Any, name: str) -> list[str]:
    """Every way `message` breaks the `name` schema, one line each, ordered by path."""
    validator = Draft7Validator(message_schema(name), format_checker=_FORMATS)
    errors = sorted(validator.iter_errors(message), key=lambda e: [str(p) for p in e.absolute_path])
    return [line for error in errors for line in _describe(error)]


def check_message(message: Any, name: str, what: str) -> None:
    errors = message_errors(message, name)
    if errors:
        raise ConfigError(f"{what}: " + "; ".join(errors[:MAX_REPORTED_ERRORS]))


def _path(parts) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _describe(error: ValidationError) -> list[str]:
    at, rule, value = _path(error.absolute_path), error.validator, error.validator_value
    if rule == "required":
        return [f"{_path([*error.absolute_path, key])}: is required" for key in value if key not in error.instance]
    if rule == "additionalProperties":
        allowed = error.schema.get("properties", {})
        return [f"{_path([*error.absolute_path, key])}: is not allowed" for key in error.instance if key not in allowed]
    text = {
        "type": lambda: f"must be {'/'.join(value) if isinstance(value, list) else value}",
        "enum": lambda: f"must be one of {value}",
        "pattern": lambda: f"must match {value}",
        "minLength": lambda: f"must not be shorter than {value}",
        "maxLength": lambda: f"must not be longer than {value}",
        "minimum": lambda: f"must be >= {value}",
        "maximum": lambda: f"must be <= {value}",
        "maxItems": lambda: f"at most {value} items",
        "minItems": lambda: f"at least {value} items",
        "oneOf": lambda: "does not match any allowed form",
    }.get(rule, lambda: error.message)()
    return [f"{at}: {text}"]

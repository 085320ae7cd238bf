"""Errors for invalid training data. A DataError always names where the problem is."""

from __future__ import annotations


class DataError(ValueError):
    """Invalid record or dataset. The worker turns it into the non-retryable exit code (docs/training.md)."""

    def __init__(self, message: str, *, source: str | None = None, index: int | None = None,
                 field: str | None = None):
        self.source, self.index, self.field = source, index, field
        where = []
        if source is not None:
            where.append(str(source))
        if index is not None:
            where.append(f"record {index}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{': '.join([', '.join(where), message]) if where else message}")

"""Worker exit codes and the errors that map to them (documented in docs/training.md)."""

from __future__ import annotations

EXIT_OK = 0
#: Unexpected failure (crash, lost connection, OOM): the Job may retry; it resumes from the newest complete checkpoint.
EXIT_FAILED = 1
#: SIGTERM (preemption, eviction, Kueue suspend): a checkpoint of the current step was saved; rerun to resume.
EXIT_PREEMPTED = 75          # sysexits EX_TEMPFAIL
#: Invalid run spec, model folder or training data: retrying cannot help (podFailurePolicy FailJob on this code).
EXIT_INVALID = 78            # sysexits EX_CONFIG


class ConfigError(ValueError):
    """Invalid run spec or configuration (non-retryable)."""

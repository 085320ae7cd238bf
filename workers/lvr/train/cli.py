"""`python -m lvr sft|grpo --spec FILE [--set name=value ...]` (registered by lvr/__main__.py).

Exit codes (docs/training.md): 0 done; 1 unexpected failure (retryable, resumes); 75 stopped by SIGTERM after saving a
checkpoint (retryable, resumes); 78 invalid run spec, model or data (not retryable).
"""

from __future__ import annotations

import sys
import traceback

from ..storage import StorageConfigError
from .errors import EXIT_FAILED, EXIT_INVALID, ConfigError


def run(stage: str, spec_path: str, sets: list[str]) -> int:
    from ..data.errors import DataError
    from .events import EventSink
    from .overrides import parse_sets
    from .spec import load_spec

    events = None
    try:
        cfg = load_spec(spec_path, parse_sets(sets))
        if cfg.stage != stage:
            raise ConfigError(f"run spec stage is {cfg.stage!r} but the command is {stage!r}")
        from . import runtime as R
        from .session import Session

        env = R.init_env()
        events = EventSink(cfg.run_id, enabled=env.main)
        session = Session(cfg, env, events)
        if stage == "sft":
            from .sft import run_sft

            return run_sft(cfg, env, session)
        from .grpo import run_grpo

        return run_grpo(cfg, env, session)
    except (ConfigError, DataError, StorageConfigError) as e:
        sys.stderr.write(f"error: {e}\n")
        if events is not None:
            events.event("Failed", {"exitCode": EXIT_INVALID, "retryable": False}, reason=str(e))
        return EXIT_INVALID
    except Exception as e:  # noqa: BLE001 - everything else is retryable
        traceback.print_exc()
        if events is not None:
            events.event("Failed", {"exitCode": EXIT_FAILED, "retryable": True},
                         reason=f"{type(e).__name__}: {e}")
        return EXIT_FAILED
    finally:
        if events is not None:
            events.close()


def add_parser(subparsers) -> None:
    for stage, help_ in (("sft", "stage-1 SFT (CE + λ·MSE on teacher-forced ROI latents)"),
                         ("grpo", "stage-2 GRPO_latent")):
        p = subparsers.add_parser(stage, help=help_)
        p.add_argument("--spec", required=True, help="run spec JSON (the lvr.training.requests message)")
        p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       help="override a TrainConfig setting the contract does not carry (e.g. packing_mode=pad)")
        p.set_defaults(func=lambda a, stage=stage: run(stage, a.spec, a.set))


register = add_parser

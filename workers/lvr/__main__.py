"""`python -m lvr <subcommand>`: the worker CLI (`npm run worker -- <subcommand> ...`).

To add a subcommand, write `add_parser(subparsers)` in your module (it must set `func=handler` via
`parser.set_defaults(func=...)`, the handler returns an exit code) and list the module in SUBCOMMAND_MODULES.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: Modules that contribute subcommands; each has `add_parser(subparsers)`.
SUBCOMMAND_MODULES = ["lvr.cli_export"]
#: Optional modules (added by other rooms); skipped only when the module itself does not exist yet.
OPTIONAL_SUBCOMMAND_MODULES = ["lvr.train.cli"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lvr", description="LVR worker CLI")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    for name in OPTIONAL_SUBCOMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        mod.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

"""The ``seqrisk`` command: one dispatcher, subcommands registered by each package.

Each module in ``COMMAND_MODULES`` defines ``register(subparsers)`` adding its subcommands,
each with ``set_defaults(func=handler)`` where ``handler(args) -> int`` is the exit code.
Handlers import their heavy dependencies lazily so ``seqrisk --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from sequencer import __version__
from sequencer.log import add_logging_arguments

__all__ = ["main", "build_parser", "COMMAND_MODULES"]

COMMAND_MODULES = (
    "sequencer.service_cli",
    "sequencer.journal_cli",
    "sequencer.config_cli",
    "oms.cli",
    "risk_gate.cli",
    "risk_gate.audit.cli",
    "risk_gate.demo.cli",
    "benchmarks.cli",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="seqrisk",
        description="Single-sequencer, event-sourced pre-trade risk engine.",
    )
    parser.add_argument("--version", action="version", version=f"seqrisk {__version__}")
    add_logging_arguments(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # Only a command module that is not part of this build is skipped; a
            # missing dependency inside one is a real error.
            if exc.name != name and not name.startswith(f"{exc.name}."):
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``seqrisk`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

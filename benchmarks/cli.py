"""``seqrisk bench``: the same runner as ``python -m benchmarks``."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``seqrisk bench``."""
    from benchmarks._args import add_arguments

    parser = sub.add_parser(
        "bench",
        help="run the benchmark suite (results.json + results.md)",
        description="Measure every seqrisk speed target beside a ceiling measured in the same run.",
    )
    add_arguments(parser)
    parser.set_defaults(func=_handler)


def _handler(args: argparse.Namespace) -> int:
    from benchmarks.harness import main_from_args

    return main_from_args(args)

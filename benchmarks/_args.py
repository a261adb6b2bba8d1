"""Command-line options of the benchmark runner (kept free of heavy imports for ``seqrisk --help``)."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_arguments", "REPEATS_FULL", "REPEATS_QUICK", "WARMUP", "TIMEOUT_FULL_S", "TIMEOUT_QUICK_S"]

REPEATS_FULL = 5
REPEATS_QUICK = 2
WARMUP = 1
TIMEOUT_FULL_S = 1800.0
TIMEOUT_QUICK_S = 120.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options shared by ``python -m benchmarks`` and ``seqrisk bench``."""
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, a few seconds per module (CI smoke test; numbers not representative)")
    parser.add_argument("--out", type=Path, default=Path("bench-out"),
                        help="directory for results.json and results.md (default bench-out/)")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="run only these area modules (e.g. ceilings journal; see --list)")
    parser.add_argument("--list", action="store_true", help="list the area modules and exit")
    parser.add_argument("--repeats", type=int, metavar="N",
                        help=f"measured runs per result (default {REPEATS_FULL}, {REPEATS_QUICK} with --quick)")
    parser.add_argument("--timeout", type=float, metavar="S",
                        help=f"time limit per module in seconds (default {TIMEOUT_FULL_S:.0f}, "
                             f"{TIMEOUT_QUICK_S:.0f} with --quick)")
    parser.add_argument("--tmpdir", type=Path, metavar="DIR",
                        help="where the per-module temp dirs go (default the system temp dir; "
                             "journal numbers depend on this file system)")
    parser.add_argument("--strict", action="store_true", help="exit 1 if any module or result errored")

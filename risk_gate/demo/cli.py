"""``seqrisk demo``: the whole system in one command."""

from __future__ import annotations

import argparse
import sys

__all__ = ["register"]

_EPILOG = """\
Starts, as separate processes on loopback (ipc:// sockets under OUT/ipc): the sequencer
(journal in OUT/journal), a simulated venue, an OMS consumer, a forwarder on the gate's data
path and a strategy with an embedded risk gate. Midway it stalls the gate's data path, kills
the sequencer with SIGKILL and restarts it, and puts acct-2 in reduce-only for a moment.
At the end it stops everything, runs `seqrisk audit OUT/journal --out OUT/audit` and prints
where the report is. OUT/journal, OUT/audit and OUT/logs are replaced on every run.
Exit status: 0 ok, 1 a process failed (logs in OUT/logs), 130 interrupted (Ctrl-C).
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``demo`` to the ``seqrisk`` dispatcher."""
    p = sub.add_parser(
        "demo", help="run the whole system for a few seconds with faults, then audit it",
        description="Run the seqrisk demo: sequencer, venue, OMS and a gated strategy, with faults.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--seconds", type=float, default=25.0, metavar="N", help="length of the run once everything is up (default 25)")
    p.add_argument("--out", default="seqrisk-demo", metavar="DIR", help="output directory (default ./seqrisk-demo)")
    p.add_argument("--no-ui", action="store_true", help="print a plain summary every 2 s instead of the live view")
    p.add_argument("--config", metavar="FILE", help="TOML config (default: the built-in demo config, written to OUT/seqrisk.toml)")
    p.add_argument("--seed", type=int, default=1, metavar="N", help="seed of the venue's and strategy's randomness (default 1)")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from risk_gate.demo.orchestrator import DemoOptions, run_demo
    from sequencer.config import ConfigError
    from sequencer.log import setup_logging

    setup_logging(args.log_json, args.log_level)
    if not 1 <= args.seconds <= 3600:
        print("seqrisk demo: --seconds must be in 1..3600", file=sys.stderr)
        return 2
    ui = not args.no_ui and sys.stdout.isatty()
    opts = DemoOptions(
        seconds=args.seconds, out=Path(args.out), ui=ui, config=Path(args.config) if args.config else None,
        seed=args.seed, log_level=args.log_level, log_json=args.log_json,
    )
    try:
        return run_demo(opts)
    except ConfigError as exc:
        print(f"seqrisk demo: config error: {exc}", file=sys.stderr)
        return 2

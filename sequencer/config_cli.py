"""``seqrisk config check FILE``."""

from __future__ import annotations

import argparse
import sys

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``config`` command group."""
    p = sub.add_parser("config", help="configuration file tools")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = csub.add_parser("check", help="validate a TOML config file; exit 1 naming the first bad key")
    check.add_argument("file", help="path of the TOML config file")
    check.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    from sequencer.config import ConfigError, check_config

    try:
        sections = check_config(args.file)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.file}: ok ({', '.join(sections)})")
    return 0

"""Shared plumbing of the demo's child processes: stop on SIGTERM/SIGINT or parent death.

(Consumer reports to the sequencer, what ``seqrisk status`` lists, are sent by every
``consumers.Subscriber`` itself.)"""

from __future__ import annotations

import argparse
from typing import Any, NamedTuple

import os
import signal
import threading

__all__ = ["StopFlag", "ChildStart", "child_arguments", "start_child"]


class StopFlag:
    """Set by SIGTERM/SIGINT, or when the process that started us is gone."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._parent = os.getppid()
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.event.set()

    def is_set(self) -> bool:
        """True once the process should stop."""
        if not self.event.is_set() and os.getppid() != self._parent:
            # Reparented: the orchestrator died without stopping us.
            self.event.set()
        return self.event.is_set()


def child_arguments(module: str, description: str | None, default_name: str, argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line every demo child process (strategy, venue) takes."""
    p = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    for ep in ("ingest", "publish", "hwm", "replay"):
        p.add_argument(f"--{ep}", required=True)
    p.add_argument("--hwm-file", default=None)
    p.add_argument("--config", default=None)
    p.add_argument("--stats", default=None, help="orchestrator's stats endpoint (PUSH)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--name", default=default_name)
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--log-json", action="store_true")
    return p.parse_args(argv)


class ChildStart(NamedTuple):
    """What every demo child process starts with."""

    args: argparse.Namespace
    log: Any
    stop: StopFlag
    registry: Any
    cfg: Any


def start_child(module: str, description: str | None, default_name: str, component: str,
                argv: list[str] | None) -> ChildStart:
    """Parse the command line, set up logging and the stop flag, load the registry and demo config."""
    from risk_gate.demo.config import load_demo_config
    from sequencer.config import load_document, load_registry
    from sequencer.log import get_logger, setup_logging

    args = child_arguments(module, description, default_name, argv)
    setup_logging(args.log_json, args.log_level)
    doc = load_document(args.config)
    return ChildStart(args, get_logger(component), StopFlag(), load_registry(doc), load_demo_config(doc))

"""Shared plumbing of the demo's child processes: stop on SIGTERM/SIGINT or parent death.

(Consumer reports to the sequencer, what ``seqrisk status`` lists, are sent by every
``consumers.Subscriber`` itself.)"""

from __future__ import annotations

import os
import signal
import threading

__all__ = ["StopFlag"]


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

"""Shared plumbing of the demo's child processes: stop on SIGTERM/SIGINT or parent death,
and consumer reports to the sequencer (what ``seqrisk status`` lists)."""

from __future__ import annotations

import os
import signal
import threading
import time

import zmq

from sequencer.messages import ConsumerReport, encode

__all__ = ["StopFlag", "ConsumerReporter"]


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


class ConsumerReporter:
    """Send a :class:`ConsumerReport` to the sequencer's replay socket every ``interval_s``."""

    def __init__(self, replay: str, name: str, interval_s: float = 0.5, ctx: zmq.Context | None = None) -> None:
        self.name = name
        self.interval_s = interval_s
        self._next = 0.0
        self._sock = (ctx or zmq.Context.instance()).socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.SNDHWM, 4)
        self._sock.connect(replay)

    def maybe_send(self, applied_seq: int, hwm: int, epoch: int) -> None:
        """Report when the interval has passed; never blocks."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.interval_s
        report = ConsumerReport(name=self.name, applied_seq=applied_seq, hwm=hwm, lag=max(0, hwm - applied_seq), epoch=epoch)
        try:
            self._sock.send(encode(report), zmq.NOBLOCK)
        except zmq.Again:
            pass

    def close(self) -> None:
        self._sock.close(0)

"""What the demo shows: the newest report of every process, folded into one view.

The rich UI (:mod:`risk_gate.demo.ui`) and the plain summary (:mod:`risk_gate.demo.summary`)
both render a :class:`DemoView`; neither talks to a socket.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from risk_gate.demo.stats import ConsumerStats, GateStats, StatsMessage, VenueStats

__all__ = ["DemoView", "ProcRow", "StreamRow"]


@dataclass
class ProcRow:
    """One child process as the view shows it."""

    name: str
    pid: int | None
    state: str
    starts: int


@dataclass
class StreamRow:
    """How current one consumer is: applied seq against the HWM."""

    name: str
    epoch: int
    hwm: int
    applied_seq: int
    lag: int
    hwm_age_ms: float | None
    note: str


@dataclass
class DemoView:
    """The demo's state as of the last :meth:`update`."""

    seconds: float
    out_dir: str
    started: float = 0.0
    phase: str = "starting"
    gate: GateStats | None = None
    venue: VenueStats | None = None
    consumers: dict[str, ConsumerStats] = field(default_factory=dict)
    status_consumers: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    sequencer_epoch: int = 0
    sequencer_hwm: int = 0
    sequencer_up: bool = False
    sequencer_counts: dict[str, int] = field(default_factory=dict)
    procs: list[ProcRow] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)
    _hwm_samples: deque = field(default_factory=lambda: deque(maxlen=64))

    def elapsed(self, now: float | None = None) -> float:
        """Seconds since the run clock started (0 while starting)."""
        if not self.started:
            return 0.0
        return (now if now is not None else time.monotonic()) - self.started

    def note(self, text: str, now: float | None = None) -> None:
        """Record a fault or operator event on the run's timeline."""
        self.events.append((self.elapsed(now), text))

    def update(self, msg: StatsMessage) -> None:
        """Keep the newest report of its process."""
        if isinstance(msg, GateStats):
            self.gate = msg
            self._sample_hwm(msg.hwm)
        elif isinstance(msg, VenueStats):
            self.venue = msg
            self._sample_hwm(msg.hwm)
        elif isinstance(msg, ConsumerStats):
            self.consumers[msg.name] = msg

    def set_status(self, epoch: int, hwm: int, counts: dict[str, int], consumers: dict[str, tuple[int, int, int, int]]) -> None:
        """The sequencer's own status reply (epoch, HWM, counts, consumer reports)."""
        self.sequencer_up = True
        self.sequencer_epoch = epoch
        self.sequencer_hwm = hwm
        self.sequencer_counts = dict(counts)
        self.status_consumers = dict(consumers)
        self._sample_hwm(hwm)

    def _sample_hwm(self, hwm: int) -> None:
        now = time.monotonic()
        if self._hwm_samples and hwm < self._hwm_samples[-1][1]:
            return
        self._hwm_samples.append((now, hwm))

    def events_per_s(self, window_s: float = 2.0) -> float:
        """Sequenced events per second over the last ``window_s`` (from HWM samples)."""
        s = self._hwm_samples
        if len(s) < 2:
            return 0.0
        t_end, h_end = s[-1]
        t0, h0 = s[0]
        for t, h in s:
            if t_end - t <= window_s:
                t0, h0 = t, h
                break
        dt = t_end - t0
        return (h_end - h0) / dt if dt > 0 else 0.0

    @property
    def hwm(self) -> int:
        """The highest HWM any report has shown."""
        cands = [self.sequencer_hwm]
        if self.gate:
            cands.append(self.gate.hwm)
        if self.venue:
            cands.append(self.venue.hwm)
        return max(cands)

    def streams(self) -> list[StreamRow]:
        """One row per consumer: the gate, the OMS, the venue, and any others reporting."""
        rows: list[StreamRow] = []
        g = self.gate
        if g is not None:
            note = "recovering" if g.recovering else ("stale" if g.last_refusal.startswith("STALE") else "ok")
            rows.append(StreamRow("gate", g.epoch, g.hwm, g.applied_seq, g.lag, g.hwm_age_ms, note if g.ready else "starting"))
        for name, c in sorted(self.consumers.items()):
            rows.append(StreamRow(name, c.epoch, c.hwm, c.applied_seq, c.lag, None, f"{c.open_orders} open"))
        seen = {r.name for r in rows}
        for name, (epoch, applied, hwm, lag) in sorted(self.status_consumers.items()):
            if name not in seen and name != "gate":
                rows.append(StreamRow(name, epoch, hwm, applied, lag, None, "via status"))
                seen.add(name)
        v = self.venue
        if v is not None and "sim-venue" not in seen:
            rows.append(StreamRow("sim-venue", 0, v.hwm, v.applied_seq, v.lag, None, f"{v.resting} resting"))
        return rows

    def decisions(self) -> tuple[int, int, list[tuple[str, int]]]:
        """``(approved, refused, [(reason, count)...])`` sorted by count."""
        if self.gate is None:
            return 0, 0, []
        refused = sorted(self.gate.refused.items(), key=lambda kv: (-kv[1], kv[0]))
        return self.gate.approved, sum(self.gate.refused.values()), refused

"""Plain-text output of the demo (``--no-ui``): one summary line per period, a final report."""

from __future__ import annotations

from typing import TextIO

from risk_gate.demo.view import DemoView

__all__ = ["summary_line", "final_report", "PlainReporter"]


def summary_line(view: DemoView) -> str:
    """One line: clock, sequencer, each consumer's applied seq and lag, decisions, venue."""
    parts = [f"[{view.elapsed():5.1f}s/{view.seconds:g}s] {view.phase}"]
    seq = f"sequencer {'up' if view.sequencer_up else 'DOWN'} epoch {view.sequencer_epoch} hwm {view.hwm}"
    parts.append(f"{seq} {view.events_per_s():.0f} ev/s")
    for row in view.streams():
        age = f" age {row.hwm_age_ms:.0f}ms" if row.hwm_age_ms is not None else ""
        parts.append(f"{row.name} applied {row.applied_seq} lag {row.lag}{age}")
    approved, refused, by_reason = view.decisions()
    top = ", ".join(f"{r} {n}" for r, n in by_reason[:4])
    parts.append(f"approved {approved} refused {refused}" + (f" ({top})" if top else ""))
    v = view.venue
    if v is not None:
        parts.append(f"venue acks {v.acks} fills {v.fills} cancels {v.cancels} rejects {v.rejects}")
    return " | ".join(parts)


def final_report(view: DemoView) -> str:
    """Multi-line report at the end of a run: decisions by reason, positions, the fault timeline."""
    lines = []
    approved, refused, by_reason = view.decisions()
    lines.append(f"decisions: {approved} approved, {refused} refused")
    for reason, n in by_reason:
        lines.append(f"  {reason:<20} {n}")
    g = view.gate
    if g is not None and g.positions:
        lines.append("positions (gate's view, instrument units):")
        for p in g.positions:
            lim = f"{p.limit:g}" if p.limit >= 0 else "none"
            lines.append(f"  {p.account:<8} {p.instrument:<10} {p.qty:>14g}  limit {lim}")
    if view.events:
        lines.append("timeline:")
        for t, text in view.events:
            lines.append(f"  {t:6.1f}s  {text}")
    return "\n".join(lines)


class PlainReporter:
    """Prints a summary line every ``every_s`` seconds of the run."""

    def __init__(self, out: TextIO, every_s: float = 2.0) -> None:
        self.out = out
        self.every_s = every_s
        self._next = 0.0
        self._events_shown = 0

    def __enter__(self) -> "PlainReporter":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def refresh(self, view: DemoView, now: float) -> None:
        """Print new timeline events at once, and the summary line when due."""
        while self._events_shown < len(view.events):
            t, text = view.events[self._events_shown]
            print(f"[{t:5.1f}s] >>> {text}", file=self.out, flush=True)
            self._events_shown += 1
        if now >= self._next:
            self._next = now + self.every_s
            print(summary_line(view), file=self.out, flush=True)

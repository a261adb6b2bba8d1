"""The live terminal view of the demo (rich): streams, decisions, positions, processes."""

from __future__ import annotations

from typing import Any

from risk_gate.demo.view import DemoView

__all__ = ["LiveView", "render"]

_STATE_STYLE = {"running": "green", "paused": "yellow", "down": "red", "killed": "red", "starting": "cyan"}


def _bar(frac: float, width: int = 12) -> str:
    frac = max(0.0, min(1.0, frac))
    full = int(round(frac * width))
    return "█" * full + "·" * (width - full)


def render(view: DemoView) -> Any:
    """A renderable of the whole view."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    head = Text()
    head.append("seqrisk demo  ", style="bold")
    head.append(f"{view.elapsed():5.1f}s / {view.seconds:g}s  ")
    head.append(view.phase, style="bold yellow" if view.phase != "running" else "bold green")
    head.append(f"   out: {view.out_dir}", style="dim")

    streams = Table(title="stream", title_justify="left", expand=True, box=None, header_style="bold")
    for col in ("component", "epoch", "HWM", "applied seq", "lag", "HWM age", "status"):
        streams.add_column(col, justify="right" if col not in ("component", "status") else "left")
    seq_state = "[green]up[/]" if view.sequencer_up else "[bold red]DOWN[/]"
    streams.add_row("sequencer", str(view.sequencer_epoch), str(view.hwm), "", "", "", f"{seq_state}  {view.events_per_s():.0f} ev/s")
    for row in view.streams():
        lag_style = "red" if row.lag > 64 else ""
        age = f"{row.hwm_age_ms:.0f} ms" if row.hwm_age_ms is not None else ""
        note_style = "yellow" if row.note in ("stale", "recovering") else ""
        streams.add_row(
            row.name, str(row.epoch), str(row.hwm), str(row.applied_seq),
            Text(str(row.lag), style=lag_style), age, Text(row.note, style=note_style),
        )

    approved, refused, by_reason = view.decisions()
    dec = Table(title=f"gate decisions  ({approved} approved, {refused} refused)", title_justify="left", box=None, expand=True)
    dec.add_column("reason")
    dec.add_column("count", justify="right")
    dec.add_column("")
    total = max(1, approved + refused)
    dec.add_row(Text("APPROVED", style="green"), str(approved), Text(_bar(approved / total), style="green"))
    for reason, n in by_reason:
        style = "yellow" if reason.startswith("STALE") or reason == "RECOVERING" else "red"
        dec.add_row(Text(reason, style=style), str(n), Text(_bar(n / total), style=style))

    pos = Table(title="positions vs limits (gate's view)", title_justify="left", box=None, expand=True)
    for col in ("account", "instrument", "position", "open buy", "open sell", "limit", "use"):
        pos.add_column(col, justify="left" if col in ("account", "instrument", "use") else "right")
    if view.gate is not None:
        for p in view.gate.positions:
            frac = abs(p.qty) / p.limit if p.limit > 0 else 0.0
            style = "red" if frac >= 0.95 else ("yellow" if frac >= 0.7 else "green")
            lim = f"{p.limit:g}" if p.limit >= 0 else "-"
            pos.add_row(p.account, p.instrument, f"{p.qty:g}", f"{p.open_buy:g}", f"{p.open_sell:g}", lim, Text(_bar(frac), style=style))

    procs = Table(title="processes", title_justify="left", box=None, expand=True)
    for col in ("name", "pid", "state", "starts"):
        procs.add_column(col)
    for pr in view.procs:
        procs.add_row(pr.name, str(pr.pid or "-"), Text(pr.state, style=_STATE_STYLE.get(pr.state, "")), str(pr.starts))

    venue = Text()
    v = view.venue
    if v is not None:
        venue.append(
            f"venue: {v.orders} orders  {v.acks} acks  {v.fills} fills  {v.cancels} cancels  {v.rejects} rejects  "
            f"{v.resting} resting   prices: " + "  ".join(f"{s} {p}" for s, p in v.last_prices.items())
        )
    timeline = Text()
    for t, text in view.events[-6:]:
        timeline.append(f"{t:6.1f}s  {text}\n")

    top = Table.grid(expand=True)
    top.add_column(ratio=3)
    top.add_column(ratio=2)
    top.add_row(streams, procs)
    mid = Table.grid(expand=True)
    mid.add_column(ratio=2)
    mid.add_column(ratio=3)
    mid.add_row(dec, pos)
    return Panel(Group(head, "", top, "", mid, "", venue, Panel(timeline, title="faults and operator events", title_align="left")))


class LiveView:
    """A rich ``Live`` display refreshed by the orchestrator's loop."""

    def __init__(self, refresh_per_second: float = 4.0) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console()
        self._live = Live(console=self.console, refresh_per_second=refresh_per_second, auto_refresh=False, transient=False)
        self._every = 1.0 / refresh_per_second
        self._next = 0.0

    def __enter__(self) -> "LiveView":
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(None, None, None)

    def refresh(self, view: DemoView, now: float) -> None:
        """Redraw at most ``refresh_per_second`` times per second."""
        if now < self._next:
            return
        self._next = now + self._every
        self._live.update(render(view), refresh=True)

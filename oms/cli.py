"""``seqrisk replay`` (the OMS state at any seq of a journal) and ``seqrisk oms`` (live consumer)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register", "replay_main", "oms_main", "format_report"]


def register(sub: Any) -> None:
    """Add the ``replay`` and ``oms`` subcommands."""
    p = sub.add_parser(
        "replay",
        help="fold a journal and print the OMS state at a seq",
        description="Fold the journal in DIR from seq 1 through --until (default: its end) and print "
        "positions, orders with their states, anomalies, trading states and the seq reflected.",
    )
    p.add_argument("dir", metavar="DIR", help="journal directory")
    p.add_argument("--until", type=int, default=None, metavar="SEQ", help="last seq to fold (default: the journal's last)")
    p.add_argument("--json", action="store_true", help="print one JSON document (keys: seq, orders, positions, anomalies, trading_states)")
    p.add_argument("--config", metavar="FILE", default=None, help="TOML config with the registry (default: built-in registry)")
    p.set_defaults(func=replay_main)
    # The audit extends replay with --at-time and --component oms|gate (risk_gate/audit/replay.py).
    from risk_gate.audit.replay import add_replay_options

    add_replay_options(p)

    q = sub.add_parser(
        "oms",
        help="run the OMS as a standalone consumer",
        description="Subscribe to the sequencer, keep the OMS current (gap fill, late join) and print a "
        "periodic summary: applied seq, lag, open orders, positions. Stops on SIGINT/SIGTERM.",
    )
    q.add_argument("--publish", required=True, metavar="EP", help="sequencer publish endpoint")
    q.add_argument("--hwm", required=True, metavar="EP", help="sequencer HWM heartbeat endpoint")
    q.add_argument("--replay", required=True, metavar="EP", help="sequencer replay endpoint")
    q.add_argument("--config", metavar="FILE", default=None, help="TOML config with the registry")
    q.add_argument("--interval", type=float, default=1.0, metavar="S", help="seconds between summaries (default 1.0)")
    q.add_argument("--hwm-file", default=None, metavar="PATH", help="shared-memory HWM file of a same-host sequencer")
    q.add_argument("--seconds", type=float, default=None, metavar="S", help="stop after S seconds (default: run until signalled)")
    q.set_defaults(func=oms_main)


def _registry(config: str | None):
    from sequencer.config import load_document, load_registry

    return load_registry(load_document(config))


def replay_main(args: argparse.Namespace) -> int:
    """Handler of ``seqrisk replay``: exit 0, or 1 with a message on a bad journal or config."""
    import msgspec

    from consumers.book import BookError
    from consumers.fold import fold_journal
    from oms.oms import Oms
    from sequencer.config import ConfigError
    from sequencer.journal import JournalError
    from sequencer.registry import RegistryError

    try:
        oms = Oms(_registry(args.config))
        fold_journal(oms, args.dir, args.until)
    except (ConfigError, RegistryError, JournalError, BookError) as exc:
        print(f"seqrisk replay: {exc}", file=sys.stderr)
        return 1
    report = oms.to_report()
    if args.json:
        sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
    else:
        sys.stdout.write(format_report(report))
    return 0


def format_trading_states(ts: dict[str, Any]) -> str:
    """One text line for the ``trading_states`` part of a replay report or gate view."""
    return (
        f"trading states: all={ts['all']}; accounts: "
        + ", ".join(f"{k}={v}" for k, v in ts["accounts"].items())
        + "; instruments: "
        + ", ".join(f"{k}={v}" for k, v in ts["instruments"].items())
    )


def format_report(report: dict[str, Any]) -> str:
    """The text form of :meth:`oms.Oms.to_report`."""
    lines = [f"seq {report['seq']}", format_trading_states(report["trading_states"])]
    lines.append(f"positions ({len(report['positions'])}):")
    for p in report["positions"]:
        venues = " ".join(f"{k}={v}" for k, v in p["venues"].items())
        lines.append(f"  {p['account']:<10} {p['instrument']:<10} qty {p['qty']:>14}  avg {p['avg_price'] or '-':>16}  realized {p['realized_pnl']:>16}  [{venues}]")
    live = [o for o in report["orders"] if o["state"] in ("pending_new", "new", "partially_filled")]
    lines.append(f"open orders ({len(live)} of {len(report['orders'])}):")
    for o in live:
        lines.append(
            f"  #{o['order_id']:<8} {o['account']:<10} {o['instrument']:<10} {o['venue']:<8} {o['side']:<4} "
            f"{o['qty']} @ {o['price']}  {o['state']:<16} cum {o['cum_qty']} leaves {o['leaves_qty']} avg {o['avg_price'] or '-'}"
        )
    by_state: dict[str, int] = {}
    for o in report["orders"]:
        by_state[o["state"]] = by_state.get(o["state"], 0) + 1
    lines.append("orders by state: " + (", ".join(f"{k} {v}" for k, v in sorted(by_state.items())) or "none"))
    lines.append(f"anomalies ({len(report['anomalies'])}):")
    for a in report["anomalies"]:
        lines.append(f"  seq {a['seq']:<8} {a['kind']:<20} order {a['order_id']}: {a['reason']}")
    return "\n".join(lines) + "\n"


def oms_main(args: argparse.Namespace) -> int:
    """Handler of ``seqrisk oms``: a standalone OMS consumer printing periodic summaries."""
    import signal
    import threading
    import time

    from oms.oms import Oms
    from sequencer.config import ConfigError
    from sequencer.log import get_logger, setup_logging
    from sequencer.registry import RegistryError

    setup_logging(args.log_json, args.log_level)
    log = get_logger("oms")
    try:
        from consumers.subscriber import Subscriber
    except ModuleNotFoundError:
        print("seqrisk oms: consumers.subscriber is not part of this build", file=sys.stderr)
        return 1
    try:
        oms = Oms(_registry(args.config))
    except (ConfigError, RegistryError) as exc:
        print(f"seqrisk oms: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sub = Subscriber(publish=args.publish, hwm=args.hwm, replay=args.replay, fold=oms, hwm_file=args.hwm_file, name="oms")
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    next_summary = time.monotonic()
    try:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            if sub.poll(max_frames=256) == 0:
                stop.wait(0.001)
            if time.monotonic() >= next_summary:
                next_summary += args.interval
                log.info(_summary(oms, sub), extra={"epoch": sub.epoch, "seq": oms.applied_seq})
    finally:
        sub.close()
    log.info("stopped: " + _summary(oms, sub), extra={"epoch": sub.epoch, "seq": oms.applied_seq})
    return 0


def _summary(oms: Any, sub: Any) -> str:
    positions = oms.positions()
    shown = ", ".join(f"{p.account}/{p.instrument} {p.qty}" for p in positions[:6])
    more = f" (+{len(positions) - 6})" if len(positions) > 6 else ""
    state = f" error={sub.error}" if sub.error else (" recovering" if sub.recovering else "")
    return (
        f"applied_seq={oms.applied_seq} hwm={sub.hwm} lag={sub.lag}{state} "
        f"open_orders={int(oms.book.open_orders.sum())} anomalies={oms.book.n_anomalies} positions: {shown or 'none'}{more}"
    )

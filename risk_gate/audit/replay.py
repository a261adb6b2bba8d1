"""``seqrisk replay --at-time ISO8601 --component oms|gate``: the audit's additions to replay.

``seqrisk replay`` (the OMS view) belongs to ``oms.cli``; :func:`add_replay_options` adds
``--at-time`` and ``--component`` to its parser and wraps its handler: ``--at-time`` is
turned into ``--until`` (the last seq whose ``ts_ns`` is at or before that time) and
``--component gate`` prints :func:`gate_view` instead of the OMS report.

The gate view at seq ``S`` is what a gate folding the stream holds at ``S``: positions, open
orders, worst-case exposure per (account, instrument), reference prices, trading states and
the limits in force (config plus the ``limit`` events up to ``S``). It adds the
*reservations implied by the stream*: for each gate (producer of decision records), its
last decision at or before ``S`` says which seq it had applied (``A``); its approvals with
seqs in ``(A, S]`` were reserved in that gate but not yet in its folded state.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

__all__ = ["add_replay_options", "gate_view", "seq_at_time", "format_gate_view"]

_LIVE = (1, 2, 3)  # pending_new, new, partially_filled


def add_replay_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--at-time`` and ``--component`` to the ``replay`` parser and wrap its handler."""
    parser.add_argument(
        "--at-time", metavar="ISO8601",
        help="stop at the last event stamped at or before this time (ISO 8601, no zone = UTC; or integer ns)",
    )
    parser.add_argument(
        "--component", choices=("oms", "gate"), default="oms",
        help="whose view to print: the OMS (default) or the gate (positions, open orders, reservations, "
        "trading states, limits in force)",
    )
    inner = parser.get_default("func")
    parser.set_defaults(func=_wrap(inner))


def _wrap(inner: Callable[[argparse.Namespace], int] | None) -> Callable[[argparse.Namespace], int]:
    def replay_with_audit_options(args: argparse.Namespace) -> int:
        return replay_main(args, inner)

    return replay_with_audit_options


def _journal_dir(args: argparse.Namespace) -> str:
    return getattr(args, "dir", None) or getattr(args, "journal")


def replay_main(args: argparse.Namespace, oms_handler: Callable[[argparse.Namespace], int] | None) -> int:
    """Resolve ``--at-time`` into ``--until``, then print the OMS or the gate view."""
    from risk_gate.audit.recheck import AuditError
    from risk_gate.audit.times import TimeParseError, parse_time_ns

    at_time = getattr(args, "at_time", None)
    component = getattr(args, "component", "oms")
    if at_time is not None:
        if args.until is not None:
            print("seqrisk replay: give --until or --at-time, not both", file=sys.stderr)
            return 2
        try:
            t_ns = parse_time_ns(at_time)
            args.until = seq_at_time(_journal_dir(args), t_ns)
        except TimeParseError as exc:
            print(f"seqrisk replay: --at-time: {exc}", file=sys.stderr)
            return 2
        except AuditError as exc:
            print(f"seqrisk replay: {exc}", file=sys.stderr)
            return 1
    if component == "oms":
        if oms_handler is None:
            print("seqrisk replay: the OMS view is not part of this build", file=sys.stderr)
            return 1
        return oms_handler(args)
    return _gate_main(args)


def _gate_main(args: argparse.Namespace) -> int:
    import msgspec

    from risk_gate.audit.recheck import AuditError
    from risk_gate.limits import load_gate_config
    from sequencer.config import ConfigError, load_document, load_registry

    try:
        doc = load_document(getattr(args, "config", None))
        registry = load_registry(doc)
        cfg = load_gate_config(doc, registry)
        view = gate_view(_journal_dir(args), args.until, registry, cfg)
    except (ConfigError, AuditError) as exc:
        print(f"seqrisk replay: {exc}", file=sys.stderr)
        return 1
    if getattr(args, "json", False):
        sys.stdout.write(msgspec.json.encode(view, order="sorted").decode() + "\n")
    else:
        sys.stdout.write(format_gate_view(view))
    return 0


def seq_at_time(journal_dir: str | Path, t_ns: int) -> int:
    """The last seq whose ``ts_ns`` is at or before ``t_ns`` (0 when none is)."""
    import numpy as np

    from risk_gate.audit.recheck import iter_journal

    _, chunks = iter_journal(journal_dir, None)
    found = 0
    for chunk in chunks:
        hit = np.flatnonzero(chunk["ts_ns"] <= t_ns)
        if len(hit):
            found = int(chunk["seq"][hit[-1]])
    return found


def gate_view(journal_dir: str | Path, until: int | None, registry: Any = None, config: Any = None) -> dict[str, Any]:
    """The gate's view at ``until`` (default: the journal's end) as a JSON-ready dict."""
    import numpy as np

    from consumers.book import BookError
    from oms.oms import Oms
    from risk_gate.audit.recheck import AuditError, iter_journal
    from risk_gate.limits import LimitTable
    from sequencer.protocol import RECORD_DTYPE, Kind
    from sequencer.registry import default_registry

    registry = registry if registry is not None else default_registry()
    oms = Oms(registry)
    table = LimitTable(config, registry)
    decisions: list[np.ndarray] = []
    _, chunks = iter_journal(journal_dir, until)
    for chunk in chunks:
        try:
            oms.apply(chunk)
        except BookError as exc:
            raise AuditError(f"cannot fold the journal (is --config the registry it was written with?): {exc}") from None
        table.apply(chunk)
        k = chunk["kind"]
        decisions.append(chunk[(k == Kind.NEW_ORDER) | (k == Kind.REFUSED)].copy())
    seq = oms.applied_seq
    dec = np.concatenate(decisions) if decisions else np.zeros(0, dtype=RECORD_DTYPE)
    return {
        "component": "gate",
        "seq": seq,
        "positions": _exposures(oms, registry),
        "open_orders": [msgspec_builtins(o) for o in oms.open_orders()],
        "open_orders_by_account": {
            registry.account_name(aid): int(oms.book.open_orders[aid]) for aid in sorted(registry.accounts.values())
        },
        "reservations": _reservations(dec, seq, oms, registry) if len(dec) else [],
        "reference_prices": _ref_prices(oms, registry),
        "trading_states": oms.trading_states(),
        "limits": [
            {"limit": name, "account": _name(registry.account_name, a), "instrument": _inst_name(registry, i), "value": v}
            for name, a, i, v in table.items()
        ],
        "limit_changes": table.changes,
    }


def msgspec_builtins(obj: Any) -> Any:
    import msgspec

    return msgspec.to_builtins(obj)


def _name(fn: Callable[[int], str], ident: int) -> str:
    return fn(ident) if ident else "*"


def _inst_name(registry: Any, iid: int) -> str:
    return registry.instrument(iid).symbol if iid else "*"


def _exposures(oms: Any, registry: Any) -> list[dict[str, Any]]:
    """Per (account, instrument) with anything on: position, open lots, worst case long/short."""
    b = oms.book
    out = []
    for aid in sorted(registry.accounts.values()):
        for inst in sorted(registry.instruments, key=lambda x: x.id):
            i = inst.id
            pos, ob, osl = int(b.pos[aid, i]), int(b.open_buy[aid, i]), int(b.open_sell[aid, i])
            if not (pos or ob or osl):
                continue
            out.append(
                {
                    "account": registry.account_name(aid),
                    "instrument": inst.symbol,
                    "qty": inst.qty_str(pos),
                    "open_buy": inst.qty_str(ob),
                    "open_sell": inst.qty_str(osl),
                    "worst_long": inst.qty_str(pos + ob),
                    "worst_short": inst.qty_str(osl - pos),
                }
            )
    return out


def _ref_prices(oms: Any, registry: Any) -> dict[str, Any]:
    b = oms.book
    return {
        inst.symbol: {"price": inst.price_str(int(b.ref_px[inst.id])), "ts_ns": int(b.ref_ts[inst.id])}
        for inst in sorted(registry.instruments, key=lambda x: x.id)
        if int(b.ref_px[inst.id]) > 0
    }


def _reservations(dec: Any, seq: int, oms: Any, registry: Any) -> list[dict[str, Any]]:
    """Per gate producer: its last decision, the seq it had applied, and approvals past that seq."""
    out = []
    for producer in sorted(set(dec["producer"].tolist())):
        mine = dec[dec["producer"] == producer]
        last = mine[-1]
        applied = int(last["aux1"])
        pending = mine[(mine["kind"] == 1) & (mine["seq"] > applied)]
        orders = []
        for r in pending:
            inst = registry.instrument(int(r["instrument"]))
            orders.append(
                {
                    "order_id": int(r["order_id"]),
                    "seq": int(r["seq"]),
                    "account": registry.account_name(int(r["account"])),
                    "instrument": inst.symbol,
                    "side": "buy" if int(r["side"]) == 1 else "sell",
                    "qty": inst.qty_str(int(r["qty"])),
                    "price": inst.price_str(int(r["price"])),
                }
            )
        out.append(
            {
                "producer": int(producer),
                "last_decision_seq": int(last["seq"]),
                "applied_seq": applied,
                "hwm": int(last["aux2"]),
                "behind": seq - applied,
                "orders": orders,
            }
        )
    return out


def format_gate_view(v: dict[str, Any]) -> str:
    """Text form of :func:`gate_view`."""
    from oms.cli import format_trading_states

    lines = [f"gate view at seq {v['seq']}", format_trading_states(v["trading_states"])]
    lines.append(f"positions and worst case ({len(v['positions'])}):")
    for p in v["positions"]:
        lines.append(
            f"  {p['account']:<10} {p['instrument']:<10} qty {p['qty']:>14}  open buy {p['open_buy']:>12} "
            f"sell {p['open_sell']:>12}  worst long {p['worst_long']:>14} short {p['worst_short']:>14}"
        )
    lines.append(f"open orders ({len(v['open_orders'])}):")
    for o in v["open_orders"]:
        lines.append(
            f"  #{o['order_id']:<8} {o['account']:<10} {o['instrument']:<10} {o['side']:<4} {o['qty']} @ {o['price']}  "
            f"{o['state']:<16} leaves {o['leaves_qty']}"
        )
    lines.append("reservations implied by the stream:")
    if not v["reservations"]:
        lines.append("  none (no gate decisions yet)")
    for r in v["reservations"]:
        lines.append(
            f"  producer {r['producer']}: last decision seq {r['last_decision_seq']}, applied {r['applied_seq']}, "
            f"HWM {r['hwm']}; {len(r['orders'])} approvals past its applied seq"
        )
        for o in r["orders"]:
            lines.append(f"    #{o['order_id']:<8} seq {o['seq']:<8} {o['account']:<10} {o['instrument']:<10} {o['side']:<4} {o['qty']} @ {o['price']}")
    lines.append("reference prices: " + (", ".join(f"{k}={p['price']}" for k, p in v["reference_prices"].items()) or "none"))
    lines.append(f"limits in force ({v['limit_changes']} changes on the stream):")
    for lim in v["limits"]:
        lines.append(f"  {lim['limit']:<20} account {lim['account']:<10} instrument {lim['instrument']:<10} {lim['value']}")
    return "\n".join(lines) + "\n"

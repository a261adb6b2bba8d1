"""``seqrisk halt|resume|reduce-only``: the operator's kill switch, as sequenced control events.

Each command submits one control event through the sequencer's ingest socket and prints the
seq it was stamped with; every gate applies it at that seq (audits see exactly when).
Scope: everything (no option), one account (``--account``) or one instrument
(``--instrument``), not both.
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["register", "build_control_record"]

_COMMANDS = {
    "halt": "refuse every new order in the scope (cancels are not gated and still flow)",
    "resume": "return the scope to normal trading",
    "reduce-only": "allow only orders that reduce |position| (counting working orders) in the scope",
}


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``halt``, ``resume`` and ``reduce-only``."""
    for name, what in _COMMANDS.items():
        p = sub.add_parser(name, help=f"trading state: {what}", description=f"Publish a sequenced {name} control event: {what}.")
        p.add_argument("--ingest", required=True, help="sequencer ingest endpoint, e.g. tcp://127.0.0.1:5701")
        scope = p.add_mutually_exclusive_group()
        scope.add_argument("--account", help="scope to this account (name or id)")
        scope.add_argument("--instrument", help="scope to this instrument (symbol or id)")
        p.add_argument("--reason", required=True, help="why (journaled with the event; at most 40 UTF-8 bytes)")
        p.add_argument("--producer", default=None, help="producer name (default: seqrisk-<command>-<unique>)")
        p.add_argument("--config", default=None, help="TOML config with the registry (default: built-in registry)")
        p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the sequencer's ack (default 5)")
        p.set_defaults(func=_run, control=name)


def build_control_record(command: str, registry, account: str | None, instrument: str | None, reason: str):
    """One unstamped control record; raises ``ValueError`` naming a bad scope or reason."""
    from sequencer.protocol import TEXT_SIZE, Kind, empty_records
    from sequencer.registry import RegistryError

    kind = {"halt": Kind.HALT, "resume": Kind.RESUME, "reduce-only": Kind.REDUCE_ONLY}[command]
    if account is not None and instrument is not None:
        raise ValueError("scope: give --account or --instrument, not both")
    rec = empty_records(1)
    rec["kind"] = int(kind)
    try:
        if account is not None:
            rec["account"] = int(account) if account.isdigit() and int(account) in registry.accounts.values() else registry.account_id(account)
        if instrument is not None:
            rec["instrument"] = registry.instrument(int(instrument) if instrument.isdigit() else instrument).id
    except RegistryError as exc:
        raise ValueError(f"scope: {exc}") from None
    raw = reason.encode("utf-8")
    if not raw.strip():
        raise ValueError("reason: must not be empty")
    if len(raw) > TEXT_SIZE:
        raise ValueError(f"reason: {len(raw)} UTF-8 bytes, at most {TEXT_SIZE}")
    rec["text"] = raw
    return rec


def _run(args: argparse.Namespace) -> int:
    import os

    from sequencer.config import ConfigError, load_document, load_registry
    from sequencer.producer import Producer

    try:
        registry = load_registry(load_document(args.config))
        rec = build_control_record(args.control, registry, args.account, args.instrument, args.reason)
    except (ConfigError, ValueError) as exc:
        print(f"seqrisk {args.control}: {exc}", file=sys.stderr)
        return 2
    name = args.producer or f"seqrisk-{args.control}-{os.getpid()}-{os.urandom(4).hex()}"
    producer = Producer(ingest=args.ingest, name=name)
    try:
        producer.submit(rec)
        replies = producer.flush(args.timeout)
    finally:
        producer.close()
    if not replies:
        print(f"seqrisk {args.control}: no answer from {args.ingest} within {args.timeout} s", file=sys.stderr)
        return 1
    reply = replies[-1]
    if not reply.ok:
        print(f"seqrisk {args.control}: sequencer refused it: {reply.code_name}: {reply.message}", file=sys.stderr)
        return 1
    scope = {"account": args.account} if args.account else {"instrument": args.instrument} if args.instrument else {}
    print(json.dumps({"kind": args.control.replace("-", "_"), "seq": reply.first_seq, "epoch": reply.epoch, **scope, "reason": args.reason}))
    return 0

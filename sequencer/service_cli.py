"""CLI of the sequencer service: ``seqrisk sequencer``, ``seqrisk submit``, ``seqrisk status``.

Also runnable alone as ``python -m sequencer.service_cli COMMAND ...`` (what the tests and
the demo start: it imports nothing but the sequencer package).
"""

from __future__ import annotations

import argparse
import sys

from sequencer.config import DEFAULT_ENDPOINTS

__all__ = ["register", "main"]

_SEQ_EPILOG = f"""\
Endpoints default to [sequencer] in --config, else ingest {DEFAULT_ENDPOINTS['ingest']},
publish {DEFAULT_ENDPOINTS['publish']}, hwm {DEFAULT_ENDPOINTS['hwm']},
replay {DEFAULT_ENDPOINTS['replay']}. Flags override the config file. The HWM file defaults to
DIR/hwm ("off" disables it). SIGTERM/SIGINT: stop taking input, sync the journal, send a last
heartbeat, exit 0. Durability: always = fdatasync before each ack/publish (survives power
loss); batch = group commit every --sync-ms (survives a process crash; a power loss may lose
the last few ms); none = page cache only (survives a process crash, not a power loss).
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``sequencer``, ``submit`` and ``status`` to the ``seqrisk`` dispatcher."""
    p = sub.add_parser(
        "sequencer", help="run the sequencer service (ingest, stamp, journal, publish, HWM, replay)",
        description="Run the sequencer: the single writer of the ordered, journaled event stream.",
        epilog=_SEQ_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--journal", metavar="DIR", help="journal directory (default: [sequencer] journal, else ./journal)")
    for name in ("ingest", "publish", "hwm", "replay"):
        p.add_argument(f"--{name}", metavar="EP", help=f"{name} endpoint (default {DEFAULT_ENDPOINTS[name]})")
    p.add_argument("--durability", choices=["always", "batch", "none"], help="journal durability (default batch)")
    p.add_argument("--config", metavar="FILE", help="TOML config: [sequencer] section and the registry")
    p.add_argument("--heartbeat-ms", type=float, metavar="MS", help="HWM heartbeat period in ms (default 1)")
    p.add_argument("--sync-ms", type=float, metavar="MS", help="group-commit period of durability batch (default 2)")
    p.add_argument("--hwm-file", metavar="PATH", help='shared-memory HWM file (default DIR/hwm; "off" disables)')
    p.add_argument("--max-batch-records", type=int, metavar="N",
                   help="records drained, stamped and journaled per loop turn (default 4096)")
    p.set_defaults(func=_cmd_sequencer)

    s = sub.add_parser(
        "submit", help="submit JSON-lines events to the sequencer and print their seqs",
        description="Submit the events of FILE (JSON lines; - for stdin) as one producer. Prints one "
        "JSON line per event with its seq and epoch. A line's producer seq is its producer_seq "
        "field, else its 1-based line number, so resubmitting the same file with the same "
        "--producer is idempotent and prints the original seqs. An invalid line exits non-zero "
        "naming the line and field, and nothing from the file is stamped.",
    )
    s.add_argument("file", metavar="FILE", help="JSON-lines file, or - for stdin")
    s.add_argument("--ingest", metavar="EP", help=f"ingest endpoint (default [sequencer] ingest, else {DEFAULT_ENDPOINTS['ingest']})")
    s.add_argument("--producer", metavar="NAME", help="producer name (default: a unique name per run)")
    s.add_argument("--config", metavar="FILE", help="TOML config (registry used to parse the events)")
    s.add_argument("--timeout", type=float, default=10.0, metavar="S", help="seconds to wait for acks (default 10)")
    s.set_defaults(func=_cmd_submit)

    st = sub.add_parser(
        "status", help="ask a running sequencer for its status",
        description="Print the sequencer's status: epoch, HWM, durability, uptime, counts by kind, "
        "producers, errors by code and the consumers that report their lag.",
    )
    st.add_argument("--replay", metavar="EP", help=f"replay endpoint (default [sequencer] replay, else {DEFAULT_ENDPOINTS['replay']})")
    st.add_argument("--config", metavar="FILE", help="TOML config (for the default endpoint)")
    st.add_argument("--json", action="store_true", help="print one JSON object")
    st.add_argument("--timeout", type=float, default=3.0, metavar="S", help="seconds to wait for an answer (default 3)")
    st.set_defaults(func=_cmd_status)


def _config(args: argparse.Namespace, overrides: dict):
    from sequencer.config import SequencerConfig, convert_section, load_document, load_registry

    doc = load_document(getattr(args, "config", None))
    section = dict(doc.get("sequencer", {}))
    section.update({k: v for k, v in overrides.items() if v is not None})
    return convert_section(section, SequencerConfig, "sequencer"), load_registry(doc)


def _cmd_sequencer(args: argparse.Namespace) -> int:
    import signal
    import threading

    from sequencer.config import ConfigError
    from sequencer.log import get_logger, setup_logging

    setup_logging(getattr(args, "log_json", False), getattr(args, "log_level", "INFO"))
    log = get_logger("sequencer")
    try:
        cfg, registry = _config(args, {
            "journal": args.journal, "ingest": args.ingest, "publish": args.publish, "hwm": args.hwm,
            "replay": args.replay, "durability": args.durability, "heartbeat_ms": args.heartbeat_ms,
            "sync_ms": args.sync_ms, "hwm_file": args.hwm_file, "max_batch_records": args.max_batch_records,
        })
    except ConfigError as exc:
        print(f"seqrisk sequencer: {exc}", file=sys.stderr)
        return 2
    from sequencer.service import Sequencer

    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    seq = Sequencer(cfg, registry, cfg.journal)
    try:
        return seq.run(stop)
    except Exception as exc:  # noqa: BLE001 - the one place a service failure becomes an exit code
        log.exception("sequencer failed: %s", exc)
        return 1


def _cmd_submit(args: argparse.Namespace) -> int:
    from sequencer.config import ConfigError
    from sequencer.submit import SubmitError, submit_file

    try:
        cfg, registry = _config(args, {"ingest": args.ingest})
    except ConfigError as exc:
        print(f"seqrisk submit: {exc}", file=sys.stderr)
        return 2
    try:
        submit_file(args.file, cfg.ingest, registry, args.producer, args.timeout, sys.stdout)
    except SubmitError as exc:
        print(f"seqrisk submit: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from sequencer.config import ConfigError
    from sequencer.status import StatusTimeout, format_status, request_status

    try:
        cfg, _ = _config(args, {"replay": args.replay})
    except ConfigError as exc:
        print(f"seqrisk status: {exc}", file=sys.stderr)
        return 2
    try:
        status = request_status(cfg.replay, args.timeout)
    except StatusTimeout as exc:
        print(f"seqrisk status: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(format_status(status, as_json=args.json))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m sequencer.service_cli``: these three commands only."""
    from sequencer.log import add_logging_arguments

    parser = argparse.ArgumentParser(prog="python -m sequencer.service_cli")
    add_logging_arguments(parser)
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

"""``seqrisk journal verify|cat|info DIR``: check, print and summarize a journal directory.

Exit codes: 0 success; 1 the journal is not intact (``verify``: corrupt frame or torn tail)
or has a corrupt frame (``cat`` after printing what precedes it, ``info``); 2 the directory is
missing or not a journal, or a bad option or config file.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["register"]

EXIT_BAD = 1
EXIT_USAGE = 2
_EXIT_CODES = (
    "exit codes: 0 ok; 1 not intact (corrupt frame or torn tail; for cat/info a corrupt frame); "
    "2 missing directory, not a journal, or bad option/config"
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``journal`` command group."""
    p = sub.add_parser(
        "journal",
        help="inspect and verify a journal directory",
        description="Inspect and verify a journal directory (see docs/journal.md).",
        epilog=_EXIT_CODES,
    )
    jsub = p.add_subparsers(dest="journal_command", metavar="ACTION", required=True)

    verify = jsub.add_parser(
        "verify",
        help="check every frame's checksum and seq/epoch continuity; exit 1 naming the first bad frame",
        description="Check every frame of every segment (header, checksum, seq and epoch continuity, "
        "every record's seq and epoch), the index files and the EPOCH file. Read-only.",
        epilog=_EXIT_CODES,
    )
    verify.add_argument("dir", help="journal directory")
    verify.set_defaults(func=_verify)

    cat = jsub.add_parser("cat", help="print records as JSON lines")
    cat.add_argument("dir", help="journal directory")
    cat.add_argument("--from", dest="from_seq", type=int, default=1, metavar="SEQ", help="first seq to print (default: the first)")
    cat.add_argument("--to", dest="to_seq", type=int, default=None, metavar="SEQ", help="last seq to print, inclusive (default: the last)")
    cat.add_argument("--config", default=None, metavar="FILE", help="TOML config whose registry names instruments, accounts and venues (default: built-in registry)")
    cat.set_defaults(func=_cat)

    info = jsub.add_parser("info", help="segments, seq range, epochs and record counts by kind")
    info.add_argument("dir", help="journal directory")
    info.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    info.set_defaults(func=_info)


def _not_a_journal(p: Path) -> str | None:
    """Why ``p`` is not a journal directory (missing, or no segment, epoch or lock file), or None."""
    from sequencer.journal._format import EPOCH_FILE, LOCK_FILE, list_segments

    if not p.is_dir():
        return f"{p}: no such journal directory"
    if not list_segments(p) and not (p / EPOCH_FILE).exists() and not (p / LOCK_FILE).exists():
        return f"{p}: not a journal (no segment files *.seg, no EPOCH file)"
    return None


def _open_reader(path: str):
    """A JournalReader, or an error message for a missing directory or one that is not a journal."""
    from sequencer.journal import JournalError, JournalReader

    p = Path(path)
    err = _not_a_journal(p)
    if err:
        return None, err
    try:
        return JournalReader(p), None
    except JournalError as exc:
        return None, f"{p}: {exc}"


def _verify(args: argparse.Namespace) -> int:
    from sequencer.journal import JournalError, verify_journal

    p = Path(args.dir)
    err = _not_a_journal(p)
    if err:
        print(f"journal verify: {err}", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = verify_journal(p)
    except JournalError as exc:
        print(f"journal verify: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not report.ok:
        problem = report.problem
        hint = " (opening the journal for writing cuts it)" if problem.torn else ""
        print(
            f"{p}: NOT INTACT: {problem.describe()}{hint}\n"
            f"  segment={problem.segment} offset={problem.offset} seq={problem.seq} reason={problem.reason}",
            file=sys.stderr,
        )
        return EXIT_BAD
    epochs = ", ".join(f"{e} ({a}..{b})" for e, a, b in report.epochs)
    print(
        f"{p}: ok: {len(report.segments)} segments, {report.frames} frames, {report.records} records, "
        f"seqs {report.first_seq}..{report.last_seq}, epochs {epochs or 'none'}"
    )
    return 0


def _cat(args: argparse.Namespace) -> int:
    from sequencer.config import ConfigError, load_document, load_registry
    from sequencer.journal import JournalCorrupt
    from sequencer.jsonl import records_to_jsonl

    try:
        registry = load_registry(load_document(args.config))
    except ConfigError as exc:
        print(f"journal cat: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    reader, err = _open_reader(args.dir)
    if reader is None:
        print(f"journal cat: {err}", file=sys.stderr)
        return EXIT_USAGE
    out = sys.stdout.buffer
    try:
        with reader:
            for chunk in reader.read(args.from_seq, args.to_seq):
                out.write(records_to_jsonl(chunk, registry))
    except JournalCorrupt as exc:
        out.flush()
        print(f"journal cat: {exc}", file=sys.stderr)
        return EXIT_BAD
    except BrokenPipeError:
        # `seqrisk journal cat DIR | head` closing the pipe early is not an error; point stdout
        # at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    out.flush()
    return 0


def _info(args: argparse.Namespace) -> int:
    import msgspec

    from sequencer.journal import JournalCorrupt

    reader, err = _open_reader(args.dir)
    if reader is None:
        print(f"journal info: {err}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with reader:
            doc = _info_doc(reader)
    except JournalCorrupt as exc:
        print(f"journal info: {exc}", file=sys.stderr)
        return EXIT_BAD
    status = EXIT_BAD if doc["corrupt"] else 0
    if args.json:
        sys.stdout.write(msgspec.json.encode(doc).decode() + "\n")
        return status
    print(f"journal {doc['dir']}")
    print(f"  seqs      {doc['first_seq']}..{doc['last_seq']} ({doc['records']} records, {doc['frames']} frames, {doc['bytes']} bytes)")
    print("  epochs    " + (", ".join(f"{e['epoch']}: {e['first_seq']}..{e['last_seq']}" for e in doc["epochs"]) or "none"))
    print("  kinds     " + (", ".join(f"{k}={v}" for k, v in doc["kinds"].items()) or "none"))
    if doc["tail"]:
        print(f"  tail      {doc['tail']}")
    if doc["corrupt"]:
        print(f"  CORRUPT   {doc['corrupt']} (seqs after it are not readable)")
    print(f"  segments  {len(doc['segments'])}")
    for s in doc["segments"]:
        state = "sealed" if s["sealed"] else "open"
        print(f"    {s['name']}  seqs {s['first_seq']}..{s['last_seq']}  {s['records']} records  {s['frames']} frames  {s['bytes']} bytes  epochs {s['epochs']}  {state}")
    return status


def _info_doc(reader) -> dict:
    segments = reader.segments()
    tail = reader.tail_problem
    return {
        "dir": str(reader.path),
        "first_seq": reader.first_seq,
        "last_seq": reader.last_seq,
        "last_epoch": reader.last_epoch,
        "records": sum(s.records for s in segments),
        "frames": sum(s.frames for s in segments),
        "bytes": sum(s.bytes for s in segments),
        "epochs": [{"epoch": e, "first_seq": a, "last_seq": b} for e, a, b in reader.epochs()],
        "kinds": reader.count_kinds(1, reader.last_seq),
        "tail": tail.describe() if tail else None,
        "corrupt": reader.corrupt.describe() if reader.corrupt else None,
        "segments": [
            {
                "name": s.name,
                "first_seq": s.first_seq,
                "last_seq": s.last_seq,
                "frames": s.frames,
                "records": s.records,
                "bytes": s.bytes,
                "epochs": list(s.epochs),
                "sealed": s.sealed,
            }
            for s in segments
        ],
    }

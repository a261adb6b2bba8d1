"""``seqrisk submit``: JSON-lines events in, one ``{seq, epoch}`` line per event out.

The whole file is parsed and validated (the same kernel the sequencer runs) before anything
is sent, so an invalid line stamps nothing. Producer seqs are the lines' ``producer_seq``
fields, else their 1-based line numbers: resubmitting a file with the same ``--producer``
is idempotent and prints the original seqs.
"""

from __future__ import annotations

import sys
from typing import IO

import msgspec
import numpy as np

from sequencer.ingest import FIELD_NAMES, Masks, describe_error, validate_records
from sequencer.jsonl import JsonlError, record_from_json
from sequencer.producer import Producer
from sequencer.registry import Registry

__all__ = ["SubmitError", "parse_events", "submit_file", "FRAME_RECORDS"]

FRAME_RECORDS = 65536
_json = msgspec.json.Encoder()


class SubmitError(RuntimeError):
    """Why a submit failed (names the line and field when a line is at fault)."""


def parse_events(text: str, registry: Registry) -> tuple[np.ndarray, list[int]]:
    """Parse JSON lines into records (producer seqs filled in) and their line numbers."""
    recs: list[np.ndarray] = []
    lines: list[int] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = msgspec.json.decode(line)
        except msgspec.DecodeError as exc:
            raise SubmitError(f"line {n}: not valid JSON: {exc}") from None
        try:
            rec = record_from_json(obj, registry)
        except JsonlError as exc:
            raise SubmitError(f"line {n}: field {exc.field}: {exc}") from None
        if rec["producer_seq"][0] == 0:
            rec["producer_seq"] = n
        if recs and rec["producer_seq"][0] <= recs[-1]["producer_seq"][0]:
            raise SubmitError(f"line {n}: field producer_seq: {int(rec['producer_seq'][0])} is not above the "
                              f"previous event's {int(recs[-1]['producer_seq'][0])} (producer seqs must increase)")
        recs.append(rec)
        lines.append(n)
    if not recs:
        raise SubmitError("no events in the input")
    return np.concatenate(recs), lines


def submit_file(path: str, ingest: str, registry: Registry, producer: str | None,
                timeout_s: float, out: IO[str]) -> int:
    """Submit the events of ``path`` (``-`` = stdin); writes one JSON line per event to ``out``."""
    try:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    except OSError as exc:
        raise SubmitError(f"cannot read {path}: {exc}") from None
    records, lines = parse_events(text, registry)
    prod = Producer(ingest, producer, first_producer_seq=1, resend_timeout_s=1.0)
    try:
        records["producer"] = prod.producer_id
        bad, code, field = validate_records(records, Masks(registry))
        if bad >= 0:
            name = FIELD_NAMES[field] if field >= 0 else "record"
            raise SubmitError(f"line {lines[bad]}: field {name}: {describe_error(records, bad, code, field)}")
        tokens = []
        for lo in range(0, len(records), FRAME_RECORDS):
            tokens.append((lo, prod.submit(records[lo:lo + FRAME_RECORDS])))
        replies = {r.first_producer_seq: r for r in prod.flush(timeout_s) if r.first_producer_seq}
    finally:
        prod.close()
    results = []
    for lo, token in tokens:
        reply = replies.get(token)
        if reply is None:
            raise SubmitError(f"no answer from the sequencer at {ingest} within {timeout_s:g} s")
        if not reply.ok:
            where = f"line {lines[lo + reply.record_index]}: " if reply.record_index >= 0 else ""
            raise SubmitError(f"{where}rejected by the sequencer: {reply.code_name}: {reply.message}")
        results.append((lo, reply))
    for lo, reply in results:
        chunk = records[lo:lo + FRAME_RECORDS]
        contiguous = reply.last_seq - reply.first_seq + 1 == len(chunk)
        for i, rec in enumerate(chunk):
            seq = reply.first_seq + i if contiguous else None
            line = {"line": lines[lo + i], "seq": seq, "epoch": reply.epoch,
                    "producer_seq": int(rec["producer_seq"]), "duplicate": reply.duplicate}
            out.write(_json.encode(line).decode() + "\n")
    return len(records)

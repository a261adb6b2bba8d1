"""Frame builders shared by the journal tests."""

from __future__ import annotations

import numpy as np

from sequencer.protocol import Kind, empty_records, encode_frame


def make_records(first_seq: int, count: int, epoch: int) -> np.ndarray:
    """``count`` stamped price records with seqs ``first_seq..`` and distinct payloads."""
    recs = empty_records(count)
    recs["seq"] = np.arange(first_seq, first_seq + count)
    recs["epoch"] = epoch
    recs["ts_ns"] = recs["seq"] * 1000 + 7
    recs["kind"] = Kind.PRICE
    recs["instrument"] = 1
    recs["price"] = 100 + recs["seq"] % 997
    return recs


def make_frame(first_seq: int, count: int, epoch: int) -> bytes:
    """One stamped frame as the sequencer journals it."""
    return encode_frame(make_records(first_seq, count, epoch), epoch=epoch)


def fill(journal, sizes, epoch: int | None = None) -> np.ndarray:
    """Append one frame per size, continuing the journal; returns all records appended."""
    epoch = epoch or journal.last_epoch or journal.next_epoch()
    out = []
    for n in sizes:
        first = journal.last_seq + 1
        journal.append(make_frame(first, n, epoch), first, n, epoch)
        out.append(make_records(first, n, epoch))
    return np.concatenate(out) if out else empty_records(0)

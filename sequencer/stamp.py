"""Stamping a batch in place: seq, ts_ns and epoch on every record, then the stamped header.

:func:`stamp_frame` is what the sequencer runs once per drain: one numba pass over the
records (which also counts them by kind for ``status``), then the header and the xxh3
checksum. :func:`stamp_frame_py` is the plain-Python reference the tests compare it with.
"""

from __future__ import annotations

import struct

import numpy as np
import xxhash
from numba import njit

from sequencer.protocol import HEADER_SIZE, MAGIC, PROTOCOL_VERSION, RECORD_DTYPE, RECORD_SIZE, FrameType

__all__ = ["stamp_frame", "stamp_frame_py"]

_HEADER = struct.Struct("<4sHBBQIIq")
_CHECKSUM = struct.Struct("<Q")
_STAMPED = int(FrameType.STAMPED)
# Positions in the typed 2-D views of the records: int64 words, uint32 words, bytes.
_Q_SEQ, _Q_TS, _D_EPOCH, _B_KIND = 0, 1, 16, 80
for _name, _pos in (("seq", 8 * _Q_SEQ), ("ts_ns", 8 * _Q_TS), ("epoch", 4 * _D_EPOCH), ("kind", _B_KIND)):
    assert RECORD_DTYPE.fields[_name][1] == _pos, _name


@njit(cache=True)
def _stamp_kernel(q, d, b, first, ts, epoch, kind_counts):
    for i in range(q.shape[0]):
        q[i, _Q_SEQ] = first + i
        q[i, _Q_TS] = ts
        d[i, _D_EPOCH] = epoch
        kind_counts[b[i, _B_KIND]] += 1


@njit(cache=True)
def _stamp_drain_kernel(flat, n, first, ts, epoch, kind_counts):
    raw = flat[HEADER_SIZE:HEADER_SIZE + n * RECORD_SIZE].reshape((n, RECORD_SIZE))
    _stamp_kernel(raw.view(np.int64), raw.view(np.uint32), raw, first, ts, epoch, kind_counts)


def _finish(buf: bytearray, n: int, first: int, epoch: int) -> None:
    _HEADER.pack_into(buf, 0, MAGIC, PROTOCOL_VERSION, _STAMPED, 0, 0, epoch, n, first)
    _CHECKSUM.pack_into(buf, 8, xxhash.xxh3_64_intdigest(memoryview(buf)[16:]))


def stamp_frame(buf: bytearray, n: int, first: int, ts: int, epoch: int, kind_counts: np.ndarray) -> None:
    """Make ``buf`` (a header's room, then ``n`` records) a STAMPED frame, in place.

    Records get seqs ``first..first+n-1``, ``ts_ns = ts`` and ``epoch``; ``kind_counts[kind]``
    (int64, 256 entries) is incremented per record; the header and checksum are written last.
    """
    if len(buf) != HEADER_SIZE + n * RECORD_SIZE:
        raise ValueError(f"buffer of {len(buf)} bytes is not a frame of {n} records")
    _stamp_drain_kernel(np.frombuffer(buf, np.uint8), n, first, ts, epoch, kind_counts)
    _finish(buf, n, first, epoch)


def stamp_frame_py(buf: bytearray, n: int, first: int, ts: int, epoch: int, kind_counts: np.ndarray) -> None:
    """Plain-Python reference of :func:`stamp_frame` (one record at a time)."""
    recs = np.frombuffer(buf, RECORD_DTYPE, count=n, offset=HEADER_SIZE)
    for i in range(n):
        recs["seq"][i] = first + i
        recs["ts_ns"][i] = ts
        recs["epoch"][i] = epoch
        kind_counts[int(recs["kind"][i])] += 1
    _finish(buf, n, first, epoch)

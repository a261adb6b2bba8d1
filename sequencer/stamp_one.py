"""The one-frame drain's kernel: validate a frame and, when it is valid and new, stamp it.

At moderate rates most drains hold one frame, and each numba call costs a few us of dispatch
(type checks of its arguments): :func:`validate_stamp_one` does the work of
:func:`sequencer.ingest.validate_drain` and :func:`sequencer.stamp.stamp_frame` in one call,
into caller-owned scratch arrays. :func:`validate_stamp_one_py` is the plain-Python reference
(the two functions it fuses, one after the other) that the tests compare it with.
"""

from __future__ import annotations

import struct

import numpy as np
from numba import njit

from sequencer.ingest import Masks, _validate_kernel
from sequencer.ingest_reference import validate_frames_py
from sequencer.protocol import HEADER_SIZE, RECORD_DTYPE, RECORD_SIZE
from sequencer.stamp import _finish, _stamp_kernel, stamp_frame_py

__all__ = ["validate_stamp_one", "validate_stamp_one_py", "frame_producer"]

_PRODUCER = struct.Struct("<I")
_PRODUCER_AT = HEADER_SIZE + RECORD_DTYPE.fields["producer"][1]


def frame_producer(buf: bytes | bytearray | memoryview) -> int:
    """The ``producer`` of a frame's first record (a valid frame has one producer)."""
    return _PRODUCER.unpack_from(buf, _PRODUCER_AT)[0]


@njit(cache=True)
def _validate_stamp_kernel(flat, nrec, starts, acc_mask, ins_mask, ven_mask, out, producer, last, first, ts,
                           epoch, kind_counts):
    raw = flat[HEADER_SIZE:HEADER_SIZE + nrec * RECORD_SIZE].reshape((nrec, RECORD_SIZE))
    q = raw.view(np.int64)
    d = raw.view(np.uint32)
    _validate_kernel(starts, q, d, raw.view(np.uint16), raw, acc_mask, ins_mask, ven_mask, out)
    if out[0, 0] >= 0 or out[0, 3] != producer or out[0, 4] <= last:
        return False
    _stamp_kernel(q, d, raw, first, ts, epoch, kind_counts)
    return True


def validate_stamp_one(buf: bytearray, n: int, producer: int, last: int, first: int, ts: int, epoch: int,
                       masks: Masks, kind_counts: np.ndarray, starts: np.ndarray, out: np.ndarray) -> bool:
    """Validate one frame (``n`` records after a header's room in ``buf``); stamp it when it is
    valid, of ``producer`` and new (first producer seq above ``last``).

    ``out`` (int64, shape (1, 6)) gets the frame's :func:`~sequencer.ingest.validate_drain` row
    either way; ``starts`` (int64, 2 entries) is scratch. Returns True when the frame was
    stamped as :func:`~sequencer.stamp.stamp_frame` does (``kind_counts`` counted, header and
    checksum written); False leaves ``buf`` and ``kind_counts`` untouched.
    """
    if len(buf) != HEADER_SIZE + n * RECORD_SIZE:
        raise ValueError(f"buffer of {len(buf)} bytes is not a frame of {n} records")
    starts[1] = n
    if not _validate_stamp_kernel(np.frombuffer(buf, np.uint8), n, starts, masks.account, masks.instrument,
                                  masks.venue, out, producer, last, first, ts, epoch, kind_counts):
        return False
    _finish(buf, n, first, epoch)
    return True


def validate_stamp_one_py(buf: bytearray, n: int, producer: int, last: int, first: int, ts: int, epoch: int,
                          masks: Masks, kind_counts: np.ndarray, starts: np.ndarray, out: np.ndarray) -> bool:
    """Plain-Python reference of :func:`validate_stamp_one`."""
    if len(buf) != HEADER_SIZE + n * RECORD_SIZE:
        raise ValueError(f"buffer of {len(buf)} bytes is not a frame of {n} records")
    recs = np.frombuffer(bytes(buf), RECORD_DTYPE, count=n, offset=HEADER_SIZE)
    bad, code, field = validate_frames_py(recs, np.array([0, n], np.int64), masks)
    out[0] = (bad[0], code[0], field[0], recs["producer"][0], recs["producer_seq"][0], recs["producer_seq"][-1])
    if out[0, 0] >= 0 or out[0, 3] != producer or out[0, 4] <= last:
        return False
    stamp_frame_py(buf, n, first, ts, epoch, kind_counts)
    return True

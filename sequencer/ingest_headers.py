"""The header checks of a whole drain of ingest frames in one numba call.

:func:`gather_frames` is :func:`sequencer.ingest.ingest_count` over every frame of a drain
(joined back to back) plus the gathering of the accepted frames' records into one buffer with
room for the stamped header: what the sequencer's batch path stamps, journals and publishes.
Checksums are checked with xxhash's XXH3 called from the kernel (:mod:`sequencer.xxh3`). :func:`gather_frames_py`
is the plain-Python reference (``ingest_count`` frame by frame) the tests compare it with.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sequencer.ingest import ingest_count
from sequencer.protocol import HEADER_SIZE, MAGIC, MAX_FRAME_RECORDS, PROTOCOL_VERSION, RECORD_SIZE, FrameType
from sequencer.xxh3 import xxh3_64

__all__ = ["gather_frames", "gather_frames_py"]

# Magic, version, type INGEST and flags 0: the first 8 bytes of every ingest frame.
_PREFIX = np.uint64(int.from_bytes(MAGIC + PROTOCOL_VERSION.to_bytes(2, "little")
                                   + bytes([int(FrameType.INGEST), 0]), "little"))
_MIN_FRAME = HEADER_SIZE + RECORD_SIZE


@njit(inline="always")
def _load_u64(b, p):
    """Little-endian uint64 at byte ``p`` of the uint8 array ``b``."""
    return (np.uint64(b[p]) | (np.uint64(b[p + 1]) << np.uint64(8)) | (np.uint64(b[p + 2]) << np.uint64(16))
            | (np.uint64(b[p + 3]) << np.uint64(24)) | (np.uint64(b[p + 4]) << np.uint64(32))
            | (np.uint64(b[p + 5]) << np.uint64(40)) | (np.uint64(b[p + 6]) << np.uint64(48))
            | (np.uint64(b[p + 7]) << np.uint64(56)))


@njit(cache=True)
def _check_kernel(data, ends, prefix, counts):
    """``counts[f]``: the record count of frame ``f`` (bytes ``ends[f-1]..ends[f]`` of ``data``)
    when ingest_count accepts it, else 0. Returns the accepted frames' records in all."""
    o = 0
    nrec = 0
    for f in range(len(ends)):
        e = ends[f]
        size = e - o
        c = 0
        if size >= _MIN_FRAME and _load_u64(data, o) == prefix:
            count = (np.int64(data[o + 20]) | (np.int64(data[o + 21]) << 8) | (np.int64(data[o + 22]) << 16)
                     | (np.int64(data[o + 23]) << 24))
            if (count <= MAX_FRAME_RECORDS and size == HEADER_SIZE + count * RECORD_SIZE
                    and xxh3_64(data, o + 16, size - 16) == _load_u64(data, o + 8)):
                c = count
        counts[f] = c
        nrec += c
        o = e
    return nrec


@njit(cache=True)
def _gather_kernel(data, ends, counts, out, starts):
    """Copy the records of each frame with a count after the last into ``out`` from
    ``HEADER_SIZE`` on; ``starts``: their record offsets. Returns how many frames that was."""
    o = 0
    nrec = 0
    good = 0
    starts[0] = 0
    for f in range(len(ends)):
        e = ends[f]
        c = counts[f]
        if c:
            dst = HEADER_SIZE + nrec * RECORD_SIZE
            out[dst:dst + c * RECORD_SIZE] = data[o + HEADER_SIZE:e]
            nrec += c
            good += 1
            starts[good] = nrec
        o = e
    return good


def gather_frames(joined: bytes, ends: np.ndarray) -> tuple[bytearray, np.ndarray, np.ndarray]:
    """Check the ingest frames joined back to back in ``joined`` (frame ``f`` ends at byte
    ``ends[f]``) and gather the records of those that pass.

    Returns ``(buf, counts, starts)``: ``buf`` is ``HEADER_SIZE`` bytes of room for the stamped
    header followed by the accepted frames' records in arrival order; ``counts[f]`` is frame
    ``f``'s record count, 0 where :func:`ingest_count` refuses it; ``starts`` holds the accepted
    frames' record offsets in ``buf`` (one more entry than there are accepted frames).
    """
    n = len(ends)
    data = np.frombuffer(joined, np.uint8)
    counts = np.empty(n, np.int64)
    nrec = _check_kernel(data, ends, _PREFIX, counts)
    buf = bytearray(HEADER_SIZE + nrec * RECORD_SIZE)
    starts = np.empty(n + 1, np.int64)
    good = _gather_kernel(data, ends, counts, np.frombuffer(buf, np.uint8), starts)
    return buf, counts, starts[:good + 1]


def gather_frames_py(frames: list[bytes]) -> tuple[bytearray, np.ndarray, np.ndarray]:
    """Reference of :func:`gather_frames` over the list of frames: ``ingest_count`` frame by frame."""
    buf = bytearray(HEADER_SIZE)
    counts = [ingest_count(f) for f in frames]
    starts = [0]
    for f, c in zip(frames, counts):
        if c:
            buf += bytes(f)[HEADER_SIZE:]
            starts.append(starts[-1] + c)
    return buf, np.array(counts, np.int64), np.array(starts, np.int64)

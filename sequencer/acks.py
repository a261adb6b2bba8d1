"""Ingest acknowledgements of a drain as msgpack bytes, one message per producer socket.

When every frame of a drain was stamped, the sequencer answers each producer socket with a
msgpack array of ``IngestReply`` in their array form
``[true, 0, "OK", first_pseq, last_pseq, epoch, first_seq, last_seq, false, -1, ""]``:
:func:`encode_acks` writes all of them in one numba pass (no Python object per frame), and
:func:`encode_acks_py` is the plain-Python reference (msgspec encoding the same replies) the
tests compare it with byte for byte.
"""

from __future__ import annotations

import msgspec
import numpy as np
from numba import njit

__all__ = ["encode_acks", "encode_acks_py", "ACK_MAX_BYTES"]

# One reply: fixarray(11), true, 0, "OK" (3 bytes), 5 uint64 (9 bytes each), false, -1, "".
ACK_MAX_BYTES = 1 + 1 + 1 + 3 + 5 * 9 + 1 + 1 + 1
_ARRAY_HEADER_MAX = 5
_encoder = msgspec.msgpack.Encoder()


@njit(cache=True)
def _put_uint(out, pos, v):
    # msgpack's shortest form of a non-negative int, as msgspec writes it.
    if v < 0x80:
        out[pos] = v
        return pos + 1
    if v <= 0xFF:
        out[pos] = 0xCC
        out[pos + 1] = v
        return pos + 2
    if v <= 0xFFFF:
        out[pos] = 0xCD
        nbytes = 2
    elif v <= 0xFFFFFFFF:
        out[pos] = 0xCE
        nbytes = 4
    else:
        out[pos] = 0xCF
        nbytes = 8
    for k in range(nbytes):
        out[pos + nbytes - k] = (v >> (8 * k)) & 0xFF
    return pos + 1 + nbytes


@njit(cache=True)
def _put_array_header(out, pos, n):
    if n <= 15:
        out[pos] = 0x90 | n
        return pos + 1
    if n <= 0xFFFF:
        out[pos] = 0xDC
        out[pos + 1] = n >> 8
        out[pos + 2] = n & 0xFF
        return pos + 3
    out[pos] = 0xDD
    for k in range(4):
        out[pos + 4 - k] = (n >> (8 * k)) & 0xFF
    return pos + 5


@njit(cache=True)
def _encode_acks_kernel(groups, ngroups, p0, p1, seq0, seq1, epoch, out, offsets):
    nframes = groups.shape[0]
    sizes = np.zeros(ngroups, np.int64)
    for f in range(nframes):
        sizes[groups[f]] += 1
    pos = 0
    for g in range(ngroups):
        offsets[g] = pos
        pos = _put_array_header(out, pos, sizes[g])
        for f in range(nframes):
            if groups[f] != g:
                continue
            out[pos] = 0x9B
            out[pos + 1] = 0xC3
            out[pos + 2] = 0
            out[pos + 3] = 0xA2
            out[pos + 4] = 0x4F  # "O"
            out[pos + 5] = 0x4B  # "K"
            pos = _put_uint(out, pos + 6, p0[f])
            pos = _put_uint(out, pos, p1[f])
            pos = _put_uint(out, pos, epoch)
            pos = _put_uint(out, pos, seq0[f])
            pos = _put_uint(out, pos, seq1[f])
            out[pos] = 0xC2
            out[pos + 1] = 0xFF
            out[pos + 2] = 0xA0
            pos += 3
    offsets[ngroups] = pos


def encode_acks(groups: np.ndarray, ngroups: int, p0: np.ndarray, p1: np.ndarray, seq0: np.ndarray,
                seq1: np.ndarray, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """The ack messages of a drain whose frames were all stamped (numba).

    Frame ``f`` (arrival order) came from producer socket ``groups[f]`` (0..ngroups-1), had
    producer seqs ``p0[f]..p1[f]`` (> 0) and got seqs ``seq0[f]..seq1[f]``. Returns ``(buf,
    offsets)``: group ``g``'s message is ``buf[offsets[g]:offsets[g+1]]``, a msgpack array of
    its frames' replies in arrival order.
    """
    out = np.empty(len(groups) * ACK_MAX_BYTES + ngroups * _ARRAY_HEADER_MAX, np.uint8)
    offsets = np.empty(ngroups + 1, np.int64)
    _encode_acks_kernel(groups, ngroups, p0, p1, seq0, seq1, epoch, out, offsets)
    return out, offsets


def encode_acks_py(groups: np.ndarray, ngroups: int, p0: np.ndarray, p1: np.ndarray, seq0: np.ndarray,
                   seq1: np.ndarray, epoch: int) -> list[bytes]:
    """Plain-Python reference of :func:`encode_acks`: group ``g``'s message is item ``g``."""
    replies: list[list] = [[] for _ in range(ngroups)]
    for f in range(len(groups)):
        replies[int(groups[f])].append(
            (True, 0, "OK", int(p0[f]), int(p1[f]), epoch, int(seq0[f]), int(seq1[f]), False, -1, ""))
    return [_encoder.encode(r) for r in replies]

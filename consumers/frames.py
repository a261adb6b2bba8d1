"""``decode_stamped``: one stamped frame from the publish or replay socket, checked cheaply.

The consumer side reads every frame it applies through this function: the common case costs
one ``struct`` read and one checksum; anything unusual is decoded again by
:func:`sequencer.protocol.decode_frame` so the error names exactly what is wrong.
"""

from __future__ import annotations

import struct

import numpy as np
import xxhash

from sequencer.codes import ResultCode
from sequencer.protocol import (
    HEADER_SIZE,
    MAGIC,
    PROTOCOL_VERSION,
    RECORD_DTYPE,
    RECORD_SIZE,
    FrameError,
    FrameType,
    decode_frame,
)

__all__ = ["decode_stamped"]

_HEADER = struct.Struct("<4sHBBQIIq")
_STAMPED = int(FrameType.STAMPED)
_xxh3 = xxhash.xxh3_64_intdigest


def decode_stamped(buf: memoryview) -> tuple[int, int, np.ndarray]:
    """``(epoch, first_seq, records)`` of a stamped frame; raises :class:`FrameError`.

    The common case is checked with one ``struct`` read; anything unusual goes through
    :func:`sequencer.protocol.decode_frame` so the error names exactly what is wrong.
    """
    if len(buf) >= HEADER_SIZE:
        magic, version, ftype, flags, checksum, epoch, count, first = _HEADER.unpack_from(buf, 0)
        if (
            magic == MAGIC
            and version == PROTOCOL_VERSION
            and ftype == _STAMPED
            and flags == 0
            and len(buf) == HEADER_SIZE + count * RECORD_SIZE
            and _xxh3(buf[16:]) == checksum
        ):
            return epoch, first, np.frombuffer(buf, dtype=RECORD_DTYPE, count=count, offset=HEADER_SIZE)
    header, records = decode_frame(buf)
    if header.frame_type != _STAMPED:
        raise FrameError(ResultCode.BAD_FRAME_TYPE, f"frame type {header.frame_type} (ingest) where stamped frames are expected")
    return header.epoch, header.first_seq, records

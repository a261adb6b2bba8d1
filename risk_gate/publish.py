"""The decision publishing fast path: one preallocated ingest frame, filled in place.

A ``new_order``/``refused`` decision is one record. Instead of building a numpy array and
encoding it through :func:`sequencer.protocol.encode_frame` (several array allocations, a
copy and a ``bytes`` of the frame), :class:`DecisionFrame` keeps one 160-byte frame (header
+ record) in a ``bytearray``: the constant header fields are written once, each decision
packs its record fields with one precompiled :class:`struct.Struct` and stores the xxh3
checksum. The bytes are identical to ``encode_frame(record, frame_type=INGEST)`` (tested).

The frame is handed to :meth:`sequencer.producer.Producer.submit_encoded`, which sends it
with ``zmq.NOBLOCK`` and tracks it for replies and resends exactly like ``submit``.
"""

from __future__ import annotations

import struct

import numpy as np
import xxhash

from sequencer.protocol import HEADER_DTYPE, HEADER_SIZE, MAGIC, PROTOCOL_VERSION, RECORD_DTYPE, RECORD_SIZE, FrameType

__all__ = ["DecisionFrame"]

# Field order and widths of RECORD_DTYPE (little endian, no padding between fields).
_RECORD = struct.Struct("<8q3I2H2BHI40s")
_CHECKSUM = struct.Struct("<Q")
if _RECORD.size != RECORD_SIZE or list(RECORD_DTYPE.names[:8]) != [
    "seq", "ts_ns", "order_id", "qty", "price", "producer_seq", "aux1", "aux2",
]:
    raise ImportError("risk_gate.publish: RECORD_DTYPE changed; update _RECORD")


class DecisionFrame:
    """One reusable one-record ingest frame for ``producer_id``."""

    __slots__ = ("buf", "_view", "_pack", "producer_id")

    def __init__(self, producer_id: int) -> None:
        self.producer_id = producer_id
        self.buf = bytearray(HEADER_SIZE + RECORD_SIZE)
        hdr = np.frombuffer(self.buf, dtype=HEADER_DTYPE, count=1)
        hdr["magic"] = MAGIC
        hdr["version"] = PROTOCOL_VERSION
        hdr["type"] = int(FrameType.INGEST)
        hdr["count"] = 1
        del hdr  # a live numpy view would pin the bytearray's size
        self._view = memoryview(self.buf)[16:]
        self._pack = _RECORD.pack_into

    def encode(
        self, kind: int, producer_seq: int, order_id: int, qty: int, price: int, aux1: int, aux2: int,
        instrument: int, account: int, venue: int, side: int, code: int, text: bytes,
    ) -> bytes:
        """The frame bytes of one record with these fields (seq, ts_ns, epoch, flags 0)."""
        buf = self.buf
        self._pack(
            buf, HEADER_SIZE, 0, 0, order_id, qty, price, producer_seq, aux1, aux2,
            0, instrument, self.producer_id, account, venue, kind, side, code, 0, text,
        )
        _CHECKSUM.pack_into(buf, 8, xxhash.xxh3_64_intdigest(self._view))
        return bytes(buf)

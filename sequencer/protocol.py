"""The stream protocol: one fixed-size little-endian record per event, framed in batches.

``RECORD_DTYPE`` is the single source of truth for the record layout; ``docs/protocol.md``
documents every byte of it. A *frame* is a 32-byte header followed by ``count`` records:

======  ====  =========  ===============================================================
offset  size  field      meaning
======  ====  =========  ===============================================================
0       4     magic      ``b"SQRK"``
4       2     version    ``PROTOCOL_VERSION``
6       1     type       ``FrameType``: 1 ingest (unstamped), 2 stamped (publish/journal)
7       1     flags      0
8       8     checksum   xxh3-64 of bytes ``16 .. end`` of the frame
16      4     epoch      sequencer epoch (0 in ingest frames)
20      4     count      number of records
24      8     first_seq  seq of the first record (0 in ingest frames)
======  ====  =========  ===============================================================

Frames are decoded as zero-copy numpy views; nothing here creates a Python object per event.
"""

from __future__ import annotations

import enum
import struct
from typing import NamedTuple

import numpy as np
import xxhash

from sequencer.codes import ResultCode

__all__ = [
    "PROTOCOL_VERSION",
    "MAGIC",
    "HEADER_SIZE",
    "RECORD_SIZE",
    "TEXT_SIZE",
    "MAX_FRAME_RECORDS",
    "RECORD_DTYPE",
    "HEADER_DTYPE",
    "HEARTBEAT_DTYPE",
    "HEARTBEAT_MAGIC",
    "Kind",
    "Side",
    "FrameType",
    "FrameHeader",
    "FrameError",
    "KIND_NAMES",
    "KIND_BY_NAME",
    "empty_records",
    "encode_frame",
    "decode_frame",
    "decode_header",
    "frame_checksum",
    "encode_heartbeat",
    "decode_heartbeat",
]

PROTOCOL_VERSION = 1
MAGIC = b"SQRK"
HEADER_SIZE = 32
RECORD_SIZE = 128
TEXT_SIZE = 40
MAX_FRAME_RECORDS = 1 << 20
HEARTBEAT_MAGIC = b"SQHB"


class Kind(enum.IntEnum):
    """Event kinds (``kind`` field). Heartbeats are not events and are never journaled."""

    NEW_ORDER = 1
    REFUSED = 2
    ACK = 3
    REJECT = 4
    FILL = 5
    CANCEL = 6
    POSITION_RESET = 7
    PRICE = 8
    LIMIT = 9
    HALT = 10
    RESUME = 11
    REDUCE_ONLY = 12


class Side(enum.IntEnum):
    """Order side (``side`` field); ``NONE`` for kinds that have no side."""

    NONE = 0
    BUY = 1
    SELL = 2


class FrameType(enum.IntEnum):
    """``type`` byte of a frame header."""

    INGEST = 1
    STAMPED = 2


KIND_NAMES: dict[int, str] = {
    Kind.NEW_ORDER: "new_order",
    Kind.REFUSED: "refused",
    Kind.ACK: "ack",
    Kind.REJECT: "reject",
    Kind.FILL: "fill",
    Kind.CANCEL: "cancel",
    Kind.POSITION_RESET: "position_reset",
    Kind.PRICE: "price",
    Kind.LIMIT: "limit",
    Kind.HALT: "halt",
    Kind.RESUME: "resume",
    Kind.REDUCE_ONLY: "reduce_only",
}
KIND_BY_NAME: dict[str, Kind] = {name: Kind(k) for k, name in KIND_NAMES.items()}

# Field meaning by kind is in docs/protocol.md; aux1/aux2 are kind-specific:
#   fill: aux1 = venue trade id; new_order/refused: aux1 = gate applied seq, aux2 = gate HWM;
#   limit: aux1 = value * 10**6.
RECORD_DTYPE = np.dtype(
    {
        "names": [
            "seq", "ts_ns", "order_id", "qty", "price", "producer_seq", "aux1", "aux2",
            "epoch", "instrument", "producer", "account", "venue", "kind", "side", "code",
            "flags", "text",
        ],
        "formats": [
            "<i8", "<i8", "<i8", "<i8", "<i8", "<i8", "<i8", "<i8",
            "<u4", "<u4", "<u4", "<u2", "<u2", "u1", "u1", "<u2",
            "<u4", f"S{TEXT_SIZE}",
        ],
        "offsets": [0, 8, 16, 24, 32, 40, 48, 56, 64, 68, 72, 76, 78, 80, 81, 82, 84, 88],
        "itemsize": RECORD_SIZE,
    }
)

HEADER_DTYPE = np.dtype(
    {
        "names": ["magic", "version", "type", "flags", "checksum", "epoch", "count", "first_seq"],
        "formats": ["S4", "<u2", "u1", "u1", "<u8", "<u4", "<u4", "<i8"],
        "offsets": [0, 4, 6, 7, 8, 16, 20, 24],
        "itemsize": HEADER_SIZE,
    }
)

HEARTBEAT_DTYPE = np.dtype(
    {
        "names": ["magic", "version", "pad", "epoch", "hwm", "ts_ns"],
        "formats": ["S4", "<u2", "<u2", "<u4", "<i8", "<i8"],
        "offsets": [0, 4, 6, 8, 16, 24],
        "itemsize": 32,
    }
)


# HEADER_DTYPE as a struct: one unpack per frame instead of a numpy scalar per field.
_HEADER_STRUCT = struct.Struct("<4sHBBQIIq")
assert _HEADER_STRUCT.size == HEADER_SIZE == HEADER_DTYPE.itemsize
_INGEST, _STAMPED = int(FrameType.INGEST), int(FrameType.STAMPED)
_CHECKSUM_STRUCT = struct.Struct("<Q")


class FrameHeader(NamedTuple):
    """Decoded frame header."""

    frame_type: int
    epoch: int
    count: int
    first_seq: int
    checksum: int


class FrameError(ValueError):
    """A frame that is not a valid frame; ``code`` is the :class:`ResultCode` that says why."""

    def __init__(self, code: ResultCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


def empty_records(n: int) -> np.ndarray:
    """A zeroed record array of length ``n``."""
    return np.zeros(n, dtype=RECORD_DTYPE)


def frame_checksum(buf: bytes | bytearray | memoryview) -> int:
    """xxh3-64 of everything after the checksum field (bytes 16 .. end of the frame)."""
    return xxhash.xxh3_64_intdigest(memoryview(buf)[16:])


def encode_frame(
    records: np.ndarray,
    *,
    frame_type: FrameType = FrameType.STAMPED,
    epoch: int = 0,
    first_seq: int | None = None,
) -> bytes:
    """Serialize ``records`` into one frame (header + records) with its checksum.

    ``first_seq`` defaults to the seq of the first record (0 for an empty array).
    """
    if records.dtype != RECORD_DTYPE:
        raise TypeError(f"records must have RECORD_DTYPE, got {records.dtype}")
    n = len(records)
    if n > MAX_FRAME_RECORDS:
        raise ValueError(f"frame holds at most {MAX_FRAME_RECORDS} records, got {n}")
    if first_seq is None:
        first_seq = int(records["seq"][0]) if n else 0
    buf = bytearray(HEADER_SIZE + n * RECORD_SIZE)
    buf[HEADER_SIZE:] = np.ascontiguousarray(records).tobytes()
    _HEADER_STRUCT.pack_into(buf, 0, MAGIC, PROTOCOL_VERSION, int(frame_type), 0, 0, epoch, n, first_seq)
    _CHECKSUM_STRUCT.pack_into(buf, 8, frame_checksum(buf))
    return bytes(buf)


def decode_header(buf: bytes | bytearray | memoryview, *, expect_total: bool = True) -> FrameHeader:
    """Validate and decode a frame header.

    With ``expect_total`` the buffer must be exactly one frame; otherwise it may be longer
    (a journal segment) and only the header is checked. Raises :class:`FrameError`.
    """
    size = len(buf)
    if size == 0:
        raise FrameError(ResultCode.EMPTY_FRAME, "frame is empty")
    if size < HEADER_SIZE:
        raise FrameError(ResultCode.BAD_SIZE, f"frame is {size} bytes, shorter than the {HEADER_SIZE}-byte header")
    magic, version, ftype, flags, checksum, epoch, count, first_seq = _HEADER_STRUCT.unpack_from(buf)
    if magic != MAGIC:
        # As the S4 field of HEADER_DTYPE shows it: without trailing NULs.
        raise FrameError(ResultCode.BAD_MAGIC, f"magic is {magic.rstrip(bytes(1))!r}, expected {MAGIC!r}")
    if version != PROTOCOL_VERSION:
        raise FrameError(ResultCode.BAD_VERSION, f"protocol version {version}, this build speaks {PROTOCOL_VERSION}")
    if ftype != _STAMPED and ftype != _INGEST:
        raise FrameError(ResultCode.BAD_FRAME_TYPE, f"frame type {ftype} is not 1 (ingest) or 2 (stamped)")
    if flags != 0:
        raise FrameError(ResultCode.BAD_FLAGS, f"header flags {flags} must be 0")
    if count > MAX_FRAME_RECORDS:
        raise FrameError(ResultCode.BAD_COUNT, f"record count {count} exceeds {MAX_FRAME_RECORDS}")
    want = HEADER_SIZE + count * RECORD_SIZE
    if (expect_total and size != want) or size < want:
        raise FrameError(ResultCode.BAD_SIZE, f"frame is {size} bytes, header says {count} records = {want} bytes")
    return FrameHeader(ftype, epoch, count, first_seq, checksum)


def decode_frame(buf: bytes | bytearray | memoryview) -> tuple[FrameHeader, np.ndarray]:
    """Validate a whole frame (header, size, checksum) and return its records as a read-only view."""
    header = decode_header(buf)
    got = frame_checksum(buf)
    if got != header.checksum:
        raise FrameError(ResultCode.BAD_CHECKSUM, f"checksum {got:#018x} != header {header.checksum:#018x}")
    records = np.frombuffer(buf, dtype=RECORD_DTYPE, count=header.count, offset=HEADER_SIZE)
    return header, records


def encode_heartbeat(epoch: int, hwm: int, ts_ns: int) -> bytes:
    """A 32-byte HWM heartbeat: the sequencer's epoch, highest published seq and its clock."""
    hb = np.zeros(1, dtype=HEARTBEAT_DTYPE)
    hb["magic"] = HEARTBEAT_MAGIC
    hb["version"] = PROTOCOL_VERSION
    hb["epoch"] = epoch
    hb["hwm"] = hwm
    hb["ts_ns"] = ts_ns
    return hb.tobytes()


def decode_heartbeat(buf: bytes | memoryview) -> tuple[int, int, int]:
    """Decode a heartbeat into ``(epoch, hwm, ts_ns)``; raises :class:`FrameError` if malformed."""
    if len(buf) != HEARTBEAT_DTYPE.itemsize:
        raise FrameError(ResultCode.BAD_SIZE, f"heartbeat is {len(buf)} bytes, expected {HEARTBEAT_DTYPE.itemsize}")
    hb = np.frombuffer(buf, dtype=HEARTBEAT_DTYPE, count=1)[0]
    if bytes(hb["magic"]) != HEARTBEAT_MAGIC:
        raise FrameError(ResultCode.BAD_MAGIC, f"heartbeat magic is {bytes(hb['magic'])!r}")
    if int(hb["version"]) != PROTOCOL_VERSION:
        raise FrameError(ResultCode.BAD_VERSION, f"heartbeat version {int(hb['version'])}")
    return int(hb["epoch"]), int(hb["hwm"]), int(hb["ts_ns"])

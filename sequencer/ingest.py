"""Ingest checks: frame headers of a drain and the per-kind validation of every record.

The per-kind rules (``docs/sequencer.md``) run in one numba kernel over a whole drain of
frames; :func:`sequencer.ingest_reference.validate_frames_py` is the plain-Python reference
the tests compare it with.
The kernel reports, per frame, the first bad record, a :class:`ResultCode` and the index of
the offending field in :data:`FIELD_NAMES`, so the reply can name the field and its value.
"""

from __future__ import annotations

import struct

import numpy as np
import xxhash
from numba import njit

from sequencer.codes import LimitType, RefuseReason, ResultCode
from sequencer.protocol import (
    HEADER_SIZE,
    MAGIC,
    MAX_FRAME_RECORDS,
    PROTOCOL_VERSION,
    RECORD_DTYPE,
    RECORD_SIZE,
    TEXT_SIZE,
    FrameError,
    FrameType,
    Kind,
)
from sequencer.registry import Registry

__all__ = [
    "FIELD_NAMES",
    "check_ingest_frame",
    "ingest_count",
    "validate_frames",
    "validate_drain",
    "validate_records",
    "Masks",
    "describe_error",
]

# Index of the field a validation error is about (kernel output -> name in the reply).
FIELD_NAMES = (
    "kind", "flags", "producer", "producer_seq", "account", "instrument", "venue", "side",
    "qty", "price", "order_id", "aux1", "code", "text", "scope",
)
F_KIND, F_FLAGS, F_PRODUCER, F_PSEQ, F_ACCOUNT, F_INSTRUMENT, F_VENUE, F_SIDE = range(8)
F_QTY, F_PRICE, F_ORDER_ID, F_AUX1, F_CODE, F_TEXT, F_SCOPE = range(8, 15)

_OK = int(ResultCode.OK)
_UNKNOWN_KIND = int(ResultCode.UNKNOWN_KIND)
_UNKNOWN_ACCOUNT = int(ResultCode.UNKNOWN_ACCOUNT)
_UNKNOWN_INSTRUMENT = int(ResultCode.UNKNOWN_INSTRUMENT)
_UNKNOWN_VENUE = int(ResultCode.UNKNOWN_VENUE)
_BAD_QTY = int(ResultCode.BAD_QTY)
_BAD_PRICE = int(ResultCode.BAD_PRICE)
_BAD_SIDE = int(ResultCode.BAD_SIDE)
_BAD_ORDER_ID = int(ResultCode.BAD_ORDER_ID)
_BAD_PRODUCER = int(ResultCode.BAD_PRODUCER)
_NOT_INCREASING = int(ResultCode.PRODUCER_SEQ_NOT_INCREASING)
_BAD_SCOPE = int(ResultCode.BAD_SCOPE)
_BAD_TRADE_ID = int(ResultCode.BAD_TRADE_ID)
_BAD_TEXT = int(ResultCode.BAD_TEXT)
_BAD_LIMIT = int(ResultCode.BAD_LIMIT)
_BAD_REASON_CODE = int(ResultCode.BAD_REASON_CODE)
_BAD_RECORD_FLAGS = int(ResultCode.BAD_RECORD_FLAGS)

_MIN_KIND, _MAX_KIND = int(min(Kind)), int(max(Kind))
_MIN_REFUSE, _MAX_REFUSE = int(min(RefuseReason)), int(max(RefuseReason))
_MIN_LIMIT, _MAX_LIMIT = int(min(LimitType)), int(max(LimitType))
_K_NEW, _K_REFUSED, _K_ACK, _K_REJECT, _K_FILL, _K_CANCEL = 1, 2, 3, 4, 5, 6
_K_RESET, _K_PRICE, _K_LIMIT, _K_HALT, _K_RESUME, _K_REDUCE = 7, 8, 9, 10, 11, 12
_TEXT_OFFSET = RECORD_DTYPE.fields["text"][1]

_HEADER = struct.Struct("<4sHBBQIIq")
_INGEST = int(FrameType.INGEST)
# Fast path of check_ingest_frame: magic, version, type and flags as one 8-byte prefix.
_PREFIX_CHECKSUM_COUNT = struct.Struct("<8sQ4xI")
_INGEST_PREFIX = struct.pack("<4sHBB", MAGIC, PROTOCOL_VERSION, _INGEST, 0)
_MIN_FRAME = HEADER_SIZE + RECORD_SIZE
_xxh3 = xxhash.xxh3_64_intdigest


class Masks:
    """The registry's ``valid[id]`` arrays (accounts, instruments, venues) for the kernel."""

    __slots__ = ("account", "instrument", "venue")

    def __init__(self, registry: Registry) -> None:
        self.account, self.instrument, self.venue = registry.valid_masks()


def check_ingest_frame(buf: bytes) -> int:
    """Validate an ingest frame's header, size and checksum; returns its record count.

    Same rules and codes as :func:`sequencer.protocol.decode_frame` (plus: the type must be
    INGEST), written with ``struct`` because it runs once per ingest frame.
    Raises :class:`FrameError`.
    """
    size = len(buf)
    if size == 0:
        raise FrameError(ResultCode.EMPTY_FRAME, "frame is empty")
    if size < HEADER_SIZE:
        raise FrameError(ResultCode.BAD_SIZE, f"frame is {size} bytes, shorter than the {HEADER_SIZE}-byte header")
    magic, version, ftype, flags, checksum, _epoch, count, _first = _HEADER.unpack_from(buf)
    if magic != MAGIC:
        raise FrameError(ResultCode.BAD_MAGIC, f"magic is {magic!r}, expected {MAGIC!r}")
    if version != PROTOCOL_VERSION:
        raise FrameError(ResultCode.BAD_VERSION, f"protocol version {version}, this build speaks {PROTOCOL_VERSION}")
    if ftype != _INGEST:
        raise FrameError(ResultCode.BAD_FRAME_TYPE, f"frame type {ftype} on the ingest socket, expected 1 (ingest)")
    if flags != 0:
        raise FrameError(ResultCode.BAD_FLAGS, f"header flags {flags} must be 0")
    if count > MAX_FRAME_RECORDS:
        raise FrameError(ResultCode.BAD_COUNT, f"record count {count} exceeds {MAX_FRAME_RECORDS}")
    if count == 0:
        raise FrameError(ResultCode.BAD_COUNT, "an ingest frame must hold at least one record")
    want = HEADER_SIZE + count * RECORD_SIZE
    if size != want:
        raise FrameError(ResultCode.BAD_SIZE, f"frame is {size} bytes, header says {count} records = {want} bytes")
    got = xxhash.xxh3_64_intdigest(memoryview(buf)[16:])
    if got != checksum:
        raise FrameError(ResultCode.BAD_CHECKSUM, f"checksum {got:#018x} != header {checksum:#018x}")
    return count


def ingest_count(buf: bytes | memoryview) -> int:
    """The record count of an ingest frame that :func:`check_ingest_frame` accepts, else 0.

    The per-frame fast path of the sequencer (one unpack, one comparison of the 8-byte
    prefix); a 0 is followed by :func:`check_ingest_frame` for the error and its message.
    """
    size = len(buf)
    if size < _MIN_FRAME:
        return 0
    prefix, checksum, count = _PREFIX_CHECKSUM_COUNT.unpack_from(buf)
    if (prefix != _INGEST_PREFIX or count > MAX_FRAME_RECORDS or size != HEADER_SIZE + count * RECORD_SIZE
            or _xxh3(buf[16:]) != checksum):
        return 0
    return count


@njit(cache=True)
def _known(mask, ident):
    return ident < mask.shape[0] and mask[ident]


# Field positions in the typed 2-D views of a record array (see _views): the kernel reads
# contiguous rows instead of 14 strided column arrays (which cost 20 us per call to unbox).
_Q_ORDER_ID, _Q_QTY, _Q_PRICE, _Q_PSEQ, _Q_AUX1 = 2, 3, 4, 5, 6
_D_INSTRUMENT, _D_PRODUCER, _D_FLAGS = 17, 18, 21
_W_ACCOUNT, _W_VENUE, _W_CODE = 38, 39, 41
_B_KIND, _B_SIDE = 80, 81
assert _TEXT_OFFSET == 88 and TEXT_SIZE == 40  # text = int64 words 11..15 of a record
for _name, _pos in (("order_id", 8 * _Q_ORDER_ID), ("qty", 8 * _Q_QTY), ("price", 8 * _Q_PRICE),
                    ("producer_seq", 8 * _Q_PSEQ), ("aux1", 8 * _Q_AUX1), ("instrument", 4 * _D_INSTRUMENT),
                    ("producer", 4 * _D_PRODUCER), ("flags", 4 * _D_FLAGS), ("account", 2 * _W_ACCOUNT),
                    ("venue", 2 * _W_VENUE), ("code", 2 * _W_CODE), ("kind", _B_KIND), ("side", _B_SIDE)):
    assert RECORD_DTYPE.fields[_name][1] == _pos, _name


@njit(cache=True)
def _check_text(b, i):
    # NUL padded UTF-8: after the first NUL only NULs; the prefix is well-formed UTF-8.
    lo = _TEXT_OFFSET
    hi = _TEXT_OFFSET + TEXT_SIZE
    end = hi
    for j in range(lo, hi):
        if b[i, j] == 0:
            end = j
            break
    for j in range(end, hi):
        if b[i, j] != 0:
            return False
    j = lo
    while j < end:
        c = b[i, j]
        if c < 0x80:
            j += 1
            continue
        if 0xC2 <= c <= 0xDF:
            need = 1
        elif 0xE0 <= c <= 0xEF:
            need = 2
        elif 0xF0 <= c <= 0xF4:
            need = 3
        else:
            return False
        if j + need >= end:
            return False
        for k in range(1, need + 1):
            if b[i, j + k] & 0xC0 != 0x80:
                return False
        c1 = b[i, j + 1]
        if need == 2 and ((c == 0xE0 and c1 < 0xA0) or (c == 0xED and c1 > 0x9F)):
            return False
        if need == 3 and ((c == 0xF0 and c1 < 0x90) or (c == 0xF4 and c1 > 0x8F)):
            return False
        j += need + 1
    return True


@njit(cache=True)
def _validate_kernel(starts, q, d, w, b, acc_mask, ins_mask, ven_mask, out):
    nacc = acc_mask.shape[0]
    nins = ins_mask.shape[0]
    nven = ven_mask.shape[0]
    nframes = starts.shape[0] - 1
    keys = out.shape[1] >= 6
    for f in range(nframes):
        out[f, 0] = -1
        out[f, 1] = 0
        out[f, 2] = -1
        lo = starts[f]
        producer0 = d[lo, _D_PRODUCER]
        if keys:
            # The frame's idempotency keys, so the caller needs no numpy indexing per drain.
            out[f, 3] = producer0
            out[f, 4] = q[lo, _Q_PSEQ]
            out[f, 5] = q[starts[f + 1] - 1, _Q_PSEQ]
        prev = 0
        for i in range(starts[f], starts[f + 1]):
            k = np.int64(b[i, _B_KIND])
            a = np.int64(w[i, _W_ACCOUNT])
            ins = np.int64(d[i, _D_INSTRUMENT])
            v = np.int64(w[i, _W_VENUE])
            s = np.int64(b[i, _B_SIDE])
            qty = q[i, _Q_QTY]
            price = q[i, _Q_PRICE]
            oid = q[i, _Q_ORDER_ID]
            aux1 = q[i, _Q_AUX1]
            code = np.int64(w[i, _W_CODE])
            pseq = q[i, _Q_PSEQ]
            text = q[i, 11] | q[i, 12] | q[i, 13] | q[i, 14] | q[i, 15]
            c = 0
            fld = -1
            order_like = k == _K_NEW or k == _K_REFUSED or k == _K_FILL
            if k < _MIN_KIND or k > _MAX_KIND:
                c, fld = _UNKNOWN_KIND, F_KIND
            elif d[i, _D_FLAGS] != 0:
                c, fld = _BAD_RECORD_FLAGS, F_FLAGS
            elif d[i, _D_PRODUCER] == 0:
                c, fld = _BAD_PRODUCER, F_PRODUCER
            elif a != 0 and not (a < nacc and acc_mask[a]):
                c, fld = _UNKNOWN_ACCOUNT, F_ACCOUNT
            elif ins != 0 and not (ins < nins and ins_mask[ins]):
                c, fld = _UNKNOWN_INSTRUMENT, F_INSTRUMENT
            elif v != 0 and not (v < nven and ven_mask[v]):
                c, fld = _UNKNOWN_VENUE, F_VENUE
            elif s > 2:
                c, fld = _BAD_SIDE, F_SIDE
            elif text != 0 and not _check_text(b, i):
                c, fld = _BAD_TEXT, F_TEXT
            elif order_like:
                if a == 0:
                    c, fld = _UNKNOWN_ACCOUNT, F_ACCOUNT
                elif ins == 0:
                    c, fld = _UNKNOWN_INSTRUMENT, F_INSTRUMENT
                elif v == 0:
                    c, fld = _UNKNOWN_VENUE, F_VENUE
                elif s == 0:
                    c, fld = _BAD_SIDE, F_SIDE
                elif qty <= 0:
                    c, fld = _BAD_QTY, F_QTY
                elif oid <= 0:
                    c, fld = _BAD_ORDER_ID, F_ORDER_ID
                elif k == _K_FILL and price <= 0:
                    c, fld = _BAD_PRICE, F_PRICE
                elif k == _K_FILL and aux1 <= 0:
                    c, fld = _BAD_TRADE_ID, F_AUX1
                elif k != _K_FILL and price < 0:
                    c, fld = _BAD_PRICE, F_PRICE
                elif k == _K_REFUSED and (code < _MIN_REFUSE or code > _MAX_REFUSE):
                    c, fld = _BAD_REASON_CODE, F_CODE
            elif k == _K_ACK or k == _K_REJECT or k == _K_CANCEL:
                if oid <= 0:
                    c, fld = _BAD_ORDER_ID, F_ORDER_ID
                elif qty < 0:
                    c, fld = _BAD_QTY, F_QTY
                elif price < 0:
                    c, fld = _BAD_PRICE, F_PRICE
            elif k == _K_RESET:
                if a == 0:
                    c, fld = _UNKNOWN_ACCOUNT, F_ACCOUNT
                elif ins == 0:
                    c, fld = _UNKNOWN_INSTRUMENT, F_INSTRUMENT
                elif price < 0:
                    c, fld = _BAD_PRICE, F_PRICE
            elif k == _K_PRICE:
                if ins == 0:
                    c, fld = _UNKNOWN_INSTRUMENT, F_INSTRUMENT
                elif price <= 0:
                    c, fld = _BAD_PRICE, F_PRICE
                elif s != 0:
                    c, fld = _BAD_SIDE, F_SIDE
            elif k == _K_LIMIT:
                if code < _MIN_LIMIT or code > _MAX_LIMIT:
                    c, fld = _BAD_LIMIT, F_CODE
                elif aux1 < 0:
                    c, fld = _BAD_LIMIT, F_AUX1
                elif s != 0:
                    c, fld = _BAD_SIDE, F_SIDE
            elif a != 0 and ins != 0:
                c, fld = _BAD_SCOPE, F_SCOPE
            elif s != 0:
                c, fld = _BAD_SIDE, F_SIDE
            if c == 0:
                if d[i, _D_PRODUCER] != producer0:
                    c, fld = _BAD_PRODUCER, F_PRODUCER
                elif pseq <= 0 or (i > lo and pseq <= prev):
                    c, fld = _NOT_INCREASING, F_PSEQ
            if c != 0:
                out[f, 0] = i - lo
                out[f, 1] = c
                out[f, 2] = fld
                break
            prev = pseq


def _views(records: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The records' bytes as (n, 16) int64, (n, 32) uint32, (n, 64) uint16, (n, 128) uint8."""
    raw = np.ascontiguousarray(records).view(np.uint8).reshape(len(records), RECORD_SIZE)
    return raw.view("<i8"), raw.view("<u4"), raw.view("<u2"), raw


def validate_frames(records: np.ndarray, starts: np.ndarray, masks: Masks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate the frames ``records[starts[f]:starts[f+1]]`` of one drain (numba).

    Returns per frame ``(bad_index, code, field)``: the index of the first bad record in its
    frame (-1 if the frame is valid), its :class:`ResultCode` and its :data:`FIELD_NAMES` index.
    """
    out = np.empty((len(starts) - 1, 3), np.int64)
    _validate_kernel(np.asarray(starts, np.int64), *_views(records), masks.account, masks.instrument,
                     masks.venue, out)
    return out[:, 0], out[:, 1], out[:, 2]


@njit(cache=True)
def _validate_drain_kernel(flat, nrec, starts, acc_mask, ins_mask, ven_mask, out):
    # The typed row views are made here: building them in Python costs more than the kernel.
    raw = flat[HEADER_SIZE:HEADER_SIZE + nrec * RECORD_SIZE].reshape((nrec, RECORD_SIZE))
    _validate_kernel(starts, raw.view(np.int64), raw.view(np.uint32), raw.view(np.uint16), raw,
                     acc_mask, ins_mask, ven_mask, out)


def validate_drain(buf: bytearray, starts: np.ndarray, nrec: int, masks: Masks) -> np.ndarray:
    """Validate the ``nrec`` records that follow a ``HEADER_SIZE`` prefix in ``buf`` (numba).

    The sequencer's form of :func:`validate_frames` over the raw bytes of one drain (frames
    ``starts[f]..starts[f+1]``), with no record array built. Returns an ``(nframes, 6)`` int64
    array: bad_index, code, field (as :func:`validate_frames`), then the frame's producer and
    its first and last producer seq.
    """
    if len(buf) < HEADER_SIZE + nrec * RECORD_SIZE:
        raise ValueError(f"buffer of {len(buf)} bytes is too short for {nrec} records")
    out = np.empty((len(starts) - 1, 6), np.int64)
    _validate_drain_kernel(np.frombuffer(buf, np.uint8), nrec, starts, masks.account, masks.instrument,
                           masks.venue, out)
    return out


def validate_records(records: np.ndarray, masks: Masks) -> tuple[int, int, int]:
    """Validate one frame's records: ``(bad_index, code, field)``, bad_index -1 when valid."""
    bi, bc, bf = validate_frames(records, np.array([0, len(records)], np.int64), masks)
    return int(bi[0]), int(bc[0]), int(bf[0])


def describe_error(records: np.ndarray, index: int, code: int, field: int) -> str:
    """Human message for a validation error: the record, the field, its value and the rule."""
    name = FIELD_NAMES[field] if 0 <= field < len(FIELD_NAMES) else "record"
    r = records[index]
    kind = int(r["kind"])
    try:
        kind_name = Kind(kind).name.lower()
    except ValueError:
        kind_name = f"unknown({kind})"
    if name == "scope":
        value = f"account={int(r['account'])} instrument={int(r['instrument'])}"
    elif name == "text":
        value = repr(bytes(r["text"]))
    else:
        value = str(r[name].item() if hasattr(r[name], "item") else r[name])
    return f"record {index} ({kind_name}): {ResultCode(code).name}: field {name}={value} {_RULES.get(code, '')}".rstrip()


_RULES = {
    _UNKNOWN_KIND: "(kind must be 1..12)",
    _BAD_RECORD_FLAGS: "(record flags must be 0)",
    _BAD_PRODUCER: "(producer must be non-zero and the same for every record of a frame)",
    _NOT_INCREASING: "(producer_seq must be > 0 and strictly increase within a producer)",
    _UNKNOWN_ACCOUNT: "(account must be registered; required for this kind)",
    _UNKNOWN_INSTRUMENT: "(instrument must be registered; required for this kind)",
    _UNKNOWN_VENUE: "(venue must be registered; required for this kind)",
    _BAD_SIDE: "(side must be 1 buy or 2 sell where required, 0 where the kind has none)",
    _BAD_QTY: "(qty must be > 0 for orders and fills, >= 0 otherwise)",
    _BAD_PRICE: "(price must be > 0 for fills and prices, >= 0 otherwise)",
    _BAD_ORDER_ID: "(order_id must be > 0)",
    _BAD_TRADE_ID: "(fill trade id, aux1, must be > 0)",
    _BAD_REASON_CODE: "(refused code must be a RefuseReason)",
    _BAD_LIMIT: "(limit code must be a LimitType and aux1 >= 0)",
    _BAD_SCOPE: "(halt/resume/reduce_only scope: account or instrument, not both)",
    _BAD_TEXT: "(text must be NUL-padded UTF-8)",
}

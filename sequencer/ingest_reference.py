"""Plain-Python reference of the ingest validation kernel (:func:`sequencer.ingest.validate_frames`).

Same rules, same outputs, one record at a time; the tests compare the two on random input.
"""

from __future__ import annotations

import numpy as np

from sequencer.ingest import (
    _BAD_LIMIT,
    _BAD_ORDER_ID,
    _BAD_PRICE,
    _BAD_PRODUCER,
    _BAD_QTY,
    _BAD_REASON_CODE,
    _BAD_RECORD_FLAGS,
    _BAD_SCOPE,
    _BAD_SIDE,
    _BAD_TEXT,
    _BAD_TRADE_ID,
    _K_ACK,
    _K_CANCEL,
    _K_FILL,
    _K_LIMIT,
    _K_NEW,
    _K_PRICE,
    _K_REFUSED,
    _K_REJECT,
    _K_RESET,
    _MAX_KIND,
    _MAX_LIMIT,
    _MAX_REFUSE,
    _MIN_KIND,
    _MIN_LIMIT,
    _MIN_REFUSE,
    _NOT_INCREASING,
    _OK,
    _TEXT_OFFSET,
    _UNKNOWN_ACCOUNT,
    _UNKNOWN_INSTRUMENT,
    _UNKNOWN_KIND,
    _UNKNOWN_VENUE,
    F_ACCOUNT,
    F_AUX1,
    F_CODE,
    F_FLAGS,
    F_INSTRUMENT,
    F_KIND,
    F_ORDER_ID,
    F_PRICE,
    F_PRODUCER,
    F_PSEQ,
    F_QTY,
    F_SCOPE,
    F_SIDE,
    F_TEXT,
    F_VENUE,
    Masks,
)
from sequencer.protocol import TEXT_SIZE

__all__ = ["validate_frames_py"]


def _text_ok_py(raw: bytes) -> bool:
    body, _, pad = raw.partition(b"\0")
    if pad.strip(b"\0"):
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _check_one_py(r: np.void, masks: Masks) -> tuple[int, int]:
    k, a, ins, v, s = int(r["kind"]), int(r["account"]), int(r["instrument"]), int(r["venue"]), int(r["side"])
    qty, price, oid, aux1, code = int(r["qty"]), int(r["price"]), int(r["order_id"]), int(r["aux1"]), int(r["code"])

    def known(mask: np.ndarray, ident: int) -> bool:
        return ident < len(mask) and bool(mask[ident])

    if not _MIN_KIND <= k <= _MAX_KIND:
        return _UNKNOWN_KIND, F_KIND
    if int(r["flags"]):
        return _BAD_RECORD_FLAGS, F_FLAGS
    if int(r["producer"]) == 0:
        return _BAD_PRODUCER, F_PRODUCER
    for ident, mask, c, f in ((a, masks.account, _UNKNOWN_ACCOUNT, F_ACCOUNT),
                              (ins, masks.instrument, _UNKNOWN_INSTRUMENT, F_INSTRUMENT),
                              (v, masks.venue, _UNKNOWN_VENUE, F_VENUE)):
        if ident and not known(mask, ident):
            return c, f
    if s > 2:
        return _BAD_SIDE, F_SIDE
    if not _text_ok_py(bytes(r.tobytes()[_TEXT_OFFSET:_TEXT_OFFSET + TEXT_SIZE])):
        return _BAD_TEXT, F_TEXT
    if k in (_K_NEW, _K_REFUSED, _K_FILL):
        required = ((a, _UNKNOWN_ACCOUNT, F_ACCOUNT), (ins, _UNKNOWN_INSTRUMENT, F_INSTRUMENT),
                    (v, _UNKNOWN_VENUE, F_VENUE), (s, _BAD_SIDE, F_SIDE))
        for value, c, f in required:
            if value == 0:
                return c, f
        if qty <= 0:
            return _BAD_QTY, F_QTY
        if oid <= 0:
            return _BAD_ORDER_ID, F_ORDER_ID
        if k == _K_FILL:
            if price <= 0:
                return _BAD_PRICE, F_PRICE
            if aux1 <= 0:
                return _BAD_TRADE_ID, F_AUX1
        else:
            if price < 0:
                return _BAD_PRICE, F_PRICE
            if k == _K_REFUSED and not _MIN_REFUSE <= code <= _MAX_REFUSE:
                return _BAD_REASON_CODE, F_CODE
    elif k in (_K_ACK, _K_REJECT, _K_CANCEL):
        if oid <= 0:
            return _BAD_ORDER_ID, F_ORDER_ID
        if qty < 0:
            return _BAD_QTY, F_QTY
        if price < 0:
            return _BAD_PRICE, F_PRICE
    elif k == _K_RESET:
        if a == 0:
            return _UNKNOWN_ACCOUNT, F_ACCOUNT
        if ins == 0:
            return _UNKNOWN_INSTRUMENT, F_INSTRUMENT
        if price < 0:
            return _BAD_PRICE, F_PRICE
    elif k == _K_PRICE:
        if ins == 0:
            return _UNKNOWN_INSTRUMENT, F_INSTRUMENT
        if price <= 0:
            return _BAD_PRICE, F_PRICE
        if s:
            return _BAD_SIDE, F_SIDE
    elif k == _K_LIMIT:
        if not _MIN_LIMIT <= code <= _MAX_LIMIT:
            return _BAD_LIMIT, F_CODE
        if aux1 < 0:
            return _BAD_LIMIT, F_AUX1
        if s:
            return _BAD_SIDE, F_SIDE
    else:
        if a and ins:
            return _BAD_SCOPE, F_SCOPE
        if s:
            return _BAD_SIDE, F_SIDE
    return _OK, -1


def validate_frames_py(records: np.ndarray, starts: np.ndarray, masks: Masks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plain-Python reference of :func:`validate_frames` (same rules, same outputs)."""
    nframes = len(starts) - 1
    bad_index = np.full(nframes, -1, np.int64)
    bad_code = np.zeros(nframes, np.int64)
    bad_field = np.full(nframes, -1, np.int64)
    for f in range(nframes):
        lo, hi = int(starts[f]), int(starts[f + 1])
        for i in range(lo, hi):
            r = records[i]
            c, fld = _check_one_py(r, masks)
            if c == 0:
                if int(r["producer"]) != int(records[lo]["producer"]):
                    c, fld = _BAD_PRODUCER, F_PRODUCER
                elif int(r["producer_seq"]) <= 0 or (i > lo and int(r["producer_seq"]) <= int(records[i - 1]["producer_seq"])):
                    c, fld = _NOT_INCREASING, F_PSEQ
            if c:
                bad_index[f], bad_code[f], bad_field[f] = i - lo, c, fld
                break
    return bad_index, bad_code, bad_field

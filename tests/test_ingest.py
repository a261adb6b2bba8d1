"""Ingest validation: the numba kernel equals the Python reference; per-kind rules; frame checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sequencer.codes import LimitType, RefuseReason, ResultCode
from sequencer.ingest import (
    FIELD_NAMES,
    Masks,
    check_ingest_frame,
    describe_error,
    ingest_count,
    validate_drain,
    validate_frames,
    validate_records,
)
from sequencer.ingest_reference import validate_frames_py
from sequencer.protocol import RECORD_DTYPE, FrameError, FrameType, Kind, Side, encode_frame
from sequencer.registry import default_registry

MASKS = Masks(default_registry())

_TEXTS = [b"", b"ok", "h\u00e9llo".encode(), b"\xff", b"a\x00b", b"\xc3", b"\xed\xa0\x80", b"\xf0\x9f\x98\x80"]


@st.composite
def records(draw, max_size=24):
    n = draw(st.integers(1, max_size))
    recs = np.zeros(n, RECORD_DTYPE)
    pseq = 0
    for i in range(n):
        r = recs[i]
        r["kind"] = draw(st.integers(0, 13))
        r["flags"] = draw(st.sampled_from([0, 0, 0, 0, 1]))
        r["producer"] = draw(st.sampled_from([7, 7, 7, 7, 0, 8]))
        pseq += draw(st.sampled_from([1, 1, 1, 2, 0, -1]))
        r["producer_seq"] = pseq
        r["account"] = draw(st.integers(0, 3))
        r["instrument"] = draw(st.integers(0, 4))
        r["venue"] = draw(st.integers(0, 3))
        r["side"] = draw(st.integers(0, 3))
        r["qty"] = draw(st.integers(-2, 2))
        r["price"] = draw(st.integers(-2, 2))
        r["order_id"] = draw(st.integers(-1, 2))
        r["aux1"] = draw(st.integers(-1, 2))
        r["code"] = draw(st.sampled_from([0, 1, 12, 13, 399, 400, 416, 417]))
        r["text"] = draw(st.sampled_from(_TEXTS))
    return recs


@st.composite
def frames(draw):
    recs = draw(records())
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(recs) - 1)), max_size=5))))
    starts = np.array([0, *[c for c in cuts if 0 < c < len(recs)], len(recs)], np.int64)
    return recs, starts


@settings(max_examples=200, deadline=None)
@given(frames())
def test_validate_drain_when_random_records_in_raw_bytes_then_reference_codes_and_frame_keys(case):
    from sequencer.protocol import HEADER_SIZE

    recs, starts = case
    buf = bytearray(HEADER_SIZE) + recs.tobytes()
    got = validate_drain(buf, starts, len(recs), MASKS)
    want = validate_frames_py(recs, starts, MASKS)
    assert got.shape == (len(starts) - 1, 6)
    for col, w in enumerate(want):
        np.testing.assert_array_equal(got[:, col], w)
    heads, tails = starts[:-1], starts[1:] - 1
    np.testing.assert_array_equal(got[:, 3], recs["producer"][heads])
    np.testing.assert_array_equal(got[:, 4], recs["producer_seq"][heads])
    np.testing.assert_array_equal(got[:, 5], recs["producer_seq"][tails])
    assert bytes(buf[HEADER_SIZE:]) == recs.tobytes()  # validation never writes


@settings(max_examples=300, deadline=None)
@given(frames())
def test_validate_when_random_records_then_kernel_equals_reference(case):
    recs, starts = case
    got = validate_frames(recs, starts, MASKS)
    want = validate_frames_py(recs, starts, MASKS)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def _rec(kind: Kind, **fields) -> np.ndarray:
    r = np.zeros(1, RECORD_DTYPE)
    r["kind"] = kind
    r["producer"] = 9
    r["producer_seq"] = 1
    for k, v in fields.items():
        r[k] = v
    return r


_ORDER = dict(account=1, instrument=1, venue=1, side=Side.BUY, qty=5, price=100, order_id=3)
_FILL = dict(_ORDER, aux1=77)

VALID = [
    _rec(Kind.NEW_ORDER, **_ORDER),
    _rec(Kind.NEW_ORDER, **dict(_ORDER, price=0)),
    _rec(Kind.REFUSED, **_ORDER, code=int(RefuseReason.STALE_HWM), text=b"lag 5"),
    _rec(Kind.ACK, order_id=3),
    _rec(Kind.CANCEL, order_id=3, account=2),
    _rec(Kind.REJECT, order_id=3, text=b"venue says no"),
    _rec(Kind.FILL, **_FILL),
    _rec(Kind.POSITION_RESET, account=1, instrument=2, qty=-5, price=0),
    _rec(Kind.PRICE, instrument=3, price=108_000),
    _rec(Kind.LIMIT, code=int(LimitType.MAX_POSITION), aux1=2_000_000),
    _rec(Kind.HALT),
    _rec(Kind.RESUME, account=2),
    _rec(Kind.REDUCE_ONLY, instrument=1),
]

INVALID = [
    (_rec(Kind.NEW_ORDER, **dict(_ORDER, qty=0)), ResultCode.BAD_QTY, "qty"),
    (_rec(Kind.NEW_ORDER, **dict(_ORDER, price=-1)), ResultCode.BAD_PRICE, "price"),
    (_rec(Kind.NEW_ORDER, **dict(_ORDER, side=0)), ResultCode.BAD_SIDE, "side"),
    (_rec(Kind.NEW_ORDER, **dict(_ORDER, account=9)), ResultCode.UNKNOWN_ACCOUNT, "account"),
    (_rec(Kind.NEW_ORDER, **dict(_ORDER, instrument=0)), ResultCode.UNKNOWN_INSTRUMENT, "instrument"),
    (_rec(Kind.NEW_ORDER, **dict(_ORDER, venue=3)), ResultCode.UNKNOWN_VENUE, "venue"),
    (_rec(Kind.NEW_ORDER, **dict(_ORDER, order_id=0)), ResultCode.BAD_ORDER_ID, "order_id"),
    (_rec(Kind.REFUSED, **_ORDER, code=5), ResultCode.BAD_REASON_CODE, "code"),
    (_rec(Kind.FILL, **dict(_FILL, aux1=0)), ResultCode.BAD_TRADE_ID, "aux1"),
    (_rec(Kind.FILL, **dict(_FILL, price=0)), ResultCode.BAD_PRICE, "price"),
    (_rec(Kind.ACK, order_id=0), ResultCode.BAD_ORDER_ID, "order_id"),
    (_rec(Kind.ACK, order_id=1, instrument=99), ResultCode.UNKNOWN_INSTRUMENT, "instrument"),
    (_rec(Kind.POSITION_RESET, account=1), ResultCode.UNKNOWN_INSTRUMENT, "instrument"),
    (_rec(Kind.PRICE, instrument=1, price=0), ResultCode.BAD_PRICE, "price"),
    (_rec(Kind.LIMIT, code=99), ResultCode.BAD_LIMIT, "code"),
    (_rec(Kind.LIMIT, code=1, aux1=-1), ResultCode.BAD_LIMIT, "aux1"),
    (_rec(Kind.HALT, account=1, instrument=1), ResultCode.BAD_SCOPE, "scope"),
    (_rec(Kind.HALT, side=1), ResultCode.BAD_SIDE, "side"),
    (_rec(Kind.ACK, order_id=1, text=b"\xff"), ResultCode.BAD_TEXT, "text"),
    (_rec(Kind.ACK, order_id=1, flags=1), ResultCode.BAD_RECORD_FLAGS, "flags"),
    (_rec(Kind.ACK, order_id=1, producer=0), ResultCode.BAD_PRODUCER, "producer"),
    (_rec(Kind.ACK, order_id=1, producer_seq=0), ResultCode.PRODUCER_SEQ_NOT_INCREASING, "producer_seq"),
    (_rec(0), ResultCode.UNKNOWN_KIND, "kind"),
    (_rec(13), ResultCode.UNKNOWN_KIND, "kind"),
]


@pytest.mark.parametrize("rec", VALID, ids=lambda r: Kind(int(r["kind"][0])).name)
def test_validate_when_record_follows_kind_rules_then_accepted(rec):
    assert validate_records(rec, MASKS) == (-1, 0, -1)


@pytest.mark.parametrize("rec,code,field", INVALID, ids=lambda x: getattr(x, "name", None) or "")
def test_validate_when_record_breaks_a_rule_then_code_and_field_named(rec, code, field):
    bad, got, fld = validate_records(rec, MASKS)
    assert (bad, got, FIELD_NAMES[fld]) == (0, int(code), field)
    msg = describe_error(rec, bad, got, fld)
    assert code.name in msg and f"field {field}" in msg


def test_validate_when_frame_mixes_producers_or_repeats_pseq_then_first_bad_record_named():
    recs = np.concatenate([VALID[3], VALID[4], VALID[5]])
    recs["producer_seq"] = [1, 2, 2]
    assert validate_records(recs, MASKS)[:2] == (2, int(ResultCode.PRODUCER_SEQ_NOT_INCREASING))
    recs["producer_seq"] = [1, 2, 3]
    recs["producer"][1] = 10
    assert validate_records(recs, MASKS)[:2] == (1, int(ResultCode.BAD_PRODUCER))


def _frame(n=2) -> bytes:
    recs = np.concatenate([VALID[3]] * n)
    recs["producer_seq"] = np.arange(1, n + 1)
    return encode_frame(recs, frame_type=FrameType.INGEST)


@pytest.mark.parametrize(
    "mutate,code",
    [
        (lambda b: b"", ResultCode.EMPTY_FRAME),
        (lambda b: b[:20], ResultCode.BAD_SIZE),
        (lambda b: b[:-1], ResultCode.BAD_SIZE),
        (lambda b: b"XXXX" + b[4:], ResultCode.BAD_MAGIC),
        (lambda b: b[:4] + b"\x09\x00" + b[6:], ResultCode.BAD_VERSION),
        (lambda b: b[:6] + b"\x02" + b[7:], ResultCode.BAD_FRAME_TYPE),
        (lambda b: b[:7] + b"\x01" + b[8:], ResultCode.BAD_FLAGS),
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]), ResultCode.BAD_CHECKSUM),
        (lambda b: b[:20] + b"\x00\x00\x00\x00" + b[24:32], ResultCode.BAD_COUNT),
    ],
)
def test_check_frame_when_garbage_then_frame_error_code(mutate, code):
    with pytest.raises(FrameError) as err:
        check_ingest_frame(mutate(_frame()))
    assert err.value.code == code
    assert ingest_count(mutate(_frame())) == 0


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 4), st.integers(0, 40), st.integers(0, 255), st.booleans())
def test_ingest_count_when_one_byte_changed_then_agrees_with_check_ingest_frame(n, pos, value, cut):
    frame = bytearray(_frame(n))
    if cut:
        frame = frame[:pos]
    elif pos < len(frame):
        frame[pos] = value
    try:
        want = check_ingest_frame(bytes(frame))
    except FrameError:
        want = 0
    assert ingest_count(bytes(frame)) == want
    assert ingest_count(memoryview(bytes(frame))) == want


def test_check_frame_when_valid_then_returns_count():
    assert check_ingest_frame(_frame(3)) == 3
    assert ingest_count(_frame(3)) == 3


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**62), st.integers(0, 2**62))
def test_heartbeat_when_packed_by_the_service_then_same_bytes_as_protocol(epoch, hwm, ts):
    from sequencer.protocol import HEARTBEAT_MAGIC, PROTOCOL_VERSION, encode_heartbeat
    from sequencer.service import _HEARTBEAT

    assert _HEARTBEAT.pack(HEARTBEAT_MAGIC, PROTOCOL_VERSION, 0, epoch, hwm, ts) == encode_heartbeat(epoch, hwm, ts)

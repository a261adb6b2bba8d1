"""Records, frames and heartbeats: round trips and every way a frame can be malformed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sequencer.codes import ResultCode
from sequencer.protocol import (
    HEADER_SIZE,
    RECORD_DTYPE,
    RECORD_SIZE,
    FrameError,
    FrameType,
    decode_frame,
    decode_header,
    decode_heartbeat,
    encode_frame,
    encode_heartbeat,
)

records_strategy = hnp.arrays(RECORD_DTYPE, st.integers(0, 40), elements=hnp.from_dtype(RECORD_DTYPE))


def test_record_layout_when_inspected_then_matches_documented_offsets():
    assert RECORD_DTYPE.itemsize == RECORD_SIZE == 128
    offsets = {name: RECORD_DTYPE.fields[name][1] for name in RECORD_DTYPE.names}
    assert offsets == {
        "seq": 0, "ts_ns": 8, "order_id": 16, "qty": 24, "price": 32, "producer_seq": 40,
        "aux1": 48, "aux2": 56, "epoch": 64, "instrument": 68, "producer": 72, "account": 76,
        "venue": 78, "kind": 80, "side": 81, "code": 82, "flags": 84, "text": 88,
    }
    assert all(RECORD_DTYPE.fields[n][0].byteorder in "<|=" for n in RECORD_DTYPE.names)


@settings(max_examples=150)
@given(records=records_strategy, epoch=st.integers(0, 2**32 - 1), ftype=st.sampled_from(list(FrameType)))
def test_encode_frame_when_decoded_then_records_and_header_round_trip(records, epoch, ftype):
    buf = encode_frame(records, frame_type=ftype, epoch=epoch)
    header, decoded = decode_frame(buf)
    assert len(buf) == HEADER_SIZE + len(records) * RECORD_SIZE
    assert header.frame_type == ftype and header.epoch == epoch and header.count == len(records)
    assert header.first_seq == (int(records["seq"][0]) if len(records) else 0)
    assert decoded.tobytes() == records.tobytes()


@settings(max_examples=200)
@given(records=records_strategy.filter(len), data=st.data())
def test_decode_frame_when_any_byte_flipped_then_raises(records, data):
    buf = bytearray(encode_frame(records, epoch=7))
    pos = data.draw(st.integers(0, len(buf) - 1))
    bit = data.draw(st.integers(0, 7))
    buf[pos] ^= 1 << bit
    with pytest.raises(FrameError):
        decode_frame(bytes(buf))


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda b: b"", ResultCode.EMPTY_FRAME),
        (lambda b: b[:10], ResultCode.BAD_SIZE),
        (lambda b: b"XXXX" + b[4:], ResultCode.BAD_MAGIC),
        (lambda b: b[:4] + b"\x09\x00" + b[6:], ResultCode.BAD_VERSION),
        (lambda b: b[:6] + b"\x07" + b[7:], ResultCode.BAD_FRAME_TYPE),
        (lambda b: b[:7] + b"\x01" + b[8:], ResultCode.BAD_FLAGS),
        (lambda b: b[:-1], ResultCode.BAD_SIZE),
        (lambda b: b + b"\x00", ResultCode.BAD_SIZE),
        (lambda b: b[:20] + (2**21).to_bytes(4, "little") + b[24:], ResultCode.BAD_COUNT),
        (lambda b: b[:HEADER_SIZE] + bytes([b[HEADER_SIZE] ^ 1]) + b[HEADER_SIZE + 1 :], ResultCode.BAD_CHECKSUM),
    ],
)
def test_decode_frame_when_malformed_then_error_code_names_the_problem(mutate, code):
    rec = np.zeros(2, dtype=RECORD_DTYPE)
    rec["seq"] = [5, 6]
    with pytest.raises(FrameError) as info:
        decode_frame(mutate(encode_frame(rec, epoch=1)))
    assert info.value.code == code
    assert code.name in str(info.value)


def test_decode_header_when_buffer_longer_and_not_expect_total_then_accepts():
    rec = np.zeros(3, dtype=RECORD_DTYPE)
    buf = encode_frame(rec) + b"trailing segment bytes"
    assert decode_header(buf, expect_total=False).count == 3
    with pytest.raises(FrameError):
        decode_header(buf)


def test_encode_frame_when_wrong_dtype_then_type_error():
    with pytest.raises(TypeError, match="RECORD_DTYPE"):
        encode_frame(np.zeros(2, dtype=np.int64))


@given(epoch=st.integers(0, 2**32 - 1), hwm=st.integers(0, 2**63 - 1), ts=st.integers(-(2**63), 2**63 - 1))
def test_heartbeat_when_round_tripped_then_equal(epoch, hwm, ts):
    buf = encode_heartbeat(epoch, hwm, ts)
    assert len(buf) == 32
    assert decode_heartbeat(buf) == (epoch, hwm, ts)


@pytest.mark.parametrize(
    ("buf", "code"),
    [(b"\x00" * 31, ResultCode.BAD_SIZE), (b"NOPE" + b"\x00" * 28, ResultCode.BAD_MAGIC)],
)
def test_decode_heartbeat_when_malformed_then_raises(buf, code):
    with pytest.raises(FrameError) as info:
        decode_heartbeat(buf)
    assert info.value.code == code

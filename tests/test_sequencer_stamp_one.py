"""The one-frame drain's validate-and-stamp kernel equals its plain-Python reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ingest import MASKS, records

from sequencer.ingest import validate_drain
from sequencer.protocol import HEADER_SIZE, RECORD_DTYPE, Kind
from sequencer.stamp import stamp_frame
from sequencer.stamp_one import frame_producer, validate_stamp_one, validate_stamp_one_py


@st.composite
def valid_prices(draw):
    n = draw(st.integers(1, 5))
    recs = np.zeros(n, RECORD_DTYPE)
    recs["kind"] = Kind.PRICE
    recs["instrument"] = 1
    recs["price"] = draw(st.integers(1, 10**9))
    recs["producer"] = draw(st.sampled_from([7, 8]))
    recs["producer_seq"] = np.cumsum(draw(st.lists(st.integers(1, 3), min_size=n, max_size=n)))
    return recs


@st.composite
def cases(draw):
    recs = draw(st.one_of(valid_prices(), records(max_size=4)))
    producer = draw(st.sampled_from([7, 8, int(recs["producer"][0])]))
    last = draw(st.integers(-1, 3))
    first = draw(st.integers(1, 2**62))
    ts = draw(st.integers(0, 2**63 - 1))
    epoch = draw(st.integers(1, 2**32 - 1))
    return recs, producer, last, first, ts, epoch


def _run(fn, recs, producer, last, first, ts, epoch):
    buf = bytearray(b"\xab" * HEADER_SIZE) + recs.tobytes()
    kc = np.arange(256, dtype=np.int64)
    out = np.full((1, 6), -7, np.int64)
    done = fn(buf, len(recs), producer, last, first, ts, epoch, MASKS, kc, np.zeros(2, np.int64), out)
    return done, bytes(buf), kc, out


@settings(max_examples=300, deadline=None)
@given(cases())
def test_validate_stamp_one_when_random_frame_then_kernel_equals_reference(case):
    got = _run(validate_stamp_one, *case)
    want = _run(validate_stamp_one_py, *case)
    assert got[0] == want[0]
    assert got[1] == want[1]
    np.testing.assert_array_equal(got[2], want[2])
    np.testing.assert_array_equal(got[3], want[3])


@settings(max_examples=200, deadline=None)
@given(cases())
def test_validate_stamp_one_when_random_frame_then_validate_drain_row_and_stamp_frame_bytes(case):
    recs, producer, last, first, ts, epoch = case
    n = len(recs)
    done, buf, kc, out = _run(validate_stamp_one, *case)
    plain = bytearray(b"\xab" * HEADER_SIZE) + recs.tobytes()
    row = validate_drain(plain, np.array([0, n], np.int64), n, MASKS)
    np.testing.assert_array_equal(out, row)
    assert done == (row[0, 0] < 0 and row[0, 3] == producer and row[0, 4] > last)
    if done:
        kc_want = np.arange(256, dtype=np.int64)
        stamp_frame(plain, n, first, ts, epoch, kc_want)
        np.testing.assert_array_equal(kc, kc_want)
    else:
        np.testing.assert_array_equal(kc, np.arange(256))
    assert buf == bytes(plain)


def test_frame_producer_when_frame_then_first_records_producer():
    recs = np.zeros(2, RECORD_DTYPE)
    recs["producer"] = [0xDEADBEEF, 3]
    assert frame_producer(bytearray(HEADER_SIZE) + recs.tobytes()) == 0xDEADBEEF


def test_validate_stamp_one_when_buffer_size_wrong_then_value_error():
    with pytest.raises(ValueError, match="not a frame of 2 records"):
        validate_stamp_one(bytearray(HEADER_SIZE + RECORD_DTYPE.itemsize), 2, 7, 0, 1, 0, 1, MASKS,
                           np.zeros(256, np.int64), np.zeros(2, np.int64), np.zeros((1, 6), np.int64))

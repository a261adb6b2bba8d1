"""Stamping a batch in place: the numba kernel equals the plain-Python reference."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sequencer.protocol import HEADER_SIZE, RECORD_DTYPE, FrameType, decode_frame
from sequencer.stamp import stamp_frame, stamp_frame_py


@st.composite
def batches(draw):
    n = draw(st.integers(1, 40))
    raw = draw(st.binary(min_size=n * RECORD_DTYPE.itemsize, max_size=n * RECORD_DTYPE.itemsize))
    recs = np.frombuffer(raw, RECORD_DTYPE).copy()
    recs["flags"] = 0
    first = draw(st.integers(1, 2**62))
    ts = draw(st.integers(0, 2**63 - 1))
    epoch = draw(st.integers(1, 2**32 - 1))
    return recs, first, ts, epoch


@settings(max_examples=150, deadline=None)
@given(batches())
def test_stamp_when_random_batch_then_kernel_equals_reference_and_frame_decodes(case):
    recs, first, ts, epoch = case
    n = len(recs)
    bufs, counts = [], []
    for fn in (stamp_frame, stamp_frame_py):
        buf = bytearray(b"\xab" * HEADER_SIZE) + recs.tobytes()
        kc = np.arange(256, dtype=np.int64)
        fn(buf, n, first, ts, epoch, kc)
        bufs.append(bytes(buf))
        counts.append(kc)
    assert bufs[0] == bufs[1]
    np.testing.assert_array_equal(counts[0], counts[1])
    np.testing.assert_array_equal(counts[0] - np.arange(256), np.bincount(recs["kind"], minlength=256))
    header, got = decode_frame(bufs[0])
    assert header.frame_type == FrameType.STAMPED and header.first_seq == first and header.count == n
    assert header.epoch == epoch
    assert got["seq"].tolist() == list(range(first, first + n))
    assert set(got["ts_ns"].tolist()) == {ts} and set(got["epoch"].tolist()) == {epoch}
    for name in RECORD_DTYPE.names:
        if name not in ("seq", "ts_ns", "epoch"):
            assert got[name].tobytes() == recs[name].tobytes(), name

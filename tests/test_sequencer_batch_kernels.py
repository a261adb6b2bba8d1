"""The sequencer's drain kernels equal their references: producer runs and encoded acks."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sequencer.acks import encode_acks, encode_acks_py
from sequencer.messages import IngestReply, decode_ingest_replies
from sequencer.runs import frame_runs, frame_runs_py

_BIG = st.sampled_from([1, 2, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**62])


@st.composite
def drains(draw):
    """A drain's validate_drain output: per frame bad, code, field, producer, p0, p1."""
    n = draw(st.integers(1, 40))
    counts = draw(st.lists(st.integers(1, 4), min_size=n, max_size=n))
    starts = np.zeros(n + 1, np.int64)
    starts[1:] = np.cumsum(counts)
    info = np.zeros((n, 6), np.int64)
    nxt = {p: draw(st.integers(1, 50)) for p in (3, 4)}
    for f in range(n):
        producer = draw(st.sampled_from([3, 3, 3, 4]))
        step = draw(st.sampled_from([1, 1, 1, 2, 0, -3]))
        p0 = max(1, nxt[producer] + step - 1)
        p1 = p0 + counts[f] - 1 + draw(st.sampled_from([0, 0, 0, 1]))
        nxt[producer] = p1 + 1
        info[f] = (draw(st.sampled_from([-1] * 12 + [0, 1])), 0, -1, producer, p0, p1)
    return info, starts


@settings(max_examples=400, deadline=None)
@given(drains())
def test_frame_runs_when_random_drain_then_equals_reference(case):
    info, starts = case
    got, want = frame_runs(info, starts), frame_runs_py(info, starts)
    if want is None:
        assert got is None
        assert (info[:, 0] >= 0).any()
        return
    np.testing.assert_array_equal(got, want)
    # The runs cover the frames in order, each of one producer with increasing producer seqs.
    assert got[0, 3] == 0 and got[-1, 4] == len(info)
    assert (got[1:, 3] == got[:-1, 4]).all()
    for producer, p0, p1, lo, hi, contiguous in got.tolist():
        assert (info[lo:hi, 3] == producer).all()
        assert (info[lo + 1:hi, 4] > info[lo:hi - 1, 5]).all()
        steps = (info[lo:hi, 5] - info[lo:hi, 4] == np.diff(starts)[lo:hi] - 1).all()
        joined = (info[lo + 1:hi, 4] == info[lo:hi - 1, 5] + 1).all()
        assert contiguous == int(steps and joined)
        assert (p0, p1) == (info[lo, 4], info[hi - 1, 5])


def test_frame_runs_when_frames_of_two_producers_interleave_then_one_run_per_stretch():
    starts = np.arange(5, dtype=np.int64)
    info = np.array([[-1, 0, -1, 3, 1, 1], [-1, 0, -1, 3, 2, 2], [-1, 0, -1, 4, 9, 9],
                     [-1, 0, -1, 3, 3, 3]], np.int64)
    np.testing.assert_array_equal(frame_runs(info, starts[:5]),
                                  [[3, 1, 2, 0, 2, 1], [4, 9, 9, 2, 3, 1], [3, 3, 3, 3, 4, 1]])


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 30).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 2), min_size=n, max_size=n),
    st.lists(_BIG, min_size=n, max_size=n), st.lists(_BIG, min_size=n, max_size=n),
    st.lists(_BIG, min_size=n, max_size=n), _BIG)))
def test_encode_acks_when_random_replies_then_same_bytes_as_msgspec(case):
    groups, p0, p1, seq0, epoch = case
    groups = np.array(groups, np.int64)
    ngroups = int(groups.max()) + 1
    p0, p1, seq0 = (np.array(x, np.int64) for x in (p0, p1, seq0))
    seq1 = seq0 + 5
    buf, offsets = encode_acks(groups, ngroups, p0, p1, seq0, seq1, epoch)
    want = encode_acks_py(groups, ngroups, p0, p1, seq0, seq1, epoch)
    got = [bytes(buf[offsets[g]:offsets[g + 1]]) for g in range(ngroups)]
    assert got == want
    for g in range(ngroups):
        replies = decode_ingest_replies(got[g])
        frames = np.flatnonzero(groups == g)
        assert [r.first_producer_seq for r in replies] == p0[frames].tolist()
        assert all(isinstance(r, IngestReply) and r.ok and not r.duplicate for r in replies)


def test_encode_acks_when_more_than_15_and_65535_replies_then_long_array_headers():
    for n in (16, 65536):
        groups = np.zeros(n, np.int64)
        ones = np.ones(n, np.int64)
        buf, offsets = encode_acks(groups, 1, ones, ones, ones, ones, 1)
        assert bytes(buf[offsets[0]:offsets[1]]) == encode_acks_py(groups, 1, ones, ones, ones, ones, 1)[0]

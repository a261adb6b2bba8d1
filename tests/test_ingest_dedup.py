"""Idempotent ingest table: runs per producer agree with a plain dict model, also when rebuilt."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import sequencer.dedup as dedup_mod
from sequencer.dedup import DedupTable
from sequencer.protocol import RECORD_DTYPE


@st.composite
def streams(draw):
    """Frames of (producer, increasing producer seqs) stamped in order, with epoch bumps."""
    nframes = draw(st.integers(1, 60))
    last: dict[int, int] = {}
    frames = []
    epoch = 1
    for _ in range(nframes):
        producer = draw(st.sampled_from([1, 2, 3]))
        n = draw(st.integers(1, 6))
        steps = draw(st.lists(st.sampled_from([1, 1, 1, 2, 5]), min_size=n, max_size=n))
        p = last.get(producer, 0)
        pseqs = []
        for s in steps:
            p += s
            pseqs.append(p)
        last[producer] = p
        if draw(st.booleans()) and draw(st.booleans()):
            epoch += 1
        frames.append((producer, np.array(pseqs, np.int64), epoch))
    return frames


def _apply(frames):
    table = DedupTable()
    model: dict[tuple[int, int], tuple[int, int]] = {}
    rows = []
    seq = 1
    for producer, pseqs, epoch in frames:
        table.add(producer, pseqs, seq, epoch)
        for i, p in enumerate(pseqs.tolist()):
            model[(producer, p)] = (seq + i, epoch)
            rows.append((seq + i, producer, p, epoch))
        seq += len(pseqs)
    return table, model, rows


def _check(table, model, frames):
    for producer in (1, 2, 3, 4):
        mine = [p for (q, p) in model if q == producer]
        assert table.last(producer) == (max(mine) if mine else 0)
        for p in range(0, (max(mine) if mine else 0) + 3):
            got = table.lookup(producer, np.array([p], np.int64))
            want = model.get((producer, p))
            if want is None:
                assert got is None
            else:
                assert got is not None and (got[0], got[2]) == want
    for producer, pseqs, _ in frames:
        got = table.lookup(producer, pseqs)
        assert got is not None
        assert got[0] == model[(producer, int(pseqs[0]))][0]
        assert got[1] == model[(producer, int(pseqs[-1]))][0]


@settings(max_examples=60, deadline=None)
@given(streams(), st.integers(1, 4))
def test_lookup_when_frames_stamped_then_every_pair_maps_to_its_seq(frames, chunk):
    old = dedup_mod.CHUNK
    dedup_mod.CHUNK = chunk  # tiny chunks exercise the sealed numpy chunks too
    try:
        table, model, _ = _apply(frames)
        _check(table, model, frames)
    finally:
        dedup_mod.CHUNK = old


@settings(max_examples=40, deadline=None)
@given(streams(), st.integers(1, 40), st.integers(1, 4))
def test_rebuild_when_journal_chunks_replayed_then_same_answers(frames, split, chunk):
    old = dedup_mod.CHUNK
    dedup_mod.CHUNK = chunk
    try:
        _, model, rows = _apply(frames)
        recs = np.zeros(len(rows), RECORD_DTYPE)
        arr = np.array(rows, np.int64)
        recs["seq"], recs["producer"], recs["producer_seq"], recs["epoch"] = arr.T
        rebuilt = DedupTable()
        assert rebuilt.rebuild_from([recs[i:i + split] for i in range(0, len(recs), split)]) == len(recs)
        _check(rebuilt, model, frames)
    finally:
        dedup_mod.CHUNK = old


def test_lookup_when_frame_has_a_never_stamped_pseq_then_none():
    table = DedupTable()
    table.add(5, np.array([1, 2, 4]), 10, 1)
    assert table.lookup(5, np.array([1, 2, 4])) == (10, 12, 1)
    assert table.lookup(5, np.array([2, 3])) is None
    assert table.lookup(6, np.array([1])) is None


from hypothesis.stateful import RuleBasedStateMachine, invariant, rule  # noqa: E402


class DedupMachine(RuleBasedStateMachine):
    """Producers stamp, resend and restart; the table always answers like a dict model."""

    def __init__(self) -> None:
        super().__init__()
        self.table = DedupTable()
        self.model: dict[tuple[int, int], tuple[int, int]] = {}
        self.frames: list[tuple[int, np.ndarray]] = []
        self.rows: list[tuple[int, int, int, int]] = []
        self.seq = 1
        self.epoch = 1

    @rule(producer=st.sampled_from([1, 2]), n=st.integers(1, 5), gap=st.sampled_from([1, 1, 3]))
    def stamp(self, producer, n, gap):
        start = self.table.last(producer) + gap
        pseqs = np.arange(start, start + n * gap, gap, dtype=np.int64)
        self.table.add(producer, pseqs, self.seq, self.epoch)
        for i, p in enumerate(pseqs.tolist()):
            self.model[(producer, p)] = (self.seq + i, self.epoch)
            self.rows.append((self.seq + i, producer, p, self.epoch))
        self.frames.append((producer, pseqs))
        self.seq += n

    @rule(data=st.data())
    def resend(self, data):
        if not self.frames:
            return
        producer, pseqs = data.draw(st.sampled_from(self.frames))
        got = self.table.lookup(producer, pseqs)
        assert got is not None
        assert (got[0], got[2]) == self.model[(producer, int(pseqs[0]))]
        assert got[1] == self.model[(producer, int(pseqs[-1]))][0]

    @rule()
    def restart(self):
        recs = np.zeros(len(self.rows), RECORD_DTYPE)
        if self.rows:
            recs["seq"], recs["producer"], recs["producer_seq"], recs["epoch"] = np.array(self.rows, np.int64).T
        self.table = DedupTable()
        self.table.rebuild_from([recs])
        self.epoch += 1

    @invariant()
    def last_matches(self):
        for producer in (1, 2):
            mine = [p for (q, p) in self.model if q == producer]
            assert self.table.last(producer) == max(mine, default=0)


TestDedupMachine = DedupMachine.TestCase
TestDedupMachine.settings = settings(max_examples=25, stateful_step_count=25, deadline=None)

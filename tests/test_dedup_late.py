"""Late producer seqs: a frame lost in a sequencer crash and resent after newer frames were
stamped is stamped once, found again, and survives a rebuild from the journal."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import sequencer.dedup as dedup_mod
from sequencer.dedup import DedupTable
from sequencer.protocol import RECORD_DTYPE


@st.composite
def shuffled_frames(draw):
    """Frames of one or two producers whose disjoint producer-seq ranges arrive in any order."""
    frames = []
    for producer in draw(st.sets(st.sampled_from([1, 2]), min_size=1)):
        n = draw(st.integers(1, 25))
        sizes = draw(st.lists(st.integers(1, 5), min_size=n, max_size=n))
        p = 0
        for size in sizes:
            frames.append((producer, np.arange(p + 1, p + size + 1, dtype=np.int64)))
            p += size + draw(st.sampled_from([0, 0, 2]))
    order = draw(st.permutations(range(len(frames))))
    return [frames[i] for i in order]


def _stamp(frames, epoch_every):
    table = DedupTable()
    model: dict[tuple[int, int], tuple[int, int]] = {}
    rows = []
    seq = 1
    for k, (producer, pseqs) in enumerate(frames):
        epoch = 1 + k // epoch_every
        assert not table.stamped_any(producer, pseqs)
        assert table.lookup(producer, pseqs) is None
        table.add(producer, pseqs, seq, epoch)
        for i, p in enumerate(pseqs.tolist()):
            model[(producer, p)] = (seq + i, epoch)
            rows.append((seq + i, producer, p, epoch))
        seq += len(pseqs)
    return table, model, rows


def _agree(table, model, frames):
    for producer, pseqs in frames:
        assert table.stamped_any(producer, pseqs)
        got = table.lookup(producer, pseqs)
        assert got is not None
        first, last, epoch = got
        assert (first, epoch) == model[(producer, int(pseqs[0]))]
        assert last == model[(producer, int(pseqs[-1]))][0]
    for (producer, p), _ in model.items():
        assert table.lookup(producer, np.array([p])) is not None
    highest = {}
    for (producer, p) in model:
        highest[producer] = max(highest.get(producer, 0), p)
    for producer, p in highest.items():
        assert table.last(producer) == p
        assert not table.stamped_any(producer, np.array([p + 1, p + 7]))


@settings(max_examples=150, deadline=None)
@given(frames=shuffled_frames(), epoch_every=st.integers(1, 8), chunk=st.sampled_from([2, 3, 4096]))
def test_stamp_when_producer_seqs_arrive_out_of_order_then_each_found_once_with_its_seq(frames, epoch_every, chunk):
    old = dedup_mod.CHUNK
    dedup_mod.CHUNK = chunk
    try:
        table, model, _ = _stamp(frames, epoch_every)
        _agree(table, model, frames)
    finally:
        dedup_mod.CHUNK = old


@settings(max_examples=150, deadline=None)
@given(frames=shuffled_frames(), epoch_every=st.integers(1, 8), split=st.integers(1, 40))
def test_rebuild_when_journal_has_late_runs_then_same_answers_as_live_table(frames, epoch_every, split):
    _, model, rows = _stamp(frames, epoch_every)
    recs = np.zeros(len(rows), RECORD_DTYPE)
    recs["seq"], recs["producer"], recs["producer_seq"], recs["epoch"] = (np.array(c) for c in zip(*rows))
    rebuilt = DedupTable()
    assert rebuilt.rebuild_from(recs[i:i + split] for i in range(0, len(recs), split)) == len(recs)
    _agree(rebuilt, model, frames)


def test_lookup_when_late_frame_overlaps_stamped_runs_then_partial_is_not_a_duplicate():
    table = DedupTable()
    table.add(1, np.array([10, 11, 12]), 1, 1)
    table.add(1, np.array([3, 4]), 4, 2)
    assert table.lookup(1, np.array([3, 4])) == (4, 5, 2)
    assert table.lookup(1, np.array([4, 5])) is None
    assert table.stamped_any(1, np.array([4, 5])) and not table.stamped_any(1, np.array([5, 6]))
    assert table.last(1) == 12

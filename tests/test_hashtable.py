"""The Book's hash tables against Python sets and dicts: trade-id bitmap set, grouped order index."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.book import Book
from consumers.hashtable import (
    build_id_table,
    grow_pair_table,
    id_find,
    id_insert_new,
    pair_find,
    pair_insert,
    pair_table_blocks,
    pair_table_from_rows,
    pair_table_rows,
    table_capacity,
    table_shift,
)
from consumers.kernels_ref import RefBook
from sequencer.protocol import RECORD_DTYPE, Kind
from test_kernels import SHAPE, assert_same_state

_I64 = st.integers(-(2**63), 2**63 - 1)


@st.composite
def trade_ids(draw, max_runs=6):
    """(venue, trade id) pairs: sequential runs, runs going backwards, repeats, huge and negative ids."""
    pairs = []
    for _ in range(draw(st.integers(1, max_runs))):
        venue = draw(st.integers(0, 3))
        start = draw(st.one_of(st.integers(0, 300), _I64.filter(lambda x: x < 2**63 - 200)))
        length = draw(st.integers(1, 140))
        step = draw(st.sampled_from([1, 1, 2, 63, 64, 65, -1]))
        ids = [start + k * step for k in range(length) if -(2**63) <= start + k * step < 2**63]
        if draw(st.booleans()):
            ids = draw(st.permutations(ids))
        pairs.extend((venue, t) for t in ids)
    repeats = draw(st.lists(st.sampled_from(pairs), max_size=20))
    out = pairs + repeats
    return draw(st.permutations(out)) if draw(st.booleans()) else out


@settings(max_examples=120, deadline=None)
@given(pairs=trade_ids())
def test_pair_insert_when_ids_in_any_order_with_duplicates_then_same_as_python_set(pairs):
    cap = table_capacity(len(pairs))
    shift = table_shift(cap)
    table = np.zeros(4 * cap, np.int64)
    seen: set[tuple[int, int]] = set()
    blocks: set[tuple[int, int]] = set()
    for venue, tid in pairs:
        added = pair_insert(table, shift, venue, tid)
        assert (added != 0) == ((venue, tid) not in seen)
        if added:
            assert (added == 2) == ((venue, tid >> 6) not in blocks)
        seen.add((venue, tid))
        blocks.add((venue, tid >> 6))
    assert pair_table_blocks(table) == len(blocks)
    for venue, tid in pairs:
        assert pair_find(table, shift, venue, tid)
        for other in (tid - 1, tid + 1, tid + 64):
            if -(2**63) <= other < 2**63:
                assert pair_find(table, shift, venue, other) == ((venue, other) in seen)
        assert pair_find(table, shift, venue + 1, tid) == ((venue + 1, tid) in seen)
    grown_cap = 2 * cap
    grown = grow_pair_table(table, grown_cap, table_shift(grown_cap))
    for venue, tid in pairs:
        assert pair_find(grown, table_shift(grown_cap), venue, tid)


def _python_blocks(pairs) -> list[tuple[int, int, int]]:
    """(venue, block, bits) of a set of pairs, sorted, computed with Python ints."""
    groups: dict[tuple[int, int], int] = {}
    for venue, tid in set(pairs):
        groups[venue, tid // 64] = groups.get((venue, tid // 64), 0) | (1 << (tid % 64))
    return [(v, b, bits) for (v, b), bits in sorted(groups.items())]


@settings(max_examples=120, deadline=None)
@given(pairs=trade_ids(), doublings=st.integers(0, 2), rebuild_min=st.sampled_from([32, 64, 4096]))
def test_pair_table_rows_when_any_capacity_and_order_then_sorted_blocks_of_the_set_and_rebuild_is_same_set(
    pairs, doublings, rebuild_min
):
    cap = table_capacity(len(pairs)) << doublings
    shift = table_shift(cap)
    table = np.zeros(4 * cap, np.int64)
    for venue, tid in pairs:
        pair_insert(table, shift, venue, tid)
    expected = _python_blocks(pairs)
    rows = pair_table_rows(table, pair_table_blocks(table))
    assert [(int(r["venue"]), int(r["block"]), int(r["bits"])) for r in rows] == expected
    rebuilt, rebuilt_shift = pair_table_from_rows(rows, rebuild_min)
    assert len(rebuilt) // 4 >= max(rebuild_min, 2 * len(rows))
    np.testing.assert_array_equal(pair_table_rows(rebuilt, len(rows)), rows)
    present = set(pairs)
    for venue, tid in pairs:
        assert pair_find(rebuilt, rebuilt_shift, venue, tid)
        assert not pair_find(rebuilt, rebuilt_shift, venue + 4, tid)
        for other in (tid - 1, tid + 1):
            if -(2**63) <= other < 2**63:
                assert pair_find(rebuilt, rebuilt_shift, venue, other) == ((venue, other) in present)


def test_pair_table_rows_when_count_disagrees_with_table_then_error():
    table = np.zeros(4 * 32, np.int64)
    pair_insert(table, table_shift(32), 1, 5)
    with pytest.raises(ValueError, match="1 used slots"):
        pair_table_rows(table, 2)


@settings(max_examples=80, deadline=None)
@given(ids=st.lists(st.one_of(st.integers(1, 2000), st.integers(1, 2**63 - 1)), max_size=300))
def test_id_insert_new_when_ids_repeat_then_first_row_kept_like_a_dict(ids):
    cap = table_capacity(len(ids))
    shift = table_shift(cap)
    table = np.zeros(cap, np.uint32)
    keys = np.array(ids, np.int64)
    index: dict[int, int] = {}
    for row, oid in enumerate(ids):
        assert id_insert_new(table, shift, oid, row, keys) == (oid not in index)
        index.setdefault(oid, row)
    for oid, row in index.items():
        assert id_find(table, shift, oid, keys) == row
    assert id_find(table, shift, 2**63 - 1, keys) == index.get(2**63 - 1, -1)
    unique = np.array(list(index), np.int64)
    rebuilt = build_id_table(unique, cap, shift)
    for row, oid in enumerate(unique):
        assert id_find(rebuilt, shift, int(oid), unique) == row


@st.composite
def order_ids(draw):
    """Unique order ids: runs in strides (1, the group size, larger), random huge ids, shuffled or not."""
    ids: list[int] = []
    for _ in range(draw(st.integers(1, 5))):
        start = draw(st.integers(1, 2**62))
        step = draw(st.sampled_from([1, 1, 3, 16, 64, 1000]))
        ids.extend(start + k * step for k in range(draw(st.integers(1, 200))))
    ids.extend(draw(st.lists(st.integers(1, 2**63 - 1), max_size=50)))
    ids = list(dict.fromkeys(ids))
    return draw(st.permutations(ids)) if draw(st.booleans()) else ids


@settings(max_examples=60, deadline=None)
@given(ids=order_ids(), doublings=st.integers(0, 3))
def test_build_id_table_when_ids_in_strides_then_every_id_found_with_its_row(ids, doublings):
    cap = table_capacity(len(ids)) << doublings
    shift = table_shift(cap)
    keys = np.array(ids, np.int64)
    table = build_id_table(keys, cap, shift)
    assert table.ctypes.data % 64 == 0
    assert np.count_nonzero(table) == len(ids)
    for row, oid in enumerate(ids):
        assert id_find(table, shift, oid, keys) == row
    present = set(ids)
    absent = next(k for k in range(1, len(ids) + 2) if k not in present)
    assert id_find(table, shift, absent, keys) == -1


@settings(max_examples=40, deadline=None)
@given(pairs=trade_ids(max_runs=4), cuts=st.lists(st.integers(0, 1000), max_size=5))
def test_apply_when_fills_reuse_trade_ids_out_of_order_then_each_pair_applied_once(pairs, cuts):
    recs = np.zeros(len(pairs), RECORD_DTYPE)
    recs["seq"] = np.arange(1, len(pairs) + 1)
    recs["kind"] = Kind.FILL
    recs["account"] = 1
    recs["instrument"] = 1
    recs["venue"] = [min(v, 2) for v, _ in pairs]
    recs["side"] = 1
    recs["qty"] = 1
    recs["price"] = 100
    recs["order_id"] = 7
    recs["aux1"] = [t for _, t in pairs]
    book = Book(shape=SHAPE, capacity=1)
    ref = RefBook(SHAPE)
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(recs)}), len(recs)]
    for lo, hi in zip(bounds, bounds[1:]):
        book.apply(recs[lo:hi])
        ref.apply(recs[lo:hi])
    assert_same_state(book, ref)
    distinct = {(int(v), int(t)) for v, t in zip(recs["venue"], recs["aux1"])}
    assert book.pos[1, 1] == len(distinct)
    assert book.n_trades == len(distinct) == int(np.unpackbits(np.ascontiguousarray(book.trade_blocks["bits"]).view(np.uint8)).sum())
    for venue, tid in distinct:
        assert book.has_trade(venue, tid)

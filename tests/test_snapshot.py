"""Snapshots of the Book fold: round trip, and clear errors on any mismatch."""

from __future__ import annotations

import json
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.fold import BookFold
from consumers.snapshot import SnapshotError, read_snapshot, write_snapshot
from oms.oms import Oms
from risk_gate.fold import GateFold
from sequencer.codes import Anomaly
from sequencer.protocol import RECORD_DTYPE, Kind
from sequencer.registry import Instrument, Registry
from test_kernels import events


@settings(max_examples=25, deadline=None)
@given(recs=events(), cut=st.integers(0, 60), pnl=st.booleans())
def test_restore_when_snapshot_then_tail_then_same_hash_as_full_fold(tmp_path_factory, recs, cut, pnl):
    path = tmp_path_factory.mktemp("snap") / "book.snap"
    cut = min(cut, len(recs))
    full = BookFold(pnl=pnl)
    full.apply(recs)
    first = BookFold(capacity=1, pnl=pnl)
    first.apply(recs[:cut])
    first.snapshot(path)
    second = BookFold(pnl=pnl)
    second.restore(path)
    assert second.applied_seq == cut
    assert second.state_hash() == first.state_hash()
    second.apply(recs[cut:])
    assert second.state_hash() == full.state_hash()
    for oid in full.book.live_orders()["order_id"]:
        assert second.book.order_slot(int(oid)) == full.book.order_slot(int(oid))


def _rewrite_header(path, **changes):
    with np.load(path) as npz:
        members = {k: npz[k] for k in npz.files}
    header = json.loads(members.pop("__header__").tobytes())
    header.update(changes)
    members["__header__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    with open(path, "wb") as fh:
        np.savez(fh, **members)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": 99}, "format version 99"),
        ({"state_version": 7}, "state version 7"),
        ({"fold": "gate"}, "fold type 'gate'"),
        ({"magic": "nope"}, "bad magic"),
    ],
)
def test_restore_when_header_mismatch_then_clear_error(tmp_path, changes, message):
    path = tmp_path / "book.snap"
    BookFold().snapshot(path)
    _rewrite_header(path, **changes)
    with pytest.raises(SnapshotError, match=message):
        BookFold().restore(path)


def test_restore_when_registry_shape_differs_then_error_names_shape(tmp_path):
    path = tmp_path / "book.snap"
    BookFold().snapshot(path)
    bigger = Registry((Instrument("X", 9, Decimal("0.01"), Decimal(1)),), {"a": 1}, {"v": 1})
    with pytest.raises(SnapshotError, match="shape"):
        BookFold(bigger).restore(path)


@pytest.mark.parametrize("pnl", [True, False])
def test_restore_when_snapshot_pnl_differs_then_error_names_pnl(tmp_path, pnl):
    path = tmp_path / "book.snap"
    BookFold(pnl=pnl).snapshot(path)
    with pytest.raises(SnapshotError, match=f"snapshot pnl is {pnl}, this book fold has {not pnl}"):
        BookFold(pnl=not pnl).restore(path)


def test_restore_when_file_is_not_a_snapshot_then_error(tmp_path):
    path = tmp_path / "junk.snap"
    path.write_bytes(b"not a zip at all")
    with pytest.raises(SnapshotError, match="cannot read snapshot"):
        BookFold().restore(path)


def test_write_snapshot_when_written_then_no_temporary_file_left(tmp_path):
    path = tmp_path / "x.snap"
    write_snapshot(path, "t", 1, 5, {"k": 1}, {"a": np.arange(3)})
    assert [p.name for p in tmp_path.iterdir()] == ["x.snap"]
    seq, meta, arrays = read_snapshot(path, "t", 1)
    assert (seq, meta) == (5, {"k": 1})
    np.testing.assert_array_equal(arrays["a"], np.arange(3))


@st.composite
def _fills(draw):
    """Fills on an unknown order with (venue, trade id) pairs: runs, repeats, huge and negative ids."""
    pairs = []
    for _ in range(draw(st.integers(1, 4))):
        venue = draw(st.integers(1, 2))
        start = draw(st.one_of(st.integers(-100, 300), st.integers(-(2**62), 2**62)))
        pairs.extend((venue, start + k * draw(st.sampled_from([1, 5, 64]))) for k in range(draw(st.integers(1, 150))))
    pairs += draw(st.lists(st.sampled_from(pairs), max_size=40))
    pairs = draw(st.permutations(pairs))
    recs = np.zeros(len(pairs), RECORD_DTYPE)
    recs["seq"] = np.arange(1, len(pairs) + 1)
    recs["kind"] = Kind.FILL
    recs["account"] = recs["instrument"] = recs["side"] = recs["qty"] = 1
    recs["price"] = 100
    recs["order_id"] = 7
    recs["venue"] = [v for v, _ in pairs]
    recs["aux1"] = [t for _, t in pairs]
    return recs


@settings(max_examples=40, deadline=None)
@given(recs=_fills(), cut=st.integers(0, 700))
def test_restore_when_fills_after_snapshot_then_duplicates_detected_and_same_state_as_one_pass(tmp_path_factory, recs, cut):
    """The trade-id set is restored from its blocks alone: a trade id applied before the
    snapshot is still a duplicate after it, and nothing else is."""
    path = tmp_path_factory.mktemp("snap") / "book.snap"
    cut = min(cut, len(recs))
    full = BookFold()
    full.apply(recs)
    first = BookFold(capacity=1)
    first.apply(recs[:cut])
    first.snapshot(path)
    second = BookFold.from_snapshot(path)
    assert second.book.n_trades == first.book.n_trades
    second.apply(recs[cut:])
    assert second.state_hash() == full.state_hash()
    distinct = set(zip(recs["venue"].tolist(), recs["aux1"].tolist()))
    codes = second.book.live_anomalies()["code"]
    assert np.count_nonzero(codes == Anomaly.DUPLICATE_TRADE_ID) == len(recs) - len(distinct)
    assert second.book.n_trades == len(distinct)
    assert all(second.book.has_trade(v, t) for v, t in distinct)


@pytest.mark.parametrize("fold_cls", [BookFold, Oms, GateFold])
def test_restore_when_snapshot_has_the_old_trade_log_layout_then_state_version_error(tmp_path, fold_cls):
    """Version 1 kept a trade log (``trades``) instead of ``trade_blocks``: refused by version."""
    path = tmp_path / "old.snap"
    fold = fold_cls()
    arrays = dict(fold._state_arrays())
    del arrays["trade_blocks"]
    arrays["trades"] = np.zeros(0, [("seq", "<i8"), ("venue", "<i8"), ("trade_id", "<i8")])
    write_snapshot(path, fold.FOLD_TYPE, 1, 0, fold._state_meta(), arrays)
    with pytest.raises(SnapshotError, match=f"{fold.FOLD_TYPE} state version 1, this build restores version {fold.STATE_VERSION}"):
        fold_cls().restore(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda rows: rows[::-1], "not strictly sorted"),
        (lambda rows: np.concatenate([rows, rows[-1:]]), "not strictly sorted"),
        (lambda rows: np.concatenate([rows, np.array([(2, 10**6, 0)], rows.dtype)]), "empty block"),
    ],
)
def test_restore_when_trade_blocks_not_canonical_then_error_and_state_unchanged(tmp_path, edit, message):
    path = tmp_path / "book.snap"
    fold = BookFold()
    fold.apply(_two_block_fills())
    arrays = dict(fold._state_arrays())
    arrays["trade_blocks"] = edit(arrays["trade_blocks"])
    write_snapshot(path, fold.FOLD_TYPE, fold.STATE_VERSION, fold.applied_seq, fold._state_meta(), arrays)
    other = BookFold()
    with pytest.raises(SnapshotError, match=message):
        other.restore(path)
    assert other.applied_seq == 0 and other.book.n_trades == 0


def _two_block_fills() -> np.ndarray:
    recs = np.zeros(3, RECORD_DTYPE)
    recs["seq"] = [1, 2, 3]
    recs["kind"] = Kind.FILL
    recs["account"] = recs["instrument"] = recs["side"] = recs["qty"] = 1
    recs["price"] = 100
    recs["venue"] = [1, 1, 2]
    recs["aux1"] = [5, 700, 5]
    return recs

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
from sequencer.registry import Instrument, Registry
from test_kernels import events


@settings(max_examples=25, deadline=None)
@given(recs=events(), cut=st.integers(0, 60))
def test_restore_when_snapshot_then_tail_then_same_hash_as_full_fold(tmp_path_factory, recs, cut):
    path = tmp_path_factory.mktemp("snap") / "book.snap"
    cut = min(cut, len(recs))
    full = BookFold()
    full.apply(recs)
    first = BookFold(capacity=1)
    first.apply(recs[:cut])
    first.snapshot(path)
    second = BookFold()
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

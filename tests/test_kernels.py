"""The numba Book kernel against the plain-Python reference, on random event streams."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.book import STATE_ARRAYS, Book, BookError, order_leaves
from consumers.kernels_ref import RefBook
from consumers.money import muldiv_floor
from sequencer.protocol import RECORD_DTYPE, Kind

SHAPE = (3, 4, 3)  # the default registry: accounts 1-2, instruments 1-3, venues 1-2

_KINDS = [
    Kind.NEW_ORDER, Kind.NEW_ORDER, Kind.NEW_ORDER, Kind.REFUSED, Kind.ACK, Kind.ACK, Kind.FILL, Kind.FILL,
    Kind.FILL, Kind.FILL, Kind.CANCEL, Kind.REJECT, Kind.POSITION_RESET, Kind.PRICE, Kind.LIMIT,
    Kind.HALT, Kind.RESUME, Kind.REDUCE_ONLY,
]


@st.composite
def events(draw, max_size=60):
    """A random stream as a record array: anomalies, resets, controls, duplicate trade ids."""
    n = draw(st.integers(0, max_size))
    recs = np.zeros(n, RECORD_DTYPE)
    for j in range(n):
        kind = draw(st.sampled_from(_KINDS))
        r = recs[j]
        r["seq"] = j + 1
        r["ts_ns"] = 1000 + j
        r["kind"] = kind
        if kind in (Kind.NEW_ORDER, Kind.REFUSED, Kind.FILL):
            r["account"] = draw(st.integers(1, 2))
            r["instrument"] = draw(st.integers(1, 3))
            r["venue"] = draw(st.integers(1, 2))
            r["side"] = draw(st.integers(1, 2))
            r["qty"] = draw(st.integers(1, 12))
            r["price"] = draw(st.integers(1 if kind == Kind.FILL else 0, 300))
            r["order_id"] = draw(st.integers(1, 10))
            if kind == Kind.FILL:
                r["aux1"] = draw(st.integers(1, 12))
        elif kind in (Kind.ACK, Kind.CANCEL, Kind.REJECT):
            r["order_id"] = draw(st.integers(1, 10))
        elif kind == Kind.POSITION_RESET:
            r["account"] = draw(st.integers(1, 2))
            r["instrument"] = draw(st.integers(1, 3))
            r["venue"] = draw(st.integers(0, 2))
            r["qty"] = draw(st.integers(-30, 30))
            r["price"] = draw(st.sampled_from([0, 0, 50, 150]))
        elif kind == Kind.PRICE:
            r["instrument"] = draw(st.integers(1, 3))
            r["price"] = draw(st.integers(1, 300))
        elif kind == Kind.LIMIT:
            r["code"] = 1
            r["aux1"] = draw(st.integers(0, 10**6))
        else:
            scope = draw(st.sampled_from(["all", "account", "instrument"]))
            if scope == "account":
                r["account"] = draw(st.integers(1, 2))
            elif scope == "instrument":
                r["instrument"] = draw(st.integers(1, 3))
    return recs


def _splits(draw_cuts, n):
    cuts = sorted(set(c for c in draw_cuts if 0 < c < n))
    return [0, *cuts, n]


def fold_like_reference(book: Book, recs: np.ndarray, cuts: list[int]) -> None:
    """Fold ``recs`` into ``book`` and a reference Book in the batches ``cuts`` make, comparing
    the state after each batch; then the invariants and the order index."""
    ref = RefBook(SHAPE, pnl=book.pnl)
    bounds = _splits(cuts, len(recs))
    for lo, hi in zip(bounds, bounds[1:]):
        book.apply(recs[lo:hi])
        ref.apply(recs[lo:hi])
        assert_same_state(book, ref)
    assert_invariants(book)
    for row, oid in enumerate(book.live_orders()["order_id"]):
        assert book.order_slot(int(oid)) == row


def assert_same_state(book: Book, ref: RefBook) -> None:
    mine = book.state_arrays()
    assert list(mine) == [n for n in STATE_ARRAYS if book.pnl or n not in ("cost", "rpnl")]
    for name in mine:
        np.testing.assert_array_equal(mine[name], getattr(ref, name), err_msg=name)
    assert book.applied_seq == ref.applied_seq


def assert_invariants(book: Book) -> None:
    np.testing.assert_array_equal(book.pos, book.vpos.sum(axis=1))
    orders = book.live_orders()
    live = np.isin(orders["state"], [1, 2, 3])
    leaves = order_leaves(orders)
    assert (leaves[~live] == 0).all()
    assert (orders["cum"][live] < orders["qty"][live]).all()
    for a in range(book.shape[0]):
        assert book.open_orders[a] == np.count_nonzero(live & (orders["account"] == a))
    buy = np.zeros_like(book.open_buy)
    sell = np.zeros_like(book.open_sell)
    for o, left in zip(orders[live], leaves[live]):
        (buy if o["side"] == 1 else sell)[o["account"], o["instrument"]] += left
    np.testing.assert_array_equal(buy, book.open_buy)
    np.testing.assert_array_equal(sell, book.open_sell)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recs=events(), cuts=st.lists(st.integers(0, 60), max_size=6), capacity=st.sampled_from([1, 2, 1024]), pnl=st.booleans())
def test_apply_when_random_stream_in_random_batches_then_kernel_equals_reference(recs, cuts, capacity, pnl):
    book = Book(shape=SHAPE, capacity=capacity, pnl=pnl)
    fold_like_reference(book, recs, cuts)
    assert book.order_slot(999) == -1


@settings(max_examples=60, deadline=None)
@given(recs=events())
def test_apply_when_book_keeps_no_pnl_then_everything_else_equals_the_full_book(recs):
    full = Book(shape=SHAPE)
    lean = Book(shape=SHAPE, pnl=False)
    full.apply(recs)
    lean.apply(recs)
    assert lean.cost is None and lean.rpnl is None
    mine = lean.state_arrays()
    theirs = full.state_arrays()
    assert set(theirs) - set(mine) == {"cost", "rpnl"}
    for name, arr in mine.items():
        np.testing.assert_array_equal(arr, theirs[name], err_msg=name)
    assert lean.state_hash() != full.state_hash()


def test_load_arrays_when_pnl_differs_then_book_error_names_it():
    full = Book(shape=SHAPE)
    with pytest.raises(BookError, match=r"does not keep: \['cost', 'rpnl'\] \(pnl=False\)"):
        Book(shape=SHAPE, pnl=False).load_arrays(full.state_arrays(), 0)
    with pytest.raises(BookError, match=r"missing array 'cost' \(pnl=True\)"):
        full.load_arrays(Book(shape=SHAPE, pnl=False).state_arrays(), 0)


@settings(max_examples=60, deadline=None)
@given(recs=events(), cuts=st.lists(st.integers(0, 60), max_size=6))
def test_state_hash_when_folded_in_different_splits_then_equal(recs, cuts):
    whole = Book(shape=SHAPE)
    whole.apply(recs)
    split = Book(shape=SHAPE, capacity=1)
    bounds = _splits(cuts, len(recs))
    for lo, hi in zip(bounds, bounds[1:]):
        split.apply(recs[lo:hi])
    assert whole.state_hash() == split.state_hash()


@settings(max_examples=80, deadline=None)
@given(trades=st.lists(st.tuples(st.sampled_from([1, 2]), st.integers(1, 50), st.integers(1, 10_000)), min_size=1, max_size=30))
def test_move_when_round_trip_back_to_flat_then_realized_is_sells_minus_buys(trades):
    net = sum(qty if side == 1 else -qty for side, qty, _ in trades)
    closing = [(2 if net > 0 else 1, abs(net), 777)] if net else []
    rows = trades + closing
    recs = np.zeros(len(rows), RECORD_DTYPE)
    for j, (side, qty, px) in enumerate(rows):
        fields = dict(seq=j + 1, kind=Kind.FILL, account=1, instrument=1, venue=1, side=side, qty=qty, price=px, order_id=10**6 + j, aux1=j + 1)
        for key, value in fields.items():
            recs[key][j] = value
    book = Book(shape=SHAPE)
    book.apply(recs)
    sells = sum(q * p for s, q, p in rows if s == 2)
    buys = sum(q * p for s, q, p in rows if s == 1)
    assert book.pos[1, 1] == 0 and book.cost[1, 1] == 0
    assert book.rpnl[1, 1] == sells - buys


@given(c=st.integers(-(2**62), 2**62), d=st.integers(1, 2**31), q=st.integers(0, 2**31))
def test_muldiv_floor_when_large_operands_then_exact_floor(c, d, q):
    assert muldiv_floor.py_func(c, q, d) == (c * q) // d


@settings(max_examples=300, deadline=None)
@given(
    c=st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-(2**40), 2**40)),
    d=st.one_of(st.integers(1, 2**31), st.integers(1, 2**12)),
    frac=st.fractions(0, 1),
)
def test_muldiv_floor_when_compiled_int64_then_exact_floor_on_both_paths(c, d, frac):
    q = int(d * frac)
    assert muldiv_floor(np.int64(c), np.int64(q), np.int64(d)) == (c * q) // d


@settings(max_examples=300, deadline=None)
@given(k=st.integers(-(2**40), 2**40), d=st.integers(1, 2**20), delta=st.integers(-3, 3), q=st.sampled_from([1, 1, 2, 3, 1000]))
def test_muldiv_floor_when_quotient_next_to_an_integer_then_float_path_exact(k, d, delta, q):
    """The float-division path (quotient under 1e15; c * q up to 2**60, so not always an exact
    double): quotients just below or above an integer."""
    c = (k * d + delta) // q
    assert muldiv_floor(np.int64(c), np.int64(q), np.int64(d)) == (c * q) // d


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("account", 7, "account id outside"),
        ("instrument", 9, "instrument id outside"),
        ("venue", 5, "venue id outside"),
        ("kind", 42, "unknown kind"),
        ("side", 0, "side must be"),
        ("qty", 0, "qty must be"),
        ("seq", 9, "not contiguous"),
    ],
)
def test_apply_when_batch_has_bad_record_then_error_and_nothing_applied(field, value, message):
    recs = np.zeros(3, RECORD_DTYPE)
    recs["seq"] = [1, 2, 3]
    recs["kind"] = Kind.NEW_ORDER
    for key, good in dict(account=1, instrument=1, venue=1, side=1, qty=5, price=100).items():
        recs[key] = good
    recs["order_id"] = [1, 2, 3]
    recs[field][2] = value
    book = Book(shape=SHAPE)
    before = book.state_hash()
    with pytest.raises(BookError, match=message):
        book.apply(recs)
    assert book.state_hash() == before
    assert book.applied_seq == 0

"""Growable tables in address-space reservations: rows kept, no copy while the reservation lasts."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers import reservation
from consumers.book import Book
from consumers.kernels import ORDER_DTYPE
from consumers.reservation import grown_table, reserve
from test_kernels import SHAPE, events, fold_like_reference


def _rows(n: int) -> np.ndarray:
    t = np.zeros(n, ORDER_DTYPE)
    t["order_id"] = np.arange(1, n + 1)
    t["flags"] = 1
    return t


def test_reserve_when_asked_then_zeroed_writable_rows():
    r = reserve(1000, ORDER_DTYPE)
    assert r is not None and len(r) == 1000 and r.dtype == ORDER_DTYPE
    assert not r.view(np.uint8).any()
    r[999]["qty"] = 5
    assert r[999]["qty"] == 5


def test_grown_table_when_small_then_copied_into_zeros():
    table = _rows(10)
    grown, space = grown_table(table, 7, 11, 4, None)
    assert space is None and len(grown) == 40
    np.testing.assert_array_equal(grown[:7], table[:7])
    assert not grown[7:].view(np.uint8).any()


def test_grown_table_when_large_then_prefix_view_of_reservation_and_later_growth_copies_nothing():
    with mock.patch.object(reservation, "RESERVE_FROM_BYTES", 1), mock.patch.object(reservation, "RESERVE_BYTES", ORDER_DTYPE.itemsize * 1000):
        table = _rows(10)
        first, space = grown_table(table, 10, 11, 4, None)
        assert space is not None and len(space) == 1000 and len(first) == 40
        assert first.ctypes.data == space.ctypes.data
        np.testing.assert_array_equal(first[:10], table)
        first[30]["qty"] = 9
        second, same = grown_table(first, 31, 41, 4, space)
        assert same is space and len(second) == 160
        assert second.ctypes.data == first.ctypes.data and second[30]["qty"] == 9
        third, other = grown_table(second, 31, 2000, 4, space)  # outgrows the reservation: copied
        assert other is not space and len(third) == 2000 and len(other) == 2000
        np.testing.assert_array_equal(third[:31], second[:31])


def test_grown_table_when_system_refuses_mapping_then_copied_into_zeros():
    with mock.patch.object(reservation, "RESERVE_FROM_BYTES", 1), mock.patch.object(reservation, "reserve", return_value=None):
        grown, space = grown_table(_rows(5), 5, 6, 4, None)
    assert space is None and len(grown) == 20
    np.testing.assert_array_equal(grown[:5], _rows(5))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recs=events(), cuts=st.lists(st.integers(0, 60), max_size=6), reserve_rows=st.sampled_from([2, 5, 64]))
def test_apply_when_tables_live_in_small_reservations_then_kernel_equals_reference(recs, cuts, reserve_rows):
    """Every growth goes through a reservation (some outgrown, so copied to a new one): same state as the reference."""
    with mock.patch.object(reservation, "RESERVE_FROM_BYTES", 1), mock.patch.object(reservation, "RESERVE_BYTES", ORDER_DTYPE.itemsize * reserve_rows):
        book = Book(shape=SHAPE, capacity=1)
        fold_like_reference(book, recs, cuts)
        for name, space in book._space.items():
            assert getattr(book, name).ctypes.data == space.ctypes.data


def _sizes(book: Book) -> tuple[int, ...]:
    return tuple(len(getattr(book, n)) for n in ("orders", "anomalies", "_ord_table", "_tr_table"))


@settings(max_examples=200, deadline=None)
@given(
    counts=st.tuples(st.integers(0, 1024), st.integers(0, 1024), st.integers(0, 1024)),
    batch=st.tuples(st.integers(0, 200), st.integers(0, 200), st.integers(0, 200)),
)
def test_room_when_batch_fits_then_reserve_grows_nothing_and_otherwise_something(counts, batch):
    """Book.apply skips _reserve when the cached room says the batch fits: that must be exactly when _reserve would do nothing."""
    book = Book(shape=SHAPE, capacity=1024)
    n_ord, n_an, blocks = counts
    book.counts[[0, 1, 4]] = counts
    n_new, n_fill, n_events = batch
    room = book._room
    fits = n_ord + n_new <= room[0] and n_an + n_events <= room[1] and blocks + n_fill <= room[2]
    before = _sizes(book)
    book._reserve(n_new, n_fill, n_events)
    assert (_sizes(book) == before) == fits


@pytest.mark.parametrize("reserve_from", [1, 1 << 40])
def test_grow_when_order_table_grows_then_every_row_is_one_cache_line(reserve_from):
    """Small (np.zeros) and reserved order tables alike start on a line boundary, so a 64-byte row never straddles two."""
    assert ORDER_DTYPE.itemsize == 64
    with mock.patch.object(reservation, "RESERVE_FROM_BYTES", reserve_from):
        book = Book(shape=SHAPE, capacity=3)
        assert book.orders.ctypes.data % 64 == 0
        for _ in range(3):
            book._grow("orders", book.n_orders, 4 * len(book.orders))
            assert book.orders.ctypes.data % 64 == 0

"""Address-space reservations for the Book's growing tables (orders, anomalies).

A table that only grows (the Book never removes rows) would be copied into a new, larger
array each time it outgrows its capacity: the live rows read again, written again, and the
fresh pages of the copy faulted in and zeroed by the kernel. On the benchmark machine,
zeroing fresh pages alone (``clear_page``) was a third of the Book fold's time on the
realistic mix, most of it caused by these copies.

Instead, once a table is large (``RESERVE_FROM_BYTES``), it moves once into an anonymous
``MAP_NORESERVE`` mapping of ``RESERVE_BYTES``: address space only, no memory is committed
and no page is touched until a row is written there. The table is then a prefix view of the
mapping, and growing it is slicing a longer prefix: no copy, no page faulted twice. Only a
table that outgrows its reservation is copied again (into a new, larger one).

Small tables (tests, short replays) stay ordinary ``np.zeros`` arrays: a hugepage-advised
mapping would fault a 2 MiB page for the first row. Where the system refuses the mapping
(e.g. strict overcommit, ``vm.overcommit_memory = 2``), :func:`reserve` returns ``None`` and
the caller copies as before.
"""

from __future__ import annotations

import mmap

import numpy as np

from consumers.hashtable import zeros_aligned

__all__ = ["RESERVE_FROM_BYTES", "RESERVE_BYTES", "reserve", "grown_table"]

RESERVE_FROM_BYTES = 4 << 20
"""Tables whose new capacity is smaller than this grow by copying into ``np.zeros`` arrays."""

RESERVE_BYTES = 16 << 30
"""Address space reserved per large table (16 GiB: ~240M order rows); not memory."""


def reserve(rows: int, dtype: np.dtype) -> np.ndarray | None:
    """A zeroed 1-d array of ``rows`` items in a fresh ``MAP_NORESERVE`` mapping, or ``None``
    if the system refuses it. Huge pages are advised (as numpy does for its own large arrays)."""
    dtype = np.dtype(dtype)
    flags = mmap.MAP_PRIVATE | getattr(mmap, "MAP_ANONYMOUS", 0x20) | getattr(mmap, "MAP_NORESERVE", 0)
    try:
        mem = mmap.mmap(-1, rows * dtype.itemsize, flags=flags)
    except (OSError, OverflowError, ValueError):
        return None
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    if advice is not None:
        try:
            mem.madvise(advice)
        except OSError:
            pass  # advice only: without huge pages the mapping still works
    return np.frombuffer(mem, dtype)


def grown_table(table: np.ndarray, used: int, want: int, growth: int, space: np.ndarray | None):
    """``(new table, new space)``: a table of ``max(want, growth * len(table))`` rows whose
    first ``used`` rows are ``table``'s.

    ``space`` is the reservation ``table`` is a prefix view of (``None`` if it is an ordinary
    array); while the new capacity fits in it the result is a longer view of it (nothing is
    copied). Otherwise the rows are copied, as bytes (numpy copies structured rows field by
    field, ~5x slower than memcpy), into a new reservation if the table is now large, else
    into a page-aligned ``np.zeros``.
    """
    cap = max(want, growth * len(table))
    if space is not None and cap <= len(space):
        return space[:cap], space
    new_space = None
    if cap * table.dtype.itemsize >= RESERVE_FROM_BYTES:
        new_space = reserve(max(cap, RESERVE_BYTES // table.dtype.itemsize), table.dtype)
    # Page-aligned either way: a row never straddles more cache lines than its size needs.
    grown = new_space[:cap] if new_space is not None else zeros_aligned(cap, table.dtype)
    nbytes = used * table.dtype.itemsize
    grown.view(np.uint8)[:nbytes] = table.view(np.uint8)[:nbytes]
    return grown, new_space

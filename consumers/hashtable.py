"""Open-addressing hash tables on plain numpy arrays, for use inside numba kernels.

Why not ``numba.typed.Dict``: measured here at ~300 ns per insert and ~120 ns per lookup,
which alone would cap the Book fold far below its 20M events/s target. These tables are
linear probing over a power-of-two array kept at most half full, with Fibonacci hashing
(multiply by 2**64 / phi, keep the top bits); a lookup is one multiply and usually one
cache line.

Two tables exist:

* order index: slot ``h`` is ``table[2h]`` = order id (``0`` = empty, order ids are > 0) and
  ``table[2h + 1]`` = the order's row in the order table;
* venue trade-id set: ``table[2h]`` = trade id (``0`` = empty, trade ids are > 0) and
  ``table[2h + 1]`` = venue; a member is the pair (venue, trade id).

Key and value share one int64 array, interleaved, so a probe touches one cache line instead
of two: the fold is bound by these random accesses (see ``docs/fold.md``).

Kernels never allocate: the Python side calls :func:`table_capacity` and rebuilds a bigger
table (from the append-only order table / trade log, in insertion order) *before* a batch
whose worst case would push the load over one half. Rebuilding from the log keeps the
layout a function of (capacity, insertion order) only.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "MIN_CAPACITY",
    "table_capacity",
    "table_shift",
    "id_find",
    "id_insert",
    "pair_find",
    "pair_insert",
    "build_id_table",
    "build_pair_table",
]

MIN_CAPACITY = 16
_PHI = np.uint64(0x9E3779B97F4A7C15)


def table_capacity(entries: int) -> int:
    """Smallest power of two >= ``MIN_CAPACITY`` that keeps ``entries`` at load <= 0.5."""
    cap = MIN_CAPACITY
    while cap < 2 * entries:
        cap *= 2
    return cap


def table_shift(capacity: int) -> int:
    """Right shift that maps a 64-bit hash onto ``capacity`` (a power of two) slots."""
    return 64 - (capacity.bit_length() - 1)


@njit(cache=True, inline="always")
def _slot(key: int, shift: int) -> int:
    return np.int64((np.uint64(key) * _PHI) >> np.uint64(shift))


@njit(cache=True)
def id_find(table: np.ndarray, shift: int, key: int) -> int:
    """Value stored for ``key`` or ``-1``."""
    mask = len(table) // 2 - 1
    h = _slot(key, shift)
    while True:
        k = table[2 * h]
        if k == key:
            return table[2 * h + 1]
        if k == 0:
            return -1
        h = (h + 1) & mask


@njit(cache=True)
def id_insert(table: np.ndarray, shift: int, key: int, val: int) -> None:
    """Insert ``key -> val``; the caller has checked that ``key`` is absent and there is room."""
    mask = len(table) // 2 - 1
    h = _slot(key, shift)
    while table[2 * h] != 0:
        h = (h + 1) & mask
    table[2 * h] = key
    table[2 * h + 1] = val


@njit(cache=True, inline="always")
def _pair_slot(venue: int, key: int, shift: int) -> int:
    mixed = np.uint64(key) ^ (np.uint64(venue) << np.uint64(48))
    return np.int64((mixed * _PHI) >> np.uint64(shift))


@njit(cache=True)
def pair_insert(table: np.ndarray, shift: int, venue: int, key: int) -> bool:
    """Add (venue, key); returns ``False`` (and changes nothing) if it was already present."""
    mask = len(table) // 2 - 1
    h = _pair_slot(venue, key, shift)
    while True:
        k = table[2 * h]
        if k == 0:
            table[2 * h] = key
            table[2 * h + 1] = venue
            return True
        if k == key and table[2 * h + 1] == venue:
            return False
        h = (h + 1) & mask


@njit(cache=True)
def pair_find(table: np.ndarray, shift: int, venue: int, key: int) -> bool:
    """Whether (venue, key) is present."""
    mask = len(table) // 2 - 1
    h = _pair_slot(venue, key, shift)
    while True:
        k = table[2 * h]
        if k == 0:
            return False
        if k == key and table[2 * h + 1] == venue:
            return True
        h = (h + 1) & mask


@njit(cache=True)
def build_id_table(ids: np.ndarray, capacity: int, shift: int) -> np.ndarray:
    """A fresh index ``ids[row] -> row`` for rows in order (ids are unique and > 0)."""
    table = np.zeros(2 * capacity, dtype=np.int64)
    for row in range(len(ids)):
        id_insert(table, shift, ids[row], row)
    return table


@njit(cache=True)
def build_pair_table(venues_log: np.ndarray, keys_log: np.ndarray, capacity: int, shift: int) -> np.ndarray:
    """A fresh set of the logged (venue, key) pairs, inserted in log order."""
    table = np.zeros(2 * capacity, dtype=np.int64)
    for row in range(len(keys_log)):
        pair_insert(table, shift, venues_log[row], keys_log[row])
    return table

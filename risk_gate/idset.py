"""The order ids the check kernel treats as taken: an int64 hash set it reads and writes in place.

The gate refuses an order whose client order id was seen on the stream (``new_order`` or
``refused``) or is reserved by one of its own approvals. :class:`OrderIdSet` holds the union
of the two so that the kernel (:func:`risk_gate.kernel.decide`) tests it and, on approval, adds
the id in the same call; Python's ``set``/``dict`` lookups for the same test cost more than the
kernel's whole limit check. The reference path keeps reading the Python structures
(``GateFold.seen_ids``, ``Reservations.by_id``); tests check that the two agree.

Layout: ``keys`` is a power-of-two int64 array, ``0`` = empty slot (the kernel only decides
orders with ids > 0; other ids are never stored and never asked for), linear probing from a
Fibonacci hash, at most half full. ``count`` is a one-element int64 array (the kernel writes
it). Deletion shifts the following run back (no tombstones). The kernel never grows the set:
when an insert would pass half full it hands the order to the reference path, and the Python
side grows the set (:meth:`OrderIdSet.reserve`) before it inserts.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

import numba as nb
import numpy as np

__all__ = ["OrderIdSet", "probe", "home", "add_many", "discard", "MIN_CAPACITY", "DEFAULT_CAPACITY"]

MIN_CAPACITY = 8
DEFAULT_CAPACITY = 1024
_PHI = np.uint64(0x9E3779B97F4A7C15)


def _shift(capacity: int) -> int:
    return 64 - (capacity.bit_length() - 1)


@nb.njit(cache=True, inline="always")
def home(key, shift):
    """Home slot of ``key`` (> 0) in a table whose capacity is ``2 ** (64 - shift)``."""
    return np.int64((np.uint64(key) * _PHI) >> np.uint64(shift))


@nb.njit(cache=True, inline="always")
def probe(keys, shift, key):
    """Slot of ``key`` if present, else ``~slot`` (negative) of the empty slot where it would go."""
    mask = len(keys) - 1
    h = home(key, shift)
    while True:
        k = keys[h]
        if k == key:
            return h
        if k == 0:
            return ~h
        h = (h + 1) & mask


@nb.njit(cache=True)
def add_many(keys, shift, count, ids):
    """Add every id > 0 of ``ids`` (duplicates are fine); the caller has made room."""
    for r in range(len(ids)):
        key = ids[r]
        if key > 0:
            s = probe(keys, shift, key)
            if s < 0:
                keys[~s] = key
                count[0] += 1


@nb.njit(cache=True)
def discard(keys, shift, count, key):
    """Remove ``key``; False if it was not there. The run after it moves back so no probe breaks."""
    if key <= 0:
        return False
    i = probe(keys, shift, key)
    if i < 0:
        return False
    mask = len(keys) - 1
    j = i
    while True:
        j = (j + 1) & mask
        k = keys[j]
        if k == 0:
            break
        h = home(k, shift)
        # k may move into the hole at i only if its home is not cyclically in (i, j].
        if (h - i - 1) & mask < (j - i) & mask:
            continue
        keys[i] = k
        i = j
    keys[i] = 0
    count[0] -= 1
    return True


class OrderIdSet:
    """The taken order ids (see the module docstring); ``on_grow`` hooks run after the arrays are replaced."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        cap = MIN_CAPACITY
        while cap < capacity:
            cap *= 2
        self.keys = np.zeros(cap, dtype=np.int64)
        self.shift = _shift(cap)
        self.count = np.zeros(1, dtype=np.int64)
        self.on_grow: list[Callable[[], None]] = []

    def __len__(self) -> int:
        return int(self.count[0])

    def __contains__(self, key: object) -> bool:
        return isinstance(key, int) and 0 < key < 2**63 and probe(self.keys, self.shift, key) >= 0

    def __iter__(self) -> Iterator[int]:
        return iter(self.keys[self.keys != 0].tolist())

    def reserve(self, n: int) -> None:
        """Make room for ``n`` more ids at load <= 1/2 (a new, larger table when needed)."""
        need = 2 * (int(self.count[0]) + n)
        cap = len(self.keys)
        if need <= cap:
            return
        while cap < need:
            cap *= 2
        old = self.keys[self.keys != 0]
        self.keys = np.zeros(cap, dtype=np.int64)
        self.shift = _shift(cap)
        self.count[0] = 0
        add_many(self.keys, self.shift, self.count, old)
        for hook in self.on_grow:
            hook()

    def add_many(self, ids: np.ndarray | Iterable[int]) -> None:
        """Add ids (an int64 array or ints); ids <= 0 are skipped."""
        arr = np.asarray(ids, dtype=np.int64)
        if len(arr):
            self.reserve(len(arr))
            add_many(self.keys, self.shift, self.count, arr)

    def add(self, key: int) -> None:
        self.add_many((key,))

    def discard(self, key: int) -> bool:
        """Remove ``key``; True if it was there."""
        return bool(discard(self.keys, self.shift, self.count, key))

    def reset(self, ids: Iterable[int]) -> None:
        """Hold exactly ``ids`` (those > 0)."""
        self.keys[:] = 0
        self.count[0] = 0
        self.add_many(list(ids))

"""Open-addressing hash tables on plain numpy arrays, for use inside numba kernels.

Why not ``numba.typed.Dict``: measured here at ~300 ns per insert and ~120 ns per lookup,
which alone would cap the Book fold far below its 20M events/s target. These tables are
linear probing over a power-of-two array kept at most half full, with Fibonacci hashing
(multiply by 2**64 / phi, keep the top bits); a lookup is one multiply and usually one
cache line.

Two tables exist:

* order index: slot ``h`` is ``table[h]`` = the order's row in the order table + 1 (uint32,
  ``0`` = empty); the key is not stored, probes compare ``keys[row]`` (the Book passes the
  ``order_id`` column of its order table, so the key is on the row's one cache line, which
  the caller reads next anyway). Four bytes a slot keep the table
  a quarter of a key/value pair table: fewer cache lines per lookup, and fewer pages to
  fault in when the table grows. Ids are hashed in groups of ``1 << ID_GROUP_BITS`` (16)
  consecutive ids: the group is Fibonacci-hashed to a block of 16 adjacent slots (one
  64-byte cache line, page-aligned table) and the low bits, rotated by a group-dependent
  amount, pick the slot inside it. Orders created one after the other (increasing ids, the
  usual case) share a line instead of each costing a miss, and their rows are adjacent, so a
  probe past a neighbour's slot reads a key already in cache; blocks are still spread
  uniformly (no primary clustering as with an identity hash), and the rotation keeps ids in
  strides of 16 from all starting at one offset. Growing rebuilds the table from the
  ids in row order: a sequential read, one random line write per group.
* venue trade-id set: members are pairs (venue, trade id), stored as bitmaps of 64
  consecutive trade ids. Slot ``h`` is ``table[4h]`` = ``trade_id >> 6`` (the block),
  ``table[4h + 1]`` = venue + 1 (``0`` = empty slot; venues are >= 0), ``table[4h + 2]`` =
  the bitmap (bit ``trade_id & 63``), ``table[4h + 3]`` unused (keeps a slot inside one
  cache line). Any int64 trade id is a valid member. Venues number their trades
  mostly in sequence, so the set costs about one slot per 64 fills and the slot being
  filled stays in cache; any order of ids, and duplicates, are handled exactly. The set is
  itself the Book's state (there is no trade log to rebuild it from): :func:`pair_table_rows`
  lists its used slots sorted by (venue, block), the canonical form hashed and snapshotted,
  and :func:`pair_table_from_rows` builds a table from that list again.

In the trade-id set key and value share one int64 array, interleaved, so a probe touches one
cache line instead of two: the fold is bound by these random accesses (see ``docs/fold.md``).

Kernels never allocate: the Python side calls :func:`table_capacity` and grows a table
*before* a batch whose worst case would push its load over one half.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "MIN_CAPACITY",
    "ID_GROUP_BITS",
    "table_capacity",
    "table_shift",
    "id_find",
    "id_insert",
    "id_insert_new",
    "pair_find",
    "pair_slot",
    "id_slot",
    "pair_insert",
    "MAX_ROWS",
    "build_id_table",
    "zeros_aligned",
    "grow_pair_table",
    "pair_table_blocks",
    "TRADE_BLOCK_DTYPE",
    "pair_table_rows",
    "pair_table_from_rows",
]

ID_GROUP_BITS = 4
MIN_CAPACITY = 2 << ID_GROUP_BITS  # the order index needs more slots than one group
_PHI = np.uint64(0x9E3779B97F4A7C15)
_GROUP = ID_GROUP_BITS
_GROUP_MASK = (1 << ID_GROUP_BITS) - 1
_ROT_SHIFT = 16  # hash bits [16, 16 + ID_GROUP_BITS): below the home bits of any table up to 2**48 slots
_ALIGN = 4096
MAX_ROWS = 2**32 - 2
"""Rows an order index can address (slots hold ``row + 1`` as uint32; ``0`` = empty)."""

TRADE_BLOCK_DTYPE = np.dtype([("venue", "<i8"), ("block", "<i8"), ("bits", "<u8")])
"""One used slot of a trade-id set: ``bits`` bit ``k`` set = (venue, ``64 * block + k``) present."""


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
def id_slot(key: int, shift: int) -> int:
    """Home slot of ``key`` in an order index."""
    mixed = (np.uint64(key) >> np.uint64(_GROUP)) * _PHI
    home = mixed >> np.uint64(shift + _GROUP)
    # Rotate inside the group by hash bits no table size uses for ``home``, so ids that share
    # their low bits (a stride of the group size) do not all start probing at one offset.
    low = (np.uint64(key) + (mixed >> np.uint64(_ROT_SHIFT))) & np.uint64(_GROUP_MASK)
    return np.int64((home << np.uint64(_GROUP)) | low)


@njit(cache=True)
def id_find(table: np.ndarray, shift: int, key: int, keys: np.ndarray) -> int:
    """Row of ``key`` (``keys[row] == key``) or ``-1``."""
    mask = len(table) - 1
    h = id_slot(key, shift)
    while True:
        v = np.int64(table[h])
        if v == 0:
            return -1
        if keys[v - 1] == key:
            return v - 1
        h = (h + 1) & mask


@njit(cache=True)
def id_insert(table: np.ndarray, shift: int, key: int, row: int) -> None:
    """Index ``row`` under ``key``; the caller has checked that ``key`` is absent and there is room."""
    mask = len(table) - 1
    h = id_slot(key, shift)
    while table[h] != 0:
        h = (h + 1) & mask
    table[h] = row + 1


@njit(cache=True)
def id_insert_new(table: np.ndarray, shift: int, key: int, row: int, keys: np.ndarray) -> bool:
    """Index ``row`` under ``key`` unless ``key`` is present (then ``False``, nothing changed); one probe pass."""
    mask = len(table) - 1
    h = id_slot(key, shift)
    while True:
        v = np.int64(table[h])
        if v == 0:
            table[h] = row + 1
            return True
        if keys[v - 1] == key:
            return False
        h = (h + 1) & mask


@njit(cache=True, inline="always")
def _block_slot(venue: int, block: int, shift: int) -> int:
    mixed = np.uint64(block) ^ (np.uint64(venue) << np.uint64(48))
    return np.int64((mixed * _PHI) >> np.uint64(shift))


@njit(cache=True, inline="always")
def pair_slot(venue: int, key: int, shift: int) -> int:
    """Home slot of (venue, key) in a trade-id set (for prefetching)."""
    return _block_slot(venue, key >> 6, shift)


@njit(cache=True)
def pair_insert(table: np.ndarray, shift: int, venue: int, key: int) -> int:
    """Add (venue, key): ``0`` if it was already present (nothing changed), ``1`` if added to
    an existing 64-id block, ``2`` if added in a new block (one more slot used)."""
    mask = len(table) // 4 - 1
    block = key >> 6
    tag = venue + 1
    bit = np.int64(1) << (key & 63)
    h = _block_slot(venue, block, shift)
    while True:
        t = table[4 * h + 1]
        if t == tag and table[4 * h] == block:
            bits = table[4 * h + 2]
            if bits & bit:
                return 0
            table[4 * h + 2] = bits | bit
            return 1
        if t == 0:
            table[4 * h] = block
            table[4 * h + 1] = tag
            table[4 * h + 2] = bit
            return 2
        h = (h + 1) & mask


@njit(cache=True)
def pair_find(table: np.ndarray, shift: int, venue: int, key: int) -> bool:
    """Whether (venue, key) is present."""
    mask = len(table) // 4 - 1
    block = key >> 6
    tag = venue + 1
    h = _block_slot(venue, block, shift)
    while True:
        t = table[4 * h + 1]
        if t == 0:
            return False
        if t == tag and table[4 * h] == block:
            return (table[4 * h + 2] >> (key & 63)) & 1 == 1
        h = (h + 1) & mask


def zeros_aligned(n: int, dtype=np.int64) -> np.ndarray:
    """``np.zeros(n, dtype)`` whose data starts on a page boundary, so a slot group never
    straddles more cache lines than its size needs (numpy's own buffers are 16-byte aligned)."""
    dtype = np.dtype(dtype)
    buf = np.zeros(n * dtype.itemsize + _ALIGN, np.uint8)
    off = -buf.ctypes.data % _ALIGN
    return buf[off : off + n * dtype.itemsize].view(dtype)


@njit(cache=True)
def _fill_id_table(table: np.ndarray, shift: int, ids: np.ndarray) -> None:
    for row in range(len(ids)):
        id_insert(table, shift, ids[row], row)


def build_id_table(ids: np.ndarray, capacity: int, shift: int) -> np.ndarray:
    """A fresh index of ``capacity`` slots for ``ids[row] -> row`` (ids unique)."""
    if len(ids) > MAX_ROWS:
        raise ValueError(f"an order index holds at most {MAX_ROWS} rows, got {len(ids)}")
    table = zeros_aligned(capacity, np.uint32)
    _fill_id_table(table, shift, ids)
    return table


@njit(cache=True)
def grow_pair_table(old: np.ndarray, capacity: int, shift: int) -> np.ndarray:
    """The same set with ``capacity`` slots: re-places every used block of ``old``."""
    table = np.zeros(4 * capacity, dtype=np.int64)
    for s in range(len(old) // 4):
        tag = old[4 * s + 1]
        if tag != 0:
            _place(table, shift, tag - 1, old[4 * s], old[4 * s + 2])
    return table


@njit(cache=True, inline="always")
def _place(table: np.ndarray, shift: int, venue: int, block: int, bits: int) -> None:
    """Put a block known to be absent into the first free slot of its probe sequence."""
    mask = len(table) // 4 - 1
    h = _block_slot(venue, block, shift)
    while table[4 * h + 1] != 0:
        h = (h + 1) & mask
    table[4 * h] = block
    table[4 * h + 1] = venue + 1
    table[4 * h + 2] = bits


@njit(cache=True)
def pair_table_blocks(table: np.ndarray) -> int:
    """Used slots (blocks) of a trade-id set."""
    n = 0
    for s in range(len(table) // 4):
        if table[4 * s + 1] != 0:
            n += 1
    return n


@njit(cache=True)
def _used_blocks(table: np.ndarray, venues: np.ndarray, blocks: np.ndarray, bits: np.ndarray) -> int:
    """Copy the used slots (in slot order) into the arrays while they have room; returns how many there are."""
    k = 0
    for s in range(len(table) // 4):
        tag = table[4 * s + 1]
        if tag == 0:
            continue
        if k < len(blocks):
            venues[k] = tag - 1
            blocks[k] = table[4 * s]
            bits[k] = table[4 * s + 2]
        k += 1
    return k


def pair_table_rows(table: np.ndarray, n_blocks: int) -> np.ndarray:
    """The set as ``TRADE_BLOCK_DTYPE`` rows sorted by (venue, block), one per used slot:
    independent of the table's capacity and of the order the pairs were inserted in.
    ``n_blocks`` is the caller's count of used slots (checked)."""
    venues, blocks, bits = (np.empty(n_blocks, np.int64) for _ in range(3))
    found = _used_blocks(table, venues, blocks, bits)
    if found != n_blocks:
        raise ValueError(f"the trade-id set has {found} used slots, its count says {n_blocks}")
    order = np.lexsort((blocks, venues))
    out = np.empty(n_blocks, TRADE_BLOCK_DTYPE)
    out["venue"] = venues[order]
    out["block"] = blocks[order]
    out["bits"] = bits[order].view(np.uint64)
    return out


@njit(cache=True)
def _place_blocks(table: np.ndarray, shift: int, venues: np.ndarray, blocks: np.ndarray, bits: np.ndarray) -> None:
    for r in range(len(blocks)):
        _place(table, shift, venues[r], blocks[r], bits[r])


def pair_table_from_rows(rows: np.ndarray, min_capacity: int) -> tuple[np.ndarray, int]:
    """``(table, shift)``: a trade-id set holding ``rows`` (``TRADE_BLOCK_DTYPE``, distinct
    (venue, block) pairs, e.g. from :func:`pair_table_rows`), at least ``min_capacity`` slots,
    load <= 0.5."""
    cap = max(min_capacity, table_capacity(len(rows)))
    shift = table_shift(cap)
    table = np.zeros(4 * cap, dtype=np.int64)
    _place_blocks(
        table, shift, np.ascontiguousarray(rows["venue"]), np.ascontiguousarray(rows["block"]),
        np.ascontiguousarray(rows["bits"]).view(np.int64),
    )
    return table, shift

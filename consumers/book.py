"""The Book: the shared fold state that both the OMS and the risk gate keep, as numpy arrays.

Arrays (``A = max_account_id + 1``, ``I = max_instrument_id + 1``, ``V = max_venue_id + 1``;
index 0 means none/all, venue 0 = unattributed):

=================  ============  ==========================================================
``pos``            int64[A, I]   net position in lots (``pos[a, i] == vpos[a, :, i].sum()``)
``vpos``           int64[A,V,I]  net position per venue
``cost``           int64[A, I]   cost basis in ticks x lots (signed like ``pos``; avg = cost/pos)
``rpnl``           int64[A, I]   realized PnL in ticks x lots
``open_buy``       int64[A, I]   open (leaves) buy lots of live orders
``open_sell``      int64[A, I]   open (leaves) sell lots of live orders
``open_orders``    int64[A]      live orders (pending_new, new, partially_filled)
``ref_px``         int64[I]      reference price in ticks (0 = none yet)
``ref_ts``         int64[I]      ``ts_ns`` of the record that set ``ref_px``
``tstate_all``     int8[1]       trading state of everything (``TradingState``)
``tstate_acct``    int8[A]       trading state per account
``tstate_instr``   int8[I]       trading state per instrument
``orders``         ORDER_DTYPE   order table, rows ``[:n_orders]`` in creation order
``anomalies``      ANOMALY_DTYPE anomalies, rows ``[:n_anomalies]`` in seq order
``trade_blocks``   TRADE_BLOCK_  the venue trade-id set: one row (venue, block, bits) per
                   DTYPE         64-id block in use, sorted by (venue, block)
=================  ============  ==========================================================

``cost`` and ``rpnl`` exist only in a Book made with ``pnl=True`` (the default; the OMS's).
The gate's Book (``pnl=False``) has None there: it never reads them, and the average-cost
arithmetic was about a quarter of the kernel's time on fill-heavy streams.

The order-id index and the trade-id set are open-addressing tables (``consumers.hashtable``),
each grown on its own whenever a batch could push it past half full, *before* the kernel
runs, so the kernel never allocates. The trade-id set is state in its own right (the
journal holds every fill; no log of them is kept): ``trade_blocks`` is its canonical form,
built from the table when hashed or snapshotted, and the table is built from it on restore.
Large row tables live in address-space reservations (``consumers.reservation``) and grow
without copying their rows.
"""

from __future__ import annotations

import hashlib

import numpy as np

from consumers.hashtable import (
    MAX_ROWS, TRADE_BLOCK_DTYPE, build_id_table, grow_pair_table, id_find, pair_find, pair_table_from_rows,
    pair_table_rows, table_capacity, table_shift, zeros_aligned,
)
from consumers.kernels import ANOMALY_DTYPE, BATCH_ERRORS, ORDER_DTYPE, apply_batch, check_batch
from consumers.reservation import grown_table
from oms.states import LIVE_STATES, NEXT
from sequencer.protocol import RECORD_DTYPE
from sequencer.registry import Registry, default_registry

__all__ = [
    "Book", "BookError", "ORDER_DTYPE", "ANOMALY_DTYPE", "TRADE_BLOCK_DTYPE", "STATE_ARRAYS", "registry_shape",
    "order_leaves",
]

# Fixed order of the arrays in state hashes and snapshots.
STATE_ARRAYS = (
    "pos", "vpos", "cost", "rpnl", "open_buy", "open_sell", "open_orders", "ref_px", "ref_ts",
    "tstate_all", "tstate_acct", "tstate_instr", "orders", "anomalies", "trade_blocks",
)
_PNL_ARRAYS = ("cost", "rpnl")
_LIVE = np.array(sorted(int(st) for st in LIVE_STATES), np.int8)
_TABLES = {"orders": 0, "anomalies": 1}
_TRADE_SET_MIN = table_capacity(1024)
_ROW_GROWTH = 4
_INDEX_GROWTH = 4


class BookError(ValueError):
    """A batch the Book cannot fold (bad id, kind, side, seq); nothing of it was applied."""


def order_leaves(rows: np.ndarray) -> np.ndarray:
    """Open lots of order rows (``ORDER_DTYPE``): ``qty - cum`` while live, else 0.

    A live order has ``cum < qty`` (the fill that reaches ``qty`` fills it), so the open lots
    are not stored in the row.
    """
    live = np.isin(rows["state"], _LIVE)
    return np.where(live, rows["qty"] - rows["cum"], 0)


def registry_shape(registry: Registry) -> tuple[int, int, int]:
    """``(A, I, V)``: array extents for a registry's largest account, instrument and venue ids."""
    return registry.max_account_id + 1, registry.max_instrument_id + 1, registry.max_venue_id + 1


class Book:
    """Positions, open quantities, reference prices, trading states and orders, folded in batches."""

    def __init__(
        self, registry: Registry | None = None, *, shape: tuple[int, int, int] | None = None,
        capacity: int = 1024, pnl: bool = True,
    ) -> None:
        self.registry = registry if registry is not None else default_registry()
        self.shape = tuple(shape) if shape is not None else registry_shape(self.registry)
        self.pnl = bool(pnl)
        # The state arrays this Book keeps, in hash and snapshot order.
        self.state_names = STATE_ARRAYS if self.pnl else tuple(n for n in STATE_ARRAYS if n not in _PNL_ARRAYS)
        a, i, v = self.shape
        z = np.zeros
        self.pos = z((a, i), np.int64)
        self.vpos = z((a, v, i), np.int64)
        self.cost = z((a, i), np.int64) if self.pnl else None
        self.rpnl = z((a, i), np.int64) if self.pnl else None
        self.open_buy = z((a, i), np.int64)
        self.open_sell = z((a, i), np.int64)
        self.open_orders = z(a, np.int64)
        self.ref_px = z(i, np.int64)
        self.ref_ts = z(i, np.int64)
        self.tstate_all = z(1, np.int8)
        self.tstate_acct = z(a, np.int8)
        self.tstate_instr = z(i, np.int8)
        # Line-aligned, so that each 64-byte row is one cache line.
        self.orders = zeros_aligned(max(capacity, 1), ORDER_DTYPE)
        self.anomalies = z(max(capacity, 1), ANOMALY_DTYPE)
        # [n_orders, n_anomalies, n_trades, applied_seq, trade-set blocks]; an array so the kernel updates it.
        self.counts = z(5, np.int64)
        # The reservation each large table is a prefix view of (consumers.reservation).
        self._space: dict[str, np.ndarray] = {}
        self._build_order_index(table_capacity(capacity))
        self._load_trade_set(np.zeros(0, TRADE_BLOCK_DTYPE))
        self._set_room()

    # -- sizes -------------------------------------------------------------------------
    @property
    def applied_seq(self) -> int:
        """Seq of the last record folded (0 before any)."""
        return int(self.counts[3])

    @property
    def n_orders(self) -> int:
        return int(self.counts[0])

    @property
    def n_anomalies(self) -> int:
        return int(self.counts[1])

    @property
    def n_trades(self) -> int:
        """Fills applied: the number of (venue, trade id) pairs in the trade-id set."""
        return int(self.counts[2])

    # -- folding -----------------------------------------------------------------------
    def apply(self, records: np.ndarray) -> None:
        """Fold a batch whose first seq is ``applied_seq + 1`` (contiguous); all or nothing.

        Raises :class:`BookError` naming the first unusable record (id outside the registry,
        unknown kind, bad side or qty, non-contiguous seq) before anything is applied.
        """
        if records.dtype != RECORD_DTYPE:
            raise TypeError(f"records must have RECORD_DTYPE, got {records.dtype}")
        if len(records) == 0:
            return
        n_ord, n_an, _, seq, blocks = self.counts.tolist()
        a, i, v = self.shape
        bad, err, n_new, n_fill, n_events = check_batch(records, seq + 1, a, i, v)
        if bad >= 0:
            rec = records[bad]
            raise BookError(
                f"record {bad} of the batch (seq {int(rec['seq'])}, kind {int(rec['kind'])}): {BATCH_ERRORS[err]}"
                f" [applied_seq {self.applied_seq}, shape A,I,V={self.shape}]"
            )
        # The common case, no table to grow, in three int comparisons (_reserve costs ~4 us).
        room = self._room
        if n_ord + n_new > room[0] or n_an + n_events > room[1] or blocks + n_fill > room[2]:
            self._reserve(n_new, n_fill, n_events)
        apply_batch(
            records, self.pos, self.vpos, self.cost, self.rpnl, self.open_buy, self.open_sell,
            self.open_orders, self.ref_px, self.ref_ts, self.tstate_all, self.tstate_acct,
            self.tstate_instr, self.orders, self._keys, self._ord_table, self._ord_shift,
            self._tr_table, self._tr_shift, self.anomalies,
            self.counts, NEXT,
        )

    def _reserve(self, n_new: int, n_fill: int, n_events: int) -> None:
        """Grow tables so the batch's worst case fits (each record adds at most one row to each)."""
        need = (self.n_orders + n_new, self.n_anomalies + n_events)
        if need[0] > MAX_ROWS:
            raise BookError(f"the order index addresses at most {MAX_ROWS} orders")
        for name, want in zip(_TABLES, need):
            if want > len(getattr(self, name)):
                # 4x: np.zeros pages (and reserved address space) are only faulted in when
                # written, so the slack costs address space, not memory.
                self._grow(name, int(self.counts[_TABLES[name]]), want)
        ord_cap = len(self._ord_table)
        if 2 * need[0] > ord_cap:
            # 4x: a rebuild reinserts every order and faults in a whole fresh table (random
            # writes), so a third as many rebuilds as doubling; the load stays in (1/8, 1/2].
            self._build_order_index(max(_INDEX_GROWTH * ord_cap, table_capacity(need[0])))
        # Each fill adds at most one 64-id block to the trade-id set.
        tr_cap = len(self._tr_table) // 4
        blocks = int(self.counts[4]) + n_fill
        if 2 * blocks > tr_cap:
            cap = max(2 * tr_cap, table_capacity(blocks))
            self._tr_shift = table_shift(cap)
            self._tr_table = grow_pair_table(self._tr_table, cap, self._tr_shift)
        self._set_room()

    def _set_room(self) -> None:
        """Cache the counts up to which :meth:`_reserve` would grow nothing: (orders, anomalies,
        trade-set blocks), each the largest ``count + batch's worst case`` that fits; and the
        order index's keys, a view of the (maybe new) order table."""
        self._keys = self.orders["order_id"]
        orders = min(len(self.orders), len(self._ord_table) // 2, MAX_ROWS)
        self._room = (orders, len(self.anomalies), len(self._tr_table) // 8)

    def _grow(self, name: str, used: int, want: int) -> None:
        """Grow table ``name`` to at least ``want`` rows keeping its first ``used`` (see ``consumers.reservation``)."""
        table, space = grown_table(getattr(self, name), used, want, _ROW_GROWTH, self._space.get(name))
        setattr(self, name, table)
        if space is None:
            self._space.pop(name, None)
        else:
            self._space[name] = space

    def _build_order_index(self, cap: int) -> None:
        self._ord_shift = table_shift(cap)
        self._ord_table = build_id_table(self.orders["order_id"][: self.n_orders], cap, self._ord_shift)

    def _load_trade_set(self, rows: np.ndarray) -> None:
        """Make the trade-id set exactly ``rows`` (``TRADE_BLOCK_DTYPE``, as :attr:`trade_blocks` gives)."""
        self._tr_table, self._tr_shift = pair_table_from_rows(rows, _TRADE_SET_MIN)
        self.counts[4] = len(rows)
        # Set bits = fills applied (np.bitwise_count needs numpy 2; pyproject allows 1.26).
        self.counts[2] = int(np.unpackbits(np.ascontiguousarray(rows["bits"]).view(np.uint8)).sum())

    # -- queries -----------------------------------------------------------------------
    def order_slot(self, order_id: int) -> int:
        """Row of ``order_id`` in ``orders`` or ``-1`` if the Book has not seen it."""
        if order_id <= 0:
            return -1
        return int(id_find(self._ord_table, self._ord_shift, order_id, self._keys))

    def has_trade(self, venue: int, trade_id: int) -> bool:
        """Whether a fill with this (venue, trade id) has been applied."""
        return bool(pair_find(self._tr_table, self._tr_shift, venue, trade_id))

    def live_orders(self) -> np.ndarray:
        """The order table rows that exist (a view)."""
        return self.orders[: self.n_orders]

    def live_anomalies(self) -> np.ndarray:
        """The anomaly rows recorded so far (a view)."""
        return self.anomalies[: self.n_anomalies]

    @property
    def trade_blocks(self) -> np.ndarray:
        """The trade-id set as ``TRADE_BLOCK_DTYPE`` rows sorted by (venue, block): bit ``k`` of
        ``bits`` = trade id ``64 * block + k`` applied at ``venue``. A new array on each access
        (a scan of the whole table), independent of table size and of batch splits."""
        return pair_table_rows(self._tr_table, int(self.counts[4]))

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Every state array this Book keeps (``state_names``, in ``STATE_ARRAYS`` order);
        growable tables cut to their live part."""
        out = {}
        for name in self.state_names:
            arr = getattr(self, name)
            if name in _TABLES:
                arr = arr[: int(self.counts[_TABLES[name]])]
            out[name] = arr
        return out

    def state_hash(self) -> str:
        """blake2b over the state arrays (fixed order, live parts) and ``applied_seq``, hex."""
        h = hashlib.blake2b(digest_size=32)
        h.update(b"seqrisk-book-v1")
        h.update(int(self.applied_seq).to_bytes(8, "little", signed=True))
        for name, arr in self.state_arrays().items():
            h.update(f"{name}:{arr.dtype.str}:{arr.dtype.descr}:{arr.shape}".encode())
            h.update(np.ascontiguousarray(arr).view(np.uint8).reshape(-1).data)
        return h.hexdigest()

    def load_arrays(self, arrays: dict[str, np.ndarray], applied_seq: int) -> None:
        """Replace the state with ``arrays`` (as from :meth:`state_arrays`); checks every name and shape."""
        extra = sorted(set(arrays) - set(self.state_names))
        if extra:
            raise BookError(f"state has arrays this Book does not keep: {extra} (pnl={self.pnl})")
        for name in self.state_names:
            if name not in arrays:
                raise BookError(f"state is missing array {name!r} (pnl={self.pnl})")
            arr = arrays[name]
            mine = TRADE_BLOCK_DTYPE if name == "trade_blocks" else getattr(self, name).dtype
            if arr.dtype != mine:
                raise BookError(f"array {name!r} has dtype {arr.dtype}, expected {mine}")
            if name not in _TABLES and name != "trade_blocks" and arr.shape != getattr(self, name).shape:
                raise BookError(f"array {name!r} has shape {arr.shape}, this Book has {getattr(self, name).shape}")
        _check_trade_blocks(arrays["trade_blocks"])
        self._space = {}
        for name in self.state_names:
            arr = arrays[name]
            if name in _TABLES:
                table = zeros_aligned(max(len(arr), 1024), arr.dtype)
                table[: len(arr)] = arr
                setattr(self, name, table)
                self.counts[_TABLES[name]] = len(arr)
            elif name != "trade_blocks":
                getattr(self, name)[...] = arr
        self.counts[3] = applied_seq
        self._build_order_index(table_capacity(self.n_orders))
        self._load_trade_set(arrays["trade_blocks"])
        self._set_room()


def _check_trade_blocks(rows: np.ndarray) -> None:
    """Refuse trade blocks that are not in canonical form (a table built from them would hold
    one block twice or an empty one, and its hash would differ from the folded state's)."""
    if rows.ndim != 1:
        raise BookError(f"array 'trade_blocks' has shape {rows.shape}, expected one dimension")
    venue, block = rows["venue"], rows["block"]
    if (venue < 0).any() or (rows["bits"] == 0).any():
        raise BookError("array 'trade_blocks' has a negative venue or an empty block")
    ascending = (venue[1:] > venue[:-1]) | ((venue[1:] == venue[:-1]) & (block[1:] > block[:-1]))
    if not ascending.all():
        raise BookError("array 'trade_blocks' is not strictly sorted by (venue, block)")

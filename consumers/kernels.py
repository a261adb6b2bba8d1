"""The Book fold kernel: one pass of numba-compiled code over a batch of records.

``apply_batch`` folds stamped records (``RECORD_DTYPE``) into the Book arrays in place;
``check_batch`` validates a batch first so that the kernel never indexes out of bounds and
a bad batch is refused before anything is applied. ``consumers.kernels_ref`` is the
plain-Python reference with identical semantics; tests compare every array of the two.

Table layouts (``ORDER_DTYPE``, ``ANOMALY_DTYPE``) live here because the kernel is what
defines them. Event semantics are documented in ``docs/fold.md``.

The kernel inlines ``consumers.hashtable``'s slot functions, ``consumers.money``'s
functions and ``consumers.prefetch``'s intrinsics, but numba's ``cache=True`` only checks
this file's timestamp: a change to any of them must touch this file too (or the old
compiled kernel is loaded and, e.g., probes the tables with the old hash).

Money is exact (``consumers.money``, inlined here too): position ``pos`` in lots, cost basis
``cost`` and realized PnL ``rpnl`` in ticks x lots (int64), average-cost method. A Book
without PnL (the gate's) passes None for both and its kernel has no money arithmetic.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from consumers.hashtable import id_find, id_insert_new, id_slot, pair_insert, pair_slot
from consumers.money import moved, muldiv_floor
from consumers.prefetch import prefetch_item, prefetch_span
from oms.states import ORDER_ACKED, OrderEvent, OrderState, TradingState
from sequencer.codes import Anomaly
from sequencer.protocol import Kind

__all__ = [
    "ORDER_DTYPE",
    "ANOMALY_DTYPE",
    "BATCH_ERRORS",
    "check_batch",
    "apply_batch",
    "muldiv_floor",
]

ORDER_DTYPE = np.dtype(
    [
        ("order_id", "<i8"), ("seq", "<i8"), ("qty", "<i8"), ("price", "<i8"), ("cum", "<i8"),
        ("notional", "<i8"), ("account", "<i4"), ("instrument", "<i4"), ("venue", "<i4"),
        ("side", "i1"), ("state", "i1"), ("flags", "i1"),
    ],
    align=True,
)
"""One 64-byte row per order (one cache line in the line-aligned table): ``cum`` filled lots,
``notional`` sum of fill price x qty. The open lots (leaves) are not stored: ``qty - cum``
while the order is live (a fill reaching ``qty`` ends it), else 0 (``consumers.book.order_leaves``)."""
assert ORDER_DTYPE.itemsize == 64

ANOMALY_DTYPE = np.dtype(
    [("seq", "<i8"), ("order_id", "<i8"), ("detail", "<i8"), ("code", "<i4"), ("kind", "<i2"), ("state", "i1")],
    align=True,
)
"""``detail``: trade id (duplicate trade / unknown-order fill), excess lots (overfill), fill lots
(fill after cancel/reject/refused); ``state``: the order's state when it happened (0 if unknown)."""

# Plain ints so numba folds them as compile-time constants.
K_NEW, K_REFUSED, K_ACK, K_REJECT, K_FILL, K_CANCEL = 1, 2, 3, 4, 5, 6
K_RESET, K_PRICE, K_LIMIT, K_HALT, K_RESUME, K_REDUCE = 7, 8, 9, 10, 11, 12
assert (K_NEW, K_FILL, K_REDUCE) == (Kind.NEW_ORDER, Kind.FILL, Kind.REDUCE_ONLY)

S_PENDING, S_FILLED, S_CANCELED = int(OrderState.PENDING_NEW), int(OrderState.FILLED), int(OrderState.CANCELED)
S_REJECTED, S_REFUSED = int(OrderState.REJECTED), int(OrderState.REFUSED)
E_ACK, E_PART, E_FULL = int(OrderEvent.ACK), int(OrderEvent.FILL_PARTIAL), int(OrderEvent.FILL_FULL)
E_CANCEL, E_REJECT = int(OrderEvent.CANCEL), int(OrderEvent.REJECT)
ACKED = ORDER_ACKED
T_REDUCE, T_HALTED = int(TradingState.REDUCE_ONLY), int(TradingState.HALTED)

A_UNKNOWN_FILL = int(Anomaly.UNKNOWN_ORDER_FILL)
A_OVERFILL = int(Anomaly.OVERFILL)
A_FILL_CANCELED = int(Anomaly.FILL_AFTER_CANCEL)
A_DUP_ACK = int(Anomaly.DUPLICATE_ACK)
A_DUP_TRADE = int(Anomaly.DUPLICATE_TRADE_ID)
A_ACK_REFUSED = int(Anomaly.ACK_FOR_REFUSED)
A_UNKNOWN_EVENT = int(Anomaly.UNKNOWN_ORDER_EVENT)
A_DUP_ORDER = int(Anomaly.DUPLICATE_ORDER_ID)
A_INVALID = int(Anomaly.INVALID_TRANSITION)
A_FILL_REJECTED = int(Anomaly.FILL_AFTER_REJECT)

BATCH_ERRORS = {
    1: "seq is not contiguous with the previous record (expected applied_seq + 1 + index)",
    2: "unknown kind",
    3: "account id outside the registry",
    4: "instrument id outside the registry",
    5: "venue id outside the registry",
    6: "side must be buy (1) or sell (2) for new_order, refused and fill",
    7: "qty must be > 0 for new_order, refused and fill",
}


@njit(cache=True)
def check_batch(recs, first_seq, n_acc, n_ins, n_ven):
    """Validate a batch; returns ``(bad_index, error, n_new, n_fill, n_order_events)``.

    ``bad_index`` is -1 when every record is usable; ``error`` keys ``BATCH_ERRORS``. The
    counts size the worst-case growth of the order table, trade-id set and anomaly table.
    """
    n_new = 0
    n_fill = 0
    n_order = 0
    for r in range(len(recs)):
        rec = recs[r]
        k = rec.kind
        if rec.seq != first_seq + r:
            return r, 1, 0, 0, 0
        if k < K_NEW or k > K_REDUCE:
            return r, 2, 0, 0, 0
        if rec.account >= n_acc:
            return r, 3, 0, 0, 0
        if rec.instrument >= n_ins:
            return r, 4, 0, 0, 0
        if rec.venue >= n_ven:
            return r, 5, 0, 0, 0
        if k == K_NEW or k == K_REFUSED or k == K_FILL:
            if rec.side != 1 and rec.side != 2:
                return r, 6, 0, 0, 0
            if rec.qty <= 0:
                return r, 7, 0, 0, 0
            if k == K_FILL:
                n_fill += 1
            else:
                n_new += 1
        if k <= K_CANCEL:
            n_order += 1
    return -1, 0, n_new, n_fill, n_order


@njit(cache=True, inline="always")
def _u(x):
    """``x`` (>= 0) as an unsigned index: numba then skips the negative-index wraparound code."""
    return np.uint64(x)


@njit(cache=True, inline="always")
def _anomaly(row, n, seq, code, order_id, detail, kind, state):
    """Fill anomaly ``row`` (the table's row ``n``); returns ``n + 1``."""
    row.seq = seq
    row.order_id = order_id
    row.detail = detail
    row.code = code
    row.kind = kind
    row.state = state
    return n + 1


@njit(cache=True)
def _reset(pos, vpos, cost, ref_px, a, v, i, new_qty, px):
    old_p = pos[a, i]
    p = old_p + new_qty - vpos[a, v, i]
    vpos[a, v, i] = new_qty
    pos[a, i] = p
    if cost is None:
        return
    old_c = cost[a, i]
    if p == 0:
        cost[a, i] = 0
    elif px > 0:
        cost[a, i] = p * px
    elif old_p != 0:
        # Keep the average: new cost = old_cost / old_pos * p, floored, without overflow.
        signed = old_c if (old_p > 0) == (p > 0) else -old_c
        cost[a, i] = muldiv_floor(signed, abs(p), abs(old_p))
    else:
        cost[a, i] = p * ref_px[i]


# Prefetch distances in records (see apply_batch): far enough ahead for a miss to resolve
# (~100-200 ns on the benchmark VM, a few events), near enough that the lines are still cached.
PF_SLOT = 16
PF_REC = 24
PF_ROW = 8


@njit(cache=True)
def apply_batch(
    recs, pos, vpos, cost, rpnl, open_buy, open_sell, open_orders, ref_px, ref_ts,
    tstate_all, tstate_acct, tstate_instr, orders, order_keys, ord_table, ord_shift,
    tr_table, tr_shift, anomalies, counts, nxt,
):
    """Fold ``recs`` into the Book arrays.

    ``counts`` = [n_orders, n_anomalies, fills applied (trade ids in the set), applied_seq,
    trade-set blocks used];
    ``order_keys`` is ``orders["order_id"]`` (a strided view): the keys the order index
    compares, on the row a lookup reads anyway. ``cost`` and ``rpnl`` are both None for a
    Book without cost basis and realized PnL: numba compiles that variant apart (the
    ``is None`` tests are resolved at compile time) without the average-cost arithmetic.

    The caller has run :func:`check_batch` and grown every table for the batch's worst case.
    """
    n_ord = counts[0]
    n_an = counts[1]
    n_tr = counts[2]
    n_blk = counts[4]
    n = len(recs)
    for r in range(n):
        # Prefetch (hints only): the record PF_REC ahead (check_batch read it, but 512 KB of
        # records do not all stay in L2); the index slot (and, for a fill, the trade-id set
        # slot) of the record PF_SLOT ahead; once that slot line has arrived, the id and order
        # row the slot of the record PF_ROW ahead points to (a colliding or empty slot just
        # prefetches a harmless line).
        if r + PF_REC < n:
            prefetch_span(recs, _u(r + PF_REC))
        if r + PF_SLOT < n:
            ahead_rec = recs[_u(r + PF_SLOT)]
            prefetch_item(ord_table, id_slot(ahead_rec.order_id, ord_shift))
            if ahead_rec.kind == K_FILL:
                prefetch_item(tr_table, _u(4 * pair_slot(ahead_rec.venue, ahead_rec.aux1, tr_shift)))
        if r + PF_ROW < n:
            ahead = np.int64(ord_table[id_slot(recs[_u(r + PF_ROW)].order_id, ord_shift)])
            if ahead != 0:
                prefetch_item(orders, _u(ahead - 1))
        rec = recs[r]
        kind = rec.kind
        seq = rec.seq
        oid = rec.order_id
        if kind == K_FILL:
            tid = rec.aux1
            added = pair_insert(tr_table, tr_shift, rec.venue, tid)
            if added == 0:
                n_an = _anomaly(anomalies[_u(n_an)], n_an, seq, A_DUP_TRADE, oid, tid, kind, 0)
                continue
            n_blk += added - 1
            n_tr += 1
            q = rec.qty
            px = rec.price
            row = id_find(ord_table, ord_shift, oid, order_keys)
            if row < 0:
                a, v, i, side = _u(rec.account), _u(rec.venue), _u(rec.instrument), rec.side
            else:
                o = orders[_u(row)]
                a, v, i, side = _u(o.account), _u(o.venue), _u(o.instrument), o.side
            # The position moves inline: an array handed to an inlined helper costs an atomic
            # refcount increment and decrement per call, which serialize the loop's loads.
            dq = q if side == 1 else -q
            p = pos[a, i]
            pos[a, i] = p + dq
            vpos[a, v, i] += dq
            if cost is not None:
                c, realized = moved(p, cost[a, i], dq, px)
                cost[a, i] = c
                rpnl[a, i] += realized
            if row < 0:
                n_an = _anomaly(anomalies[_u(n_an)], n_an, seq, A_UNKNOWN_FILL, oid, tid, kind, 0)
                continue
            st = o.state
            leaves = o.qty - o.cum  # the open lots while live; only used when st is live
            o.cum += q
            o.notional += px * q
            nx = nxt[_u(st), E_FULL if o.cum >= o.qty else E_PART]
            if nx < 0:
                if st == S_CANCELED:
                    code = A_FILL_CANCELED
                elif st == S_REJECTED:
                    code = A_FILL_REJECTED
                elif st == S_FILLED:
                    code = A_OVERFILL
                else:
                    code = A_INVALID
                n_an = _anomaly(anomalies[_u(n_an)], n_an, seq, code, oid, q, kind, st)
                continue
            take = min(q, leaves)
            if side == 1:
                open_buy[a, i] -= take
            else:
                open_sell[a, i] -= take
            if q > leaves:
                n_an = _anomaly(anomalies[_u(n_an)], n_an, seq, A_OVERFILL, oid, q - leaves, kind, st)
            o.state = nx
            if nx == S_FILLED:
                open_orders[a] -= 1
        elif kind == K_NEW or kind == K_REFUSED:
            # The key (o.order_id, below) is written before any later probe compares it.
            if not id_insert_new(ord_table, ord_shift, oid, n_ord, order_keys):
                n_an = _anomaly(anomalies[_u(n_an)], n_an, seq, A_DUP_ORDER, oid, 0, kind, 0)
                continue
            o = orders[_u(n_ord)]
            n_ord += 1
            a = rec.account
            i = rec.instrument
            q = rec.qty
            o.order_id = oid
            o.seq = seq
            o.qty = q
            o.price = rec.price
            o.account = a
            o.instrument = i
            o.venue = rec.venue
            o.side = rec.side
            if kind == K_NEW:
                o.state = S_PENDING
                if rec.side == 1:
                    open_buy[a, i] += q
                else:
                    open_sell[a, i] += q
                open_orders[a] += 1
            else:
                o.state = S_REFUSED
        elif kind == K_ACK or kind == K_CANCEL or kind == K_REJECT:
            row = id_find(ord_table, ord_shift, oid, order_keys)
            if row < 0:
                n_an = _anomaly(anomalies[_u(n_an)], n_an, seq, A_UNKNOWN_EVENT, oid, 0, kind, 0)
                continue
            o = orders[_u(row)]
            st = o.state
            if kind == K_ACK:
                if st == S_REFUSED:
                    n_an = _anomaly(anomalies[_u(n_an)], n_an, seq, A_ACK_REFUSED, oid, 0, kind, st)
                    continue
                if o.flags & ACKED:
                    n_an = _anomaly(anomalies[_u(n_an)], n_an, seq, A_DUP_ACK, oid, 0, kind, st)
                    continue
                nx = nxt[_u(st), E_ACK]
            else:
                nx = nxt[_u(st), E_CANCEL if kind == K_CANCEL else E_REJECT]
            if nx < 0:
                n_an = _anomaly(anomalies[_u(n_an)], n_an, seq, A_INVALID, oid, 0, kind, st)
                continue
            if kind == K_ACK:
                o.flags |= ACKED
            else:
                a = _u(o.account)
                i = _u(o.instrument)
                leaves = o.qty - o.cum  # live (nx >= 0 only from a live state)
                if o.side == 1:
                    open_buy[a, i] -= leaves
                else:
                    open_sell[a, i] -= leaves
                open_orders[a] -= 1
            o.state = nx
        elif kind == K_RESET:
            _reset(pos, vpos, cost, ref_px, rec.account, rec.venue, rec.instrument, rec.qty, rec.price)
        elif kind == K_PRICE:
            ref_px[rec.instrument] = rec.price
            ref_ts[rec.instrument] = rec.ts_ns
        elif kind == K_HALT or kind == K_RESUME or kind == K_REDUCE:
            value = T_HALTED if kind == K_HALT else (T_REDUCE if kind == K_REDUCE else 0)
            if rec.account != 0:
                tstate_acct[rec.account] = value
            elif rec.instrument != 0:
                tstate_instr[rec.instrument] = value
            else:
                tstate_all[0] = value
        # K_LIMIT: limits are the gate's state, not the Book's.
    counts[0] = n_ord
    counts[1] = n_an
    counts[2] = n_tr
    counts[4] = n_blk
    if len(recs) > 0:
        counts[3] = recs[len(recs) - 1].seq

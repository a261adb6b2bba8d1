"""Plain-Python reference of the Book kernel (``consumers.kernels``), used only by tests.

Same semantics, written for reading: Python dicts for the order index and a set for the
venue trade ids, Python ints for the arithmetic, and the state machine read from
``oms.states.TRANSITIONS`` (the data table) rather than its compiled ``NEXT`` array.
:class:`RefBook` holds the same arrays as :class:`consumers.book.Book` so tests compare them
one by one.
"""

from __future__ import annotations

import numpy as np

from consumers.hashtable import TRADE_BLOCK_DTYPE
from consumers.kernels import ANOMALY_DTYPE, ORDER_DTYPE
from oms.states import LIVE_STATES, ORDER_ACKED, TRANSITIONS, OrderEvent, OrderState, TradingState
from sequencer.codes import Anomaly
from sequencer.protocol import Kind

__all__ = ["RefBook"]

_CONTROL = {Kind.HALT: TradingState.HALTED, Kind.REDUCE_ONLY: TradingState.REDUCE_ONLY, Kind.RESUME: TradingState.ACTIVE}
_FILL_ANOMALY = {
    OrderState.CANCELED: Anomaly.FILL_AFTER_CANCEL,
    OrderState.REJECTED: Anomaly.FILL_AFTER_REJECT,
    OrderState.FILLED: Anomaly.OVERFILL,
}


def _leaves(o: dict[str, int]) -> int:
    """Open lots of an order row: what is left of ``qty`` while live, else nothing."""
    return o["qty"] - o["cum"] if OrderState(o["state"]) in LIVE_STATES else 0


class RefBook:
    """The Book's arrays, folded one record at a time in Python."""

    def __init__(self, shape: tuple[int, int, int], *, pnl: bool = True) -> None:
        a, i, v = shape
        self.pos = np.zeros((a, i), np.int64)
        self.vpos = np.zeros((a, v, i), np.int64)
        # Without PnL (the gate's Book) there is no cost basis or realized PnL at all.
        self.cost = np.zeros((a, i), np.int64) if pnl else None
        self.rpnl = np.zeros((a, i), np.int64) if pnl else None
        self.open_buy = np.zeros((a, i), np.int64)
        self.open_sell = np.zeros((a, i), np.int64)
        self.open_orders = np.zeros(a, np.int64)
        self.ref_px = np.zeros(i, np.int64)
        self.ref_ts = np.zeros(i, np.int64)
        self.tstate_all = np.zeros(1, np.int8)
        self.tstate_acct = np.zeros(a, np.int8)
        self.tstate_instr = np.zeros(i, np.int8)
        self.order_rows: list[dict[str, int]] = []
        self.index: dict[int, int] = {}
        self.trade_set: set[tuple[int, int]] = set()
        self.anomaly_rows: list[tuple[int, int, int, int, int, int]] = []
        self.applied_seq = 0

    # Tables as numpy arrays, comparable with Book.state_arrays().
    @property
    def orders(self) -> np.ndarray:
        out = np.zeros(len(self.order_rows), ORDER_DTYPE)
        for n, row in enumerate(self.order_rows):
            for key, value in row.items():
                out[n][key] = value
        return out

    @property
    def anomalies(self) -> np.ndarray:
        out = np.zeros(len(self.anomaly_rows), ANOMALY_DTYPE)
        for n, (seq, oid, detail, code, kind, state) in enumerate(self.anomaly_rows):
            out[n] = (seq, oid, detail, code, kind, state)
        return out

    @property
    def trade_blocks(self) -> np.ndarray:
        """The trade set grouped by (venue, trade id // 64), sorted, with a bit per id in the group."""
        groups: dict[tuple[int, int], int] = {}
        for venue, tid in self.trade_set:
            key = (venue, tid // 64)
            groups[key] = groups.get(key, 0) | (1 << (tid % 64))
        out = np.zeros(len(groups), TRADE_BLOCK_DTYPE)
        for n, key in enumerate(sorted(groups)):
            out[n] = (*key, groups[key])
        return out

    def apply(self, records: np.ndarray) -> None:
        for rec in records:
            self._one(rec)
            self.applied_seq = int(rec["seq"])

    def _note(self, rec: np.void, code: Anomaly, order_id: int, detail: int = 0, state: int = 0) -> None:
        self.anomaly_rows.append((int(rec["seq"]), order_id, detail, int(code), int(rec["kind"]), state))

    def _one(self, rec: np.void) -> None:
        kind = int(rec["kind"])
        oid = int(rec["order_id"])
        if kind == Kind.FILL:
            self._fill(rec, oid)
        elif kind in (Kind.NEW_ORDER, Kind.REFUSED):
            self._new(rec, oid, kind)
        elif kind in (Kind.ACK, Kind.CANCEL, Kind.REJECT):
            self._event(rec, oid, kind)
        elif kind == Kind.POSITION_RESET:
            self._reset(int(rec["account"]), int(rec["venue"]), int(rec["instrument"]), int(rec["qty"]), int(rec["price"]))
        elif kind == Kind.PRICE:
            self.ref_px[rec["instrument"]] = rec["price"]
            self.ref_ts[rec["instrument"]] = rec["ts_ns"]
        elif kind in _CONTROL:
            value = int(_CONTROL[Kind(kind)])
            if rec["account"]:
                self.tstate_acct[rec["account"]] = value
            elif rec["instrument"]:
                self.tstate_instr[rec["instrument"]] = value
            else:
                self.tstate_all[0] = value

    def _new(self, rec: np.void, oid: int, kind: int) -> None:
        if oid in self.index:
            self._note(rec, Anomaly.DUPLICATE_ORDER_ID, oid)
            return
        live = kind == Kind.NEW_ORDER
        a, i, q, side = int(rec["account"]), int(rec["instrument"]), int(rec["qty"]), int(rec["side"])
        self.index[oid] = len(self.order_rows)
        self.order_rows.append(
            dict(order_id=oid, seq=int(rec["seq"]), qty=q, price=int(rec["price"]), cum=0, notional=0,
                 account=a, instrument=i, venue=int(rec["venue"]), side=side,
                 state=int(OrderState.PENDING_NEW if live else OrderState.REFUSED), flags=0)
        )
        if live:
            (self.open_buy if side == 1 else self.open_sell)[a, i] += q
            self.open_orders[a] += 1

    def _event(self, rec: np.void, oid: int, kind: int) -> None:
        if oid not in self.index:
            self._note(rec, Anomaly.UNKNOWN_ORDER_EVENT, oid)
            return
        o = self.order_rows[self.index[oid]]
        state = OrderState(o["state"])
        if kind == Kind.ACK:
            if state == OrderState.REFUSED:
                self._note(rec, Anomaly.ACK_FOR_REFUSED, oid, state=state)
                return
            if o["flags"] & ORDER_ACKED:
                self._note(rec, Anomaly.DUPLICATE_ACK, oid, state=state)
                return
            event = OrderEvent.ACK
        else:
            event = OrderEvent.CANCEL if kind == Kind.CANCEL else OrderEvent.REJECT
        nxt = TRANSITIONS.get((state, event))
        if nxt is None:
            self._note(rec, Anomaly.INVALID_TRANSITION, oid, state=state)
            return
        if event == OrderEvent.ACK:
            o["flags"] |= ORDER_ACKED
        else:
            (self.open_buy if o["side"] == 1 else self.open_sell)[o["account"], o["instrument"]] -= _leaves(o)
            self.open_orders[o["account"]] -= 1
        o["state"] = int(nxt)

    def _fill(self, rec: np.void, oid: int) -> None:
        venue, tid = int(rec["venue"]), int(rec["aux1"])
        if (venue, tid) in self.trade_set:
            self._note(rec, Anomaly.DUPLICATE_TRADE_ID, oid, detail=tid)
            return
        self.trade_set.add((venue, tid))
        q, px = int(rec["qty"]), int(rec["price"])
        if oid not in self.index:
            self._move(int(rec["account"]), venue, int(rec["instrument"]), q if rec["side"] == 1 else -q, px)
            self._note(rec, Anomaly.UNKNOWN_ORDER_FILL, oid, detail=tid)
            return
        o = self.order_rows[self.index[oid]]
        self._move(o["account"], o["venue"], o["instrument"], q if o["side"] == 1 else -q, px)
        state = OrderState(o["state"])
        leaves = _leaves(o)
        o["cum"] += q
        o["notional"] += px * q
        event = OrderEvent.FILL_FULL if o["cum"] >= o["qty"] else OrderEvent.FILL_PARTIAL
        nxt = TRANSITIONS.get((state, event))
        if nxt is None:
            self._note(rec, _FILL_ANOMALY.get(state, Anomaly.INVALID_TRANSITION), oid, detail=q, state=state)
            return
        take = min(q, leaves)
        (self.open_buy if o["side"] == 1 else self.open_sell)[o["account"], o["instrument"]] -= take
        if q > leaves:
            self._note(rec, Anomaly.OVERFILL, oid, detail=q - leaves, state=state)
        o["state"] = int(nxt)
        if nxt == OrderState.FILLED:
            self.open_orders[o["account"]] -= 1

    def _move(self, a: int, v: int, i: int, dq: int, px: int) -> None:
        p = int(self.pos[a, i])
        self.vpos[a, v, i] += dq
        self.pos[a, i] = p + dq
        if self.cost is None:
            return
        c = int(self.cost[a, i])
        if p == 0 or (p > 0) == (dq > 0):
            self.cost[a, i] = c + px * dq
            return
        close = min(abs(p), abs(dq))
        removed = c * close // abs(p)  # Python ints: exact floor, no overflow
        self.rpnl[a, i] += (1 if p > 0 else -1) * px * close - removed
        self.cost[a, i] = px * (p + dq) if abs(dq) > abs(p) else c - removed

    def _reset(self, a: int, v: int, i: int, new_qty: int, px: int) -> None:
        old_p = int(self.pos[a, i])
        p = old_p + new_qty - int(self.vpos[a, v, i])
        self.vpos[a, v, i] = new_qty
        self.pos[a, i] = p
        if self.cost is None:
            return
        old_c = int(self.cost[a, i])
        if p == 0:
            self.cost[a, i] = 0
        elif px > 0:
            self.cost[a, i] = p * px
        elif old_p != 0:
            # The previous average, floor(old_cost / old_pos * p) with the sign of p.
            signed = old_c if (old_p > 0) == (p > 0) else -old_c
            self.cost[a, i] = signed * abs(p) // abs(old_p)
        else:
            self.cost[a, i] = p * int(self.ref_px[i])

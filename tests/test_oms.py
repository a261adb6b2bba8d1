"""The OMS fold: FIX order-state scenarios, a stateful model test, and the query API."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from oms import Oms
from sequencer.protocol import RECORD_DTYPE, Kind

_KIND = {"new": Kind.NEW_ORDER, "refused": Kind.REFUSED, "ack": Kind.ACK, "fill": Kind.FILL, "cancel": Kind.CANCEL, "reject": Kind.REJECT}


def rec(seq: int, name: str, oid: int, qty: int = 0, price: int = 0, tid: int = 0, side: int = 1, account: int = 1, venue: int = 1) -> np.ndarray:
    """One BTC-USDT record (instrument 1)."""
    r = np.zeros(1, RECORD_DTYPE)
    kind = _KIND[name]
    r["seq"], r["kind"], r["order_id"] = seq, kind, oid
    if kind in (Kind.NEW_ORDER, Kind.REFUSED, Kind.FILL):
        r["account"], r["instrument"], r["venue"], r["side"], r["qty"], r["price"] = account, 1, venue, side, qty, price
    if kind == Kind.FILL:
        r["aux1"] = tid
    return r


def fold(steps: list[tuple]) -> Oms:
    oms = Oms()
    oms.apply(np.concatenate([rec(n + 1, *step) for n, step in enumerate(steps)]))
    return oms


# (name, steps, state, cum lots, leaves lots, position lots, anomaly kinds)
SCENARIOS = [
    ("fill_before_ack", [("new", 7, 10, 100), ("fill", 7, 4, 100, 1), ("ack", 7)], "partially_filled", 4, 6, 4, []),
    ("full_fill_before_ack", [("new", 7, 10, 100), ("fill", 7, 10, 100, 1), ("ack", 7)], "filled", 10, 0, 10, []),
    ("partial_fill_then_cancel", [("new", 7, 10, 100), ("ack", 7), ("fill", 7, 3, 100, 1), ("cancel", 7)], "canceled", 3, 0, 3, []),
    ("cancel_confirmed_then_fill", [("new", 7, 10, 100), ("ack", 7), ("cancel", 7), ("fill", 7, 5, 99, 1)], "canceled", 5, 0, 5, ["fill_after_cancel"]),
    ("fill_completes_then_cancel", [("new", 7, 10, 100), ("ack", 7), ("fill", 7, 10, 99, 1), ("cancel", 7)], "filled", 10, 0, 10, ["invalid_transition"]),
    ("overfill", [("new", 7, 10, 100), ("ack", 7), ("fill", 7, 8, 100, 1), ("fill", 7, 5, 100, 2)], "filled", 13, 0, 13, ["overfill"]),
    ("fill_after_filled", [("new", 7, 10, 100), ("fill", 7, 10, 100, 1), ("fill", 7, 2, 100, 2)], "filled", 12, 0, 12, ["overfill"]),
    ("reject_after_partial", [("new", 7, 10, 100), ("ack", 7), ("fill", 7, 4, 100, 1), ("reject", 7)], "rejected", 4, 0, 4, []),
    ("reject_before_ack", [("new", 7, 10, 100), ("reject", 7)], "rejected", 0, 0, 0, []),
    ("fill_after_reject", [("new", 7, 10, 100), ("reject", 7), ("fill", 7, 2, 100, 1)], "rejected", 2, 0, 2, ["fill_after_reject"]),
    ("duplicate_ack", [("new", 7, 10, 100), ("ack", 7), ("ack", 7)], "new", 0, 10, 0, ["duplicate_ack"]),
    ("late_ack_after_implicit_then_duplicate", [("new", 7, 10, 100), ("fill", 7, 1, 100, 1), ("ack", 7), ("ack", 7)], "partially_filled", 1, 9, 1, ["duplicate_ack"]),
    ("duplicate_trade_id", [("new", 7, 10, 100), ("fill", 7, 4, 100, 1), ("fill", 7, 4, 100, 1)], "partially_filled", 4, 6, 4, ["duplicate_trade_id"]),
    ("ack_for_refused", [("refused", 7, 10, 100), ("ack", 7)], "refused", 0, 0, 0, ["ack_for_refused"]),
    ("duplicate_order_id", [("new", 7, 10, 100), ("new", 7, 3, 100)], "pending_new", 0, 10, 0, ["duplicate_order_id"]),
    ("cancel_unknown", [("new", 7, 10, 100), ("cancel", 8)], "pending_new", 0, 10, 0, ["unknown_order_event"]),
    ("ack_after_cancel", [("new", 7, 10, 100), ("cancel", 7), ("ack", 7)], "canceled", 0, 0, 0, ["invalid_transition"]),
]


@pytest.mark.parametrize(("steps", "state", "cum", "leaves", "position", "anomalies"), [s[1:] for s in SCENARIOS], ids=[s[0] for s in SCENARIOS])
def test_order_state_when_fix_scenario_then_expected_state_quantities_and_anomalies(steps, state, cum, leaves, position, anomalies):
    oms = fold(steps)
    view = oms.order(7)
    assert view.state == state
    assert view.cum_qty == oms.registry.instrument(1).qty_str(cum)
    assert view.leaves_qty == oms.registry.instrument(1).qty_str(leaves)
    assert oms.book.pos[1, 1] == position == oms.book.vpos[1, 1, 1]
    assert [a.kind for a in oms.anomalies()] == anomalies
    live = state in ("pending_new", "new", "partially_filled")
    assert oms.book.open_orders[1] == int(live)
    assert oms.book.open_buy[1, 1] == leaves
    assert [o.order_id for o in oms.open_orders()] == ([7] if live else [])


def test_fill_when_unknown_order_then_position_moves_and_anomaly_recorded():
    oms = fold([("fill", 99, 5, 100, 1, 2, 2, 2)])  # sell 5 on account 2, venue 2
    assert oms.book.pos[2, 1] == -5 and oms.book.vpos[2, 2, 1] == -5
    [a] = oms.anomalies()
    assert (a.seq, a.kind, a.order_id) == (1, "unknown_order_fill", 99)
    assert "trade id 1" in a.reason
    assert oms.order(99) is None


def test_queries_when_orders_and_fills_then_views_use_names_and_decimal_strings():
    oms = fold([("new", 1, 30000, 5_000_000), ("ack", 1), ("fill", 1, 10000, 5_000_000, 1), ("fill", 1, 5000, 5_000_100, 2),
                ("new", 2, 100, 4_000_000, 0, 2)])
    o = oms.order(1)
    assert (o.account, o.instrument, o.venue, o.side, o.state) == ("acct-1", "BTC-USDT", "sim-1", "buy", "partially_filled")
    assert (o.qty, o.cum_qty, o.leaves_qty, o.price) == ("3.0000", "1.5000", "1.5000", "50000.00")
    # (10000*5_000_000 + 5000*5_000_100) / 15000 = 5_000_033.33.. ticks -> 50000.333333.. -> 6 extra places
    assert o.avg_price == "50000.33333333"
    [p] = oms.positions()
    assert (p.account, p.instrument, p.qty, p.venues) == ("acct-1", "BTC-USDT", "1.5000", {"sim-1": "1.5000"})
    assert [v.order_id for v in oms.open_orders(account="acct-1")] == [1, 2]
    assert [v.order_id for v in oms.open_orders(instrument="ETH-USDT")] == []
    assert oms.order(2).avg_price is None


def test_positions_when_round_trip_then_realized_pnl_exact_in_quote_units():
    oms = fold([("fill", 1, 10000, 5_000_000, 1), ("fill", 2, 10000, 5_010_001, 2, 2)])
    [p] = oms.positions()
    # 1 BTC bought at 50000.00, sold at 50100.01 -> 100.01 exactly (tick .01 x lot .0001 = 1e-6)
    assert (p.qty, p.avg_price, p.realized_pnl) == ("0.0000", None, "100.010000")


# ---- stateful model -------------------------------------------------------------------

LIVE = {"pending_new", "new", "partially_filled"}


class OmsMachine(RuleBasedStateMachine):
    """Random order flows against a dict model of the documented semantics."""

    order_ids = Bundle("order_ids")

    def __init__(self) -> None:
        super().__init__()
        self.oms = Oms()
        self.seq = 0
        self.next_oid = 1
        self.next_tid = 1
        self.orders: dict[int, dict] = {}
        self.trades: set[tuple[int, int]] = set()
        self.pos = {(a, v): 0 for a in (1, 2) for v in (1, 2)}
        self.anoms: list[tuple[int, str, int]] = []

    def _apply(self, name: str, oid: int, **kw) -> None:
        self.seq += 1
        self.oms.apply(rec(self.seq, name, oid, **kw))

    def _anom(self, kind: str, oid: int) -> None:
        self.anoms.append((self.seq, kind, oid))

    @rule(target=order_ids, side=st.sampled_from([1, 2]), qty=st.integers(1, 20), account=st.sampled_from([1, 2]), venue=st.sampled_from([1, 2]), refused=st.booleans())
    def new_order(self, side, qty, account, venue, refused):
        oid = self.next_oid
        self.next_oid += 1
        self._apply("refused" if refused else "new", oid, qty=qty, price=100, side=side, account=account, venue=venue)
        self.orders[oid] = dict(state="refused" if refused else "pending_new", qty=qty, cum=0, leaves=0 if refused else qty, side=side, account=account, venue=venue, acked=False)
        return oid

    @rule(oid=order_ids)
    def duplicate_new_order(self, oid):
        self._apply("new", oid, qty=5, price=100)
        self._anom("duplicate_order_id", oid)

    @rule(oid=order_ids)
    def ack(self, oid):
        self._apply("ack", oid)
        o = self.orders[oid]
        if o["state"] == "refused":
            self._anom("ack_for_refused", oid)
        elif o["acked"]:
            self._anom("duplicate_ack", oid)
        elif o["state"] in ("canceled", "rejected"):
            self._anom("invalid_transition", oid)
        else:
            o["acked"] = True
            if o["state"] == "pending_new":
                o["state"] = "new"

    @rule(oid=order_ids, kind=st.sampled_from(["cancel", "reject"]))
    def cancel_or_reject(self, oid, kind):
        self._apply(kind, oid)
        o = self.orders[oid]
        if o["state"] in LIVE:
            o["state"] = "canceled" if kind == "cancel" else "rejected"
            o["leaves"] = 0
        else:
            self._anom("invalid_transition", oid)

    @rule(oid=order_ids, qty=st.integers(1, 12), duplicate=st.booleans())
    def fill(self, oid, qty, duplicate):
        o = self.orders[oid]
        if duplicate and self.trades:
            venue, tid = sorted(self.trades)[0]
            self._apply("fill", oid, qty=qty, price=100, tid=tid, side=o["side"], account=o["account"], venue=venue)
            self._anom("duplicate_trade_id", oid)
            return
        tid = self.next_tid
        self.next_tid += 1
        self.trades.add((o["venue"], tid))
        self._apply("fill", oid, qty=qty, price=100, tid=tid, side=o["side"], account=o["account"], venue=o["venue"])
        self.pos[o["account"], o["venue"]] += qty if o["side"] == 1 else -qty
        o["cum"] += qty
        state = o["state"]
        if state == "canceled":
            self._anom("fill_after_cancel", oid)
        elif state == "rejected":
            self._anom("fill_after_reject", oid)
        elif state == "filled":
            self._anom("overfill", oid)
        elif state == "refused":
            self._anom("invalid_transition", oid)
        else:
            if qty > o["leaves"]:
                self._anom("overfill", oid)
            o["leaves"] = max(0, o["leaves"] - qty)
            o["state"] = "filled" if o["cum"] >= o["qty"] else "partially_filled"

    @rule(qty=st.integers(1, 9), kind=st.sampled_from(["fill", "ack", "cancel"]))
    def unknown_order(self, qty, kind):
        oid = 10**6 + self.seq
        if kind == "fill":
            tid = self.next_tid
            self.next_tid += 1
            self.trades.add((2, tid))
            self._apply("fill", oid, qty=qty, price=100, tid=tid, side=2, account=2, venue=2)
            self.pos[2, 2] -= qty
            self._anom("unknown_order_fill", oid)
        else:
            self._apply(kind, oid)
            self._anom("unknown_order_event", oid)

    @invariant()
    def orders_match(self):
        for oid, o in self.orders.items():
            v = self.oms.order(oid)
            inst = self.oms.registry.instrument(1)
            assert (v.state, v.cum_qty, v.leaves_qty) == (o["state"], inst.qty_str(o["cum"]), inst.qty_str(o["leaves"])), oid
        assert sorted(v.order_id for v in self.oms.open_orders()) == sorted(k for k, o in self.orders.items() if o["state"] in LIVE)

    @invariant()
    def positions_match(self):
        b = self.oms.book
        for (a, v), qty in self.pos.items():
            assert b.vpos[a, v, 1] == qty
        np.testing.assert_array_equal(b.pos, b.vpos.sum(axis=1))
        for a in (1, 2):
            assert b.open_buy[a, 1] == sum(o["leaves"] for o in self.orders.values() if o["account"] == a and o["side"] == 1 and o["state"] in LIVE)

    @invariant()
    def anomalies_match(self):
        assert [(a.seq, a.kind, a.order_id) for a in self.oms.anomalies()] == self.anoms
        assert self.oms.applied_seq == self.seq


OmsMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=40, deadline=None)
TestOmsStateMachine = OmsMachine.TestCase

"""Pure checks: every refusal reason is reachable, precedence is declaration order, and
approvals re-check clean against state rebuilt at the gate's applied seq."""

from __future__ import annotations

import copy

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gate_support import T0, FakeProducer, FakeSubscriber, rec
from risk_gate import PRECEDENCE, FixedOrder, Gate, GateConfig, GateFold, LimitTable, RefuseReason, StreamView
from risk_gate.checks import BookView, check_order, reduces_position
from risk_gate.state import RateState, Reservations
from sequencer.codes import LimitType
from sequencer.protocol import Kind
from sequencer.registry import default_registry

REG = default_registry()
MS = 1_000_000
PX = 5_000_000  # 50,000.00 in BTC-USDT ticks
ALL_ON = dict(
    max_lag_events=5, max_hwm_age_ms=100, price_ttl_ms=1000, max_order_qty="1", max_order_notional="60000",
    max_position="2", max_gross_exposure="150000", max_open_orders=3, rate_per_sec=100, rate_per_min=1000,
    price_collar_bps=100,
)


class World:
    """A fold, a limit table, reservations and rate state: the inputs of ``check_order``."""

    def __init__(self, **limits):
        self.table = LimitTable(msgspec.convert({**ALL_ON, **limits}, GateConfig), REG)
        self.fold = GateFold(REG, self.table)
        self.view = BookView.from_book(self.fold.book, REG)
        self.view.order_known = self.fold.seen_ids.__contains__
        a, i, _ = self.fold.book.shape
        self.res = Reservations(a, i)
        self.rates = RateState(a)
        self.seq = 0

    def apply(self, *records, ts=T0):
        batch = np.concatenate(records)
        batch["seq"] = np.arange(self.seq + 1, self.seq + 1 + len(batch))
        batch["ts_ns"] = np.where(batch["ts_ns"] == 0, ts, batch["ts_ns"])
        self.seq += len(batch)
        self.fold.apply(batch)

    def stream(self, lag=0, age_ms=0, recovering=False, error=None):
        return StreamView(self.seq, self.seq + lag, T0 - age_ms * MS if True else 0, recovering, error)

    def check(self, order, lag=0, age_ms=0, now=T0, recovering=False, error=None, hwm_ts=None, invalid=None, collect=None):
        view = StreamView(self.seq, self.seq + lag, hwm_ts if hwm_ts is not None else now - age_ms * MS, recovering, error)
        return check_order(order, self.view, self.table, self.res, self.rates, view, now, invalid, collect)


def order(side=1, qty=5000, price=PX, oid=1, account=1, instrument=1, venue=1):
    return FixedOrder(account, instrument, venue, side, qty, price, oid)


def price_rec(px=PX, instrument=1, ts=T0):
    return rec(Kind.PRICE, instrument=instrument, price=px, ts_ns=ts)


@pytest.fixture
def world():
    w = World()
    w.apply(price_rec())
    return w


def test_check_when_everything_within_limits_then_approves(world):
    assert world.check(order()) == (None, "")


@pytest.mark.parametrize(
    ("reason", "setup", "kwargs", "the_order"),
    [
        (RefuseReason.STALE_SEQUENCE, None, {"lag": 6}, order()),
        (RefuseReason.STALE_HWM, None, {"age_ms": 101}, order()),
        (RefuseReason.STALE_HWM, None, {"hwm_ts": 0}, order()),
        (RefuseReason.RECOVERING, None, {"error": "epoch discontinuity"}, order()),
        (RefuseReason.RECOVERING, None, {"recovering": True, "lag": -1}, order()),
        (RefuseReason.STALE_PRICE, None, {"now": T0 + 1001 * MS, "hwm_ts": T0 + 1001 * MS}, order()),
        (RefuseReason.STALE_PRICE, None, {}, order(instrument=2, price=100)),
        (RefuseReason.INVALID_ORDER, None, {}, order(qty=0)),
        (RefuseReason.INVALID_ORDER, None, {}, order(account=9)),
        (RefuseReason.INVALID_ORDER, None, {"invalid": "qty: nan is not finite"}, order()),
        (RefuseReason.MAX_ORDER_QTY, None, {}, order(qty=10001)),
        (RefuseReason.MAX_ORDER_NOTIONAL, {"max_order_qty": "10"}, {}, order(qty=20000)),
        (RefuseReason.MAX_POSITION, "long", {}, order(qty=5000)),
        (RefuseReason.MAX_GROSS_EXPOSURE, {"max_gross_exposure": "20000"}, {}, order()),
        (RefuseReason.MAX_OPEN_ORDERS, "three_open", {}, order(oid=99)),
        (RefuseReason.RATE_LIMIT, {"rate_per_sec": 0}, {}, order()),
        (RefuseReason.PRICE_COLLAR, None, {}, order(price=PX * 102 // 100)),
        (RefuseReason.RESTRICTED, {"restricted_instruments": ["BTC-USDT"]}, {}, order()),
        (RefuseReason.DUPLICATE_ORDER_ID, "seen_id", {}, order(oid=7)),
        (RefuseReason.HALTED, "halt", {}, order()),
        (RefuseReason.REDUCE_ONLY, "reduce", {}, order()),
    ],
)
def test_check_when_condition_holds_then_refuses_with_its_reason(reason, setup, kwargs, the_order):
    w = World(**setup) if isinstance(setup, dict) else World()
    w.apply(price_rec())
    if setup == "long":
        w.apply(rec(Kind.POSITION_RESET, account=1, instrument=1, venue=1, qty=16000, price=PX))
    elif setup == "three_open":
        w.apply(*[rec(Kind.NEW_ORDER, account=1, instrument=1, venue=1, side=2, qty=1, price=PX, order_id=n) for n in (1, 2, 3)])
    elif setup == "seen_id":
        w.apply(rec(Kind.REFUSED, account=1, instrument=1, venue=1, side=1, qty=1, price=PX, order_id=7, code=406))
    elif setup == "halt":
        w.apply(rec(Kind.HALT, account=1, text="ops"))
    elif setup == "reduce":
        w.apply(rec(Kind.REDUCE_ONLY, instrument=1))
    got, detail = w.check(the_order, **kwargs)
    assert got is reason, detail
    assert detail


def test_check_when_reduce_only_and_order_reduces_then_approves(world):
    world.apply(rec(Kind.POSITION_RESET, account=1, instrument=1, venue=1, qty=8000, price=PX), rec(Kind.REDUCE_ONLY))
    assert world.check(order(side=2, qty=5000)) == (None, "")
    assert world.check(order(side=2, qty=9000, price=PX))[0] is RefuseReason.REDUCE_ONLY


def test_check_when_halt_resumed_then_approves_again(world):
    world.apply(rec(Kind.HALT))
    assert world.check(order())[0] is RefuseReason.HALTED
    world.apply(rec(Kind.RESUME))
    assert world.check(order()) == (None, "")


def test_check_when_limit_event_tightens_then_refuses_from_its_seq(world):
    assert world.check(order(qty=5000)) == (None, "")
    world.apply(rec(Kind.LIMIT, code=int(LimitType.MAX_ORDER_QTY), account=1, aux1=400_000))
    got, _ = world.check(order(qty=5000))
    assert got is RefuseReason.MAX_ORDER_QTY
    assert world.table.last_change_seq == world.seq


def test_check_when_reserved_locally_then_position_counts_worst_case(world):
    world.res.add(FixedOrder(1, 1, 1, 1, 15000, PX, 50))
    assert world.check(order(qty=5001))[0] is RefuseReason.MAX_POSITION
    assert world.check(order(qty=5000)) == (None, "")
    assert world.check(order(oid=50))[0] is RefuseReason.DUPLICATE_ORDER_ID


def test_check_when_market_order_then_uses_reference_price(world):
    assert world.check(order(price=0)) == (None, "")
    assert world.check(order(price=0, instrument=2))[0] is RefuseReason.STALE_PRICE


def test_check_when_budget_zero_then_only_fully_current_state_approves():
    w = World(max_lag_events=0)
    w.apply(price_rec())
    assert w.check(order(), lag=0) == (None, "")
    assert w.check(order(), lag=1)[0] is RefuseReason.STALE_SEQUENCE


def test_check_when_account_budget_set_then_it_overrides_global():
    w = World(accounts={"acct-2": {"max_lag_events": 50}})
    w.apply(price_rec())
    assert w.check(order(account=2), lag=20) == (None, "")
    assert w.check(order(account=1), lag=20)[0] is RefuseReason.STALE_SEQUENCE


def test_reduces_position_when_flipping_then_false():
    assert reduces_position(1, 5, -5, 0)
    assert not reduces_position(1, 6, -5, 0)
    assert not reduces_position(1, 3, -5, 3)
    assert reduces_position(2, 5, 5, 0)
    assert not reduces_position(2, 1, 0, 0)


def test_check_when_every_reason_applies_then_staleness_is_reported_first():
    w = World(restricted_instruments=["BTC-USDT"], rate_per_sec=0)
    w.apply(price_rec(), rec(Kind.HALT))
    collect: list = []
    got = w.check(order(qty=10**9, price=PX * 2), lag=99, age_ms=500, error="x", collect=collect)
    reasons = [r for r, _ in collect]
    assert got[0] is RefuseReason.STALE_SEQUENCE
    assert reasons == sorted(reasons, key=PRECEDENCE.index)
    assert {RefuseReason.STALE_HWM, RefuseReason.RECOVERING, RefuseReason.MAX_ORDER_QTY, RefuseReason.RESTRICTED,
            RefuseReason.HALTED, RefuseReason.RATE_LIMIT, RefuseReason.PRICE_COLLAR} <= set(reasons)


_orders = st.builds(
    order,
    side=st.sampled_from([1, 2]),
    qty=st.integers(1, 12000),
    price=st.sampled_from([0, PX, PX + 30000, PX - 80000, PX * 11 // 10]),
    account=st.sampled_from([1, 2]),
    instrument=st.sampled_from([1, 2]),
    venue=st.just(1),
)


@st.composite
def _events(draw):
    kind = draw(st.sampled_from(["price", "new", "fill", "reset", "halt", "resume", "reduce", "limit", "cancel"]))
    a = draw(st.sampled_from([1, 2]))
    i = draw(st.sampled_from([1, 2]))
    oid = draw(st.integers(10_000, 10_050))
    if kind == "price":
        return rec(Kind.PRICE, instrument=i, price=draw(st.sampled_from([PX, PX + 50_000, 300_000])))
    if kind == "new":
        return rec(Kind.NEW_ORDER, account=a, instrument=i, venue=1, side=draw(st.sampled_from([1, 2])), qty=draw(st.integers(1, 9000)), price=PX, order_id=oid)
    if kind == "fill":
        return rec(Kind.FILL, account=a, instrument=i, venue=1, side=draw(st.sampled_from([1, 2])), qty=draw(st.integers(1, 5000)), price=PX, order_id=oid, aux1=draw(st.integers(1, 10**6)))
    if kind == "cancel":
        return rec(Kind.CANCEL, order_id=oid)
    if kind == "reset":
        return rec(Kind.POSITION_RESET, account=a, instrument=i, venue=1, qty=draw(st.integers(-20000, 20000)), price=PX)
    if kind == "limit":
        lt = draw(st.sampled_from([LimitType.MAX_ORDER_QTY, LimitType.MAX_POSITION, LimitType.MAX_OPEN_ORDERS, LimitType.MAX_LAG_EVENTS]))
        return rec(Kind.LIMIT, code=int(lt), account=draw(st.sampled_from([0, a])), aux1=draw(st.integers(0, 3)) * 1_000_000)
    scope = draw(st.sampled_from([{}, {"account": a}, {"instrument": i}]))
    return rec({"halt": Kind.HALT, "resume": Kind.RESUME, "reduce": Kind.REDUCE_ONLY}[kind], **scope)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(
        st.tuples(st.lists(_events(), max_size=4), st.integers(0, 6), st.integers(0, 120), _orders, st.integers(0, 2)),
        min_size=1, max_size=12,
    )
)
def test_gate_when_random_streams_then_approvals_recheck_clean_at_applied_seq(steps):
    cfg = GateConfig(**ALL_ON)
    gate = Gate(limits=cfg, registry=REG, subscriber=None or _sub_for(cfg), producer=FakeProducer())
    sub = gate.subscriber
    stream: list[np.ndarray] = [sub.push([price_rec(), price_rec(px=300_000, instrument=2)], heartbeat=False)]
    next_oid = 1
    for events, lag, age_ms, o, drop in steps:
        if events:
            stream.append(sub.push(events, heartbeat=False))
        # the gate sees only part of what exists: `drop` batches stay in flight
        in_flight = sub.pending[len(sub.pending) - min(drop, len(sub.pending)):]
        sub.pending = sub.pending[: len(sub.pending) - len(in_flight)]
        sub.heartbeat(sub.next_seq - 1 + lag, T0)
        now = T0 + age_ms * MS
        gate._clock = lambda now=now: now
        res_before = copy.deepcopy(gate.reservations)
        rates_before = copy.deepcopy(gate.rates)
        o = o._replace(order_id=next_oid)
        next_oid += 1
        d = gate.check(o)
        sub.pending = in_flight + sub.pending
        event(f"approved={d.approved}")
        if not d.approved:
            continue
        budget, max_age = gate.table.budgets(o.account)
        assert d.lag <= budget
        assert d.hwm_age_ms * MS <= max_age
        # re-check against state rebuilt from the stream up to the gate's applied seq
        table = LimitTable(cfg, REG)
        fold = GateFold(REG, table)
        everything = np.concatenate(stream) if stream else None
        if everything is not None and d.applied_seq:
            fold.apply(everything[: d.applied_seq])
        assert fold.applied_seq == d.applied_seq
        bv = BookView.from_book(fold.book, REG)
        bv.order_known = fold.seen_ids.__contains__
        view = StreamView(d.applied_seq, d.hwm, T0, False, None)
        assert check_order(o, bv, table, res_before, rates_before, view, now) == (None, "")


def _sub_for(cfg):
    return _LazySub()


class _LazySub(FakeSubscriber):
    """A FakeSubscriber whose fold is bound by the Gate after construction."""

    def __init__(self):
        super().__init__(None)


@pytest.fixture(autouse=True)
def _bind_lazy_sub(monkeypatch):
    orig = Gate.__init__

    def init(self, *a, **kw):
        orig(self, *a, **kw)
        if isinstance(self.subscriber, _LazySub):
            self.subscriber.fold = self.fold

    monkeypatch.setattr(Gate, "__init__", init)

"""The compiled check kernel against its reference, ``check_order``: same verdict, same state
changes, on random Books, reservations, rate buckets, limits, stream views and orders; and
two gates (kernel on / off) fed the same stream make the same decisions."""

from __future__ import annotations

import copy
import time

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gate_support import T0, FakeProducer, FakeSubscriber, rec
from risk_gate import FixedOrder, Gate, GateConfig, RefuseReason
from consumers.quiet import (
    NOT_QUIET, Q_FILE, Q_FROM, Q_GEN, Q_HWM, Q_HWM_TS, Q_STREAM, Q_UNTIL, STREAM_ERROR, STREAM_RECOVERING, new_quiet_state,
)
from risk_gate.fastpath import KernelCheck, compiled_decide_quiet
from risk_gate import kernel_clock
from risk_gate.kernel import FALLBACK, LAST_CODE, NEED_LIMITS, NEED_POLL
from sequencer.codes import LimitType
from sequencer.protocol import Kind
from test_checks import ALL_ON, MS, PX, World, _events, price_rec

_BIG = 1 << 61

_limits = st.fixed_dictionaries(
    {},
    optional={
        "max_lag_events": st.integers(0, 5),
        "max_order_qty": st.sampled_from(["0.5", "1", "2"]),
        "max_order_notional": st.sampled_from(["100", "60000", "1e12"]),
        "max_position": st.sampled_from(["0", "1", "2", "5"]),
        "max_gross_exposure": st.sampled_from(["0", "30000", "150000", "1e13"]),
        "max_open_orders": st.integers(0, 5),
        "rate_per_sec": st.sampled_from([0, 1, 2, 100]),
        "rate_per_min": st.sampled_from([0, 3, 1000]),
        "price_collar_bps": st.sampled_from([0, 10, 100, 10_000]),
        "price_ttl_ms": st.sampled_from([1, 1000, 100_000]),
    },
)

_valid_orders = st.builds(
    FixedOrder,
    account=st.sampled_from([1, 2]),
    instrument=st.sampled_from([1, 1, 2, 3]),
    venue=st.just(1),
    side=st.sampled_from([1, 2]),
    qty=st.one_of(st.integers(1, 1200), st.integers(1, 12000), st.sampled_from([1000, 1001, 10000, 10001, 20000])),
    price=st.sampled_from([0, 1000, 1005, 984, 1100, 10000]),  # per mille of the reference price
    order_id=st.integers(1, 40),
)
_odd_orders = st.builds(
    FixedOrder,
    account=st.sampled_from([0, 1, 9]),
    instrument=st.sampled_from([1, 0, 50]),
    venue=st.sampled_from([1, 0]),
    side=st.sampled_from([1, 2, 3]),
    qty=st.sampled_from([1, 0, -1, _BIG, 1 << 62]),
    price=st.sampled_from([0, PX, -5, _BIG]),
    order_id=st.integers(0, 40),
)
# One order in five is odd (unknown ids, bad side, values beyond the kernel's range).
_kernel_orders = st.tuples(st.integers(0, 4), _valid_orders, _odd_orders).map(lambda t: t[2] if t[0] == 0 else t[1])

_steps = st.lists(
    st.tuples(
        st.lists(_events(), max_size=4),
        st.sampled_from(["add", "release", "take", "limit", "none", "none"]),
        st.integers(1, 3),  # instrument of the reservation / limit change
        st.integers(1, 9000),  # reserved qty
        st.integers(0, 1100),  # now offset in ms
        st.sampled_from([0] * 12 + [1, 3, -1, 7]),  # lag (-1: HWM behind the applied seq)
        st.sampled_from([0] * 12 + [5, 150]),  # HWM age in ms
        st.sampled_from([(False, None)] * 12 + [(True, None), (False, "epoch discontinuity")]),
        _kernel_orders,
    ),
    min_size=1,
    max_size=12,
)


def _arrays(w: World) -> dict[str, np.ndarray]:
    r, t = w.res, w.rates
    return {"buy": r.buy, "sell": r.sell, "count": r.count, "sec": t.sec, "min": t.min, "last": t.last_ns}


def _decide(kc: KernelCheck, o: FixedOrder, now: int, view: tuple, dup: bool) -> int:
    applied, hwm, hwm_ts, recovering, error = view
    flags = (1 if recovering else 0) | (2 if error is not None else 0) | (4 if dup else 0)
    args = (o, now, applied, hwm, hwm_ts, flags)
    code = kc.decide(kc.meta_address, *args)
    if code == NEED_LIMITS:
        assert kc.load(o.account) or o.account in kc.fallback_accounts
        code = kc.decide(kc.meta_address, *args)
    return code


def _world(limits: dict) -> tuple[World, KernelCheck]:
    """A World with reference prices on instruments 1-3, and a KernelCheck on it."""
    w = World(**limits)
    w.apply(price_rec(), price_rec(px=300_000, instrument=2), price_rec(px=100_000, instrument=3))
    return w, KernelCheck(w.fold.book, w.fold.registry, w.table, w.res, w.rates)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(limits=_limits, steps=_steps)
def test_kernel_when_random_state_and_order_then_same_verdict_and_state_as_reference(limits, steps):
    w, kc = _world(limits)
    oid = 1000
    for events, action, inst, qty, now_ms, lag, age_ms, (recovering, error), o in steps:
        if events:
            w.apply(*events, ts=T0 + now_ms * MS // 2)
        now = T0 + now_ms * MS
        if action == "add":
            w.res.add(FixedOrder(o.account if o.account in (1, 2) else 1, inst, 1, 1 + qty % 2, qty, PX, oid))
            oid += 1
        elif action == "release" and w.res.by_id:
            w.res.release(next(iter(w.res.by_id)))
        elif action == "take":
            w.rates.take(1, now - MS, 2.0, 3.0)
        elif action == "limit":
            w.table.set(LimitType.MAX_POSITION, 1, inst, qty * 1000)
        if o.account in (1, 2) and o.instrument in (1, 2, 3) and 0 < o.price < 20000:
            o = o._replace(price=int(w.fold.book.ref_px[o.instrument]) * o.price // 1000)
        view = (w.seq, w.seq + lag, now - age_ms * MS, recovering, error)
        res_ref, rates_ref = copy.deepcopy(w.res), copy.deepcopy(w.rates)
        ref_reason, _detail = _reference(w, o, view, now, res_ref, rates_ref)
        before = {k: v.copy() for k, v in _arrays(w).items()}
        taken = set(w.res.by_id) | w.fold.seen_ids
        kc.ids.reset(taken)
        # The kernel finds a taken id in its own set; the flag (the full path's) is passed on every other step.
        dup = o.order_id in taken and now_ms % 2 == 1
        code = _decide(kc, o, now, view, dup)
        event(f"kernel verdict {code}")
        if code == FALLBACK:
            for name, arr in _arrays(w).items():
                assert np.array_equal(arr, before[name], equal_nan=True), name
            assert set(kc.ids) == taken
            continue
        assert code == (0 if ref_reason is None else int(ref_reason)), (code, ref_reason, _detail)
        assert set(kc.ids) == (taken | {o.order_id} if code == 0 else taken)
        if code == 0:
            w.res.by_id[o.order_id] = o
        for name, arr in _arrays(w).items():
            want = {"buy": res_ref.buy, "sell": res_ref.sell, "count": res_ref.count, "sec": rates_ref.sec,
                    "min": rates_ref.min, "last": rates_ref.last_ns}[name]
            assert np.array_equal(arr, want, equal_nan=True), name
        w.res.by_id = dict(res_ref.by_id)


def _reference(w: World, o: FixedOrder, view: tuple, now: int, res, rates):
    """check_order on copies, then what the gate does on approval (rate tokens, reservation)."""
    from risk_gate.checks import StreamView, check_order

    reason, detail = check_order(o, w.view, w.table, res, rates, StreamView(*view), now)
    if reason is None:
        r = w.table.resolved(o.account, o.instrument)
        if r.rate_per_sec >= 0 or r.rate_per_min >= 0:
            rates.take(o.account, now, r.rate_per_sec, r.rate_per_min)
        res.add(o)
    return reason, detail


class _Sub(FakeSubscriber):
    def __init__(self) -> None:
        super().__init__(None)


def _gate(kernel: bool, cfg: GateConfig, clock: list[int], producer: bool = True, **kw) -> Gate:
    sub = _Sub()
    gate = Gate(limits=cfg, subscriber=sub, producer=FakeProducer() if producer else None, clock=lambda: clock[0], kernel=kernel, **kw)
    sub.fold = gate.fold
    return gate


_gate_orders = st.builds(
    FixedOrder,
    account=st.sampled_from([1, 2]),
    instrument=st.sampled_from([1, 2]),
    venue=st.just(1),
    side=st.sampled_from([1, 2]),
    qty=st.one_of(st.integers(1, 12000), st.sampled_from([0, 1.5, "3"])),
    price=st.sampled_from([0, PX, PX + 30000, PX * 11 // 10, 2.5]),
    order_id=st.integers(1, 30),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(
        st.tuples(st.lists(_events(), max_size=3), st.integers(0, 4), st.integers(0, 400), _gate_orders),
        min_size=1, max_size=15,
    )
)
def test_check_when_kernel_on_or_off_then_same_decisions_and_records(steps):
    cfg = msgspec.convert({**ALL_ON, "max_order_qty": "2", "max_position": "3"}, GateConfig)
    clock = [T0]
    # Kernel (full path), reference, and two gates on check()'s fast path (no producer;
    # approvals not published, refusals published).
    gates = [_gate(True, cfg, clock), _gate(False, cfg, clock), _gate(True, cfg, clock, producer=False),
             _gate(True, cfg, clock, publish_approvals=False)]
    assert [g._lean for g in gates] == [False, False, True, True]
    for g in gates:
        g.subscriber.push([price_rec(), price_rec(px=300_000, instrument=2)])
    for events, lag, now_ms, o in steps:
        clock[0] = T0 + now_ms * MS
        decisions = []
        for g in gates:
            if events:
                g.subscriber.push(events, ts_ns=clock[0] - MS)
            g.subscriber.heartbeat(g.subscriber.next_seq - 1 + lag, clock[0])
            decisions.append(g.check(o))
        event(f"gate decision {decisions[0].reason}")
        assert decisions[1:] == decisions[:1] * 3
        for g in (gates[0], gates[2], gates[3]):  # the kernel's taken ids: the stream's and the reserved
            assert set(g._kernel.ids) == {i for i in g.fold.seen_ids | g.reservations.by_id.keys() if i > 0}
    fast, ref, _none, lean = (g.producer.records if g.producer else None for g in gates)
    assert len(fast) == len(ref)
    for a, b in zip(fast, ref):
        assert a.tobytes() == b.tobytes()
    refused = fast[fast["kind"] == Kind.REFUSED].copy()
    lean = lean.copy()
    refused["producer_seq"] = lean["producer_seq"] = 0  # the lean gate numbers only its refusals
    assert len(lean) == len(refused) and all(a.tobytes() == b.tobytes() for a, b in zip(lean, refused))
    for g in gates[1:]:
        assert np.array_equal(gates[0].reservations.buy, g.reservations.buy)
        assert np.array_equal(gates[0].reservations.sell, g.reservations.sell)
        assert np.array_equal(gates[0].rates.sec, g.rates.sec)
        assert gates[0].reservations.by_id == g.reservations.by_id
        assert g.counts["approved"] == gates[0].counts["approved"] and g.counts["refused"] == gates[0].counts["refused"]


def _boundary_world(setup: str) -> World:
    w = World()
    w.apply(price_rec(), price_rec(px=300_000, instrument=2))
    if setup == "reduce_long":
        w.apply(rec(Kind.POSITION_RESET, account=1, instrument=1, venue=1, qty=8000, price=PX), rec(Kind.REDUCE_ONLY, instrument=1))
        w.apply(rec(Kind.NEW_ORDER, account=1, instrument=1, venue=1, side=2, qty=3000, price=PX, order_id=500))
    elif setup == "long":
        w.apply(rec(Kind.POSITION_RESET, account=1, instrument=1, venue=1, qty=15000, price=PX))
    return w


@pytest.mark.parametrize(
    ("setup", "the_order"),
    [
        ("", FixedOrder(1, 1, 1, 1, 10000, PX, 1)),  # qty == max_order_qty
        ("", FixedOrder(1, 1, 1, 1, 10001, PX, 1)),
        ("long", FixedOrder(1, 1, 1, 1, 5000, PX, 1)),  # worst-case position == max_position
        ("long", FixedOrder(1, 1, 1, 1, 5001, PX, 1)),
        ("", FixedOrder(1, 1, 1, 1, 1, PX * 101 // 100, 1)),  # price exactly at the 100 bps collar
        ("", FixedOrder(1, 1, 1, 2, 1, PX * 99 // 100 - 1, 1)),
        ("reduce_long", FixedOrder(1, 1, 1, 2, 5000, PX, 1)),  # working 3000 + 5000 == position 8000
        ("reduce_long", FixedOrder(1, 1, 1, 2, 5001, PX, 1)),
        ("reduce_long", FixedOrder(1, 1, 1, 1, 1, PX, 1)),
    ],
)
def test_kernel_when_order_at_a_limit_boundary_then_same_verdict_as_reference(setup, the_order):
    w = _boundary_world(setup)
    kc = KernelCheck(w.fold.book, w.fold.registry, w.table, w.res, w.rates)
    view = (w.seq, w.seq, T0, False, None)
    reason, detail = _reference(w, the_order, view, T0, copy.deepcopy(w.res), copy.deepcopy(w.rates))
    assert _decide(kc, the_order, T0, view, False) == (0 if reason is None else int(reason)), detail


def test_kernel_when_gate_fold_restored_from_snapshot_then_decides_on_restored_state(tmp_path):
    cfg = msgspec.convert({**ALL_ON, "max_position": "2"}, GateConfig)
    clock = [T0]
    first = _gate(True, cfg, clock)
    first.subscriber.push([price_rec(), rec(Kind.POSITION_RESET, account=1, instrument=1, venue=1, qty=19000, price=PX)])
    first.poll()
    first.fold.snapshot(tmp_path / "gate.snap")
    second = _gate(True, cfg, clock)
    book_arrays = {name: id(arr) for name, arr in second._kernel.arrays.items()}
    second.fold.restore(tmp_path / "gate.snap")
    second.subscriber.next_seq = second.fold.applied_seq + 1
    second.subscriber.heartbeat(second.fold.applied_seq, T0)
    assert {name: id(arr) for name, arr in second._kernel.arrays.items()} == book_arrays
    assert int(second.book.pos[1, 1]) == 19000
    assert second.check(FixedOrder(1, 1, 1, 1, 1001, PX, 77)).reason is RefuseReason.MAX_POSITION
    assert second.check(FixedOrder(1, 1, 1, 1, 1000, PX, 78)).approved


def test_check_when_gate_fold_restored_then_stream_and_reserved_ids_stay_taken(tmp_path):
    cfg = msgspec.convert(ALL_ON, GateConfig)
    clock = [T0]
    first = _gate(True, cfg, clock)
    first.subscriber.push([price_rec(), rec(Kind.NEW_ORDER, account=1, instrument=1, venue=1, side=1, qty=1, price=PX, order_id=55)])
    first.poll()
    first.fold.snapshot(tmp_path / "gate.snap")
    second = _gate(True, cfg, clock, publish_approvals=False)
    second.subscriber.push([price_rec()])
    assert second.check(FixedOrder(1, 1, 1, 1, 1, PX, 60)).approved  # reserved, not on the stream
    second.fold.restore(tmp_path / "gate.snap")
    second.subscriber.next_seq = second.fold.applied_seq + 1
    second.subscriber.heartbeat(second.fold.applied_seq, T0)
    assert set(second._kernel.ids) == {55, 60}
    for oid in (55, 60):
        assert second.check(FixedOrder(1, 1, 1, 1, 1, PX, oid)).reason is RefuseReason.DUPLICATE_ORDER_ID
    assert second.check(FixedOrder(1, 1, 1, 1, 1, PX, 61)).approved


@pytest.mark.parametrize("later_s", [0, 10, 19, 21, 60])
def test_kernel_when_minute_bucket_refills_then_same_verdict_and_tokens_as_reference(later_s):
    w = World(rate_per_min=3, price_ttl_ms=100_000, max_open_orders=100, max_position="100")
    w.apply(price_rec())
    kc = KernelCheck(w.fold.book, w.fold.registry, w.table, w.res, w.rates)
    for n in range(3):
        assert _decide(kc, FixedOrder(1, 1, 1, 1, 1, PX, n + 1), T0, (w.seq, w.seq, T0, False, None), False) == 0
    now = T0 + later_s * 1_000_000_000
    the_order = FixedOrder(1, 1, 1, 1, 1, PX, 9)
    view = (w.seq, w.seq, now, False, None)
    rates_ref = copy.deepcopy(w.rates)
    reason, detail = _reference(w, the_order, view, now, copy.deepcopy(w.res), rates_ref)
    assert _decide(kc, the_order, now, view, False) == (0 if reason is None else int(reason)), detail
    assert np.array_equal(w.rates.min, rates_ref.min)


@pytest.mark.parametrize("qty", [1, (1 << 31) - 1, 1 << 31, 1 << 40, (1 << 59) + 7])
@pytest.mark.parametrize("px_scale", [1, 1 << 20, 1 << 33])
def test_kernel_when_products_near_int64_then_reference_verdict_or_fallback(qty, px_scale):
    """Quantities and prices on both sides of 2**31 (where the overflow tests start dividing)."""
    huge = "1e14"
    w = World(max_order_qty=huge, max_order_notional="1e12", max_position=huge, max_gross_exposure="1e30", price_collar_bps=10_000)
    ref_px = PX * px_scale
    w.apply(rec(Kind.PRICE, instrument=1, price=ref_px), rec(Kind.POSITION_RESET, account=1, instrument=1, venue=1, qty=qty, price=ref_px))
    kc = KernelCheck(w.fold.book, w.fold.registry, w.table, w.res, w.rates)
    for the_order in (FixedOrder(1, 1, 1, 1, qty, ref_px, 1), FixedOrder(1, 1, 1, 2, qty, 0, 2), FixedOrder(1, 1, 1, 1, 1, ref_px * 2, 3)):
        view = (w.seq, w.seq, T0, False, None)
        reason, detail = _reference(w, the_order, view, T0, copy.deepcopy(w.res), copy.deepcopy(w.rates))
        code = _decide(kc, the_order, T0, view, False)
        assert code == FALLBACK or code == (0 if reason is None else int(reason)), (code, reason, detail)
        if qty < 1 << 31 and ref_px < 1 << 31:
            assert code != FALLBACK  # small values never need the reference


def _wall_clock_gate(cfg: GateConfig) -> Gate:
    sub = _Sub()
    gate = Gate(limits=cfg, subscriber=sub, producer=None, kernel=True)  # the default clock, time.time_ns
    sub.fold = gate.fold
    now = time.time_ns()
    sub.push([price_rec(ts=now), price_rec(px=300_000, instrument=2, ts=now)], ts_ns=now)
    return gate


def test_check_when_default_clock_then_kernel_reads_wall_clock_and_decision_carries_it():
    gate = _wall_clock_gate(msgspec.convert(ALL_ON, GateConfig))
    assert gate._lean and gate._clock is time.time_ns and kernel_clock.AVAILABLE
    before = time.time_ns()
    d = gate.check(FixedOrder(1, 1, 1, 1, 1, PX, 1))
    after = time.time_ns()
    assert d.approved and before <= d.checked_ns <= after
    # A stale heartbeat is judged against the wall clock read in the kernel (refusal: the full path says why).
    gate.subscriber.heartbeat(gate.subscriber.next_seq - 1, time.time_ns() - 10 * 60 * 10**9)
    d = gate.check(FixedOrder(1, 1, 1, 1, 1, PX, 2))
    assert d.reason is RefuseReason.STALE_HWM and d.checked_ns >= after


def test_decide_when_now_is_zero_then_reads_clock_and_returns_the_time_only_for_an_approval():
    w = World(max_hwm_age_ms=60_000, price_ttl_ms=10**9)
    now = time.time_ns()
    w.apply(price_rec(ts=now), price_rec(px=300_000, instrument=2, ts=now), price_rec(px=100_000, instrument=3, ts=now), ts=now)
    kc = KernelCheck(w.fold.book, w.fold.registry, w.table, w.res, w.rates)
    assert kc.load(1)
    before = time.time_ns()
    got = kc.decide(kc.meta_address, FixedOrder(1, 1, 1, 1, 1, PX, 5), 0, w.seq, w.seq, before, 0)
    assert LAST_CODE < before <= got <= time.time_ns()
    # The same order id again: a refusal code, not a time.
    assert kc.decide(kc.meta_address, FixedOrder(1, 1, 1, 1, 1, PX, 5), 0, w.seq, w.seq, before, 0) == int(RefuseReason.DUPLICATE_ORDER_ID)
    # A time given by the caller is used, and an approval is 0 as before.
    assert kc.decide(kc.meta_address, FixedOrder(1, 1, 1, 1, 1, PX, 6), before, w.seq, w.seq, before, 0) == 0


def _quiet_state(kc: KernelCheck, view: tuple, now: int) -> tuple[np.ndarray, np.ndarray]:
    """A quiet state for ``view`` (a subscriber that is quiet at ``now``), watched by ``kc``."""
    _applied, hwm, hwm_ts, recovering, error = view
    word = np.array([6], np.int64)  # the HWM file's generation
    state = new_quiet_state()
    state[[Q_FILE, Q_GEN, Q_FROM, Q_UNTIL, Q_HWM, Q_HWM_TS]] = (word.ctypes.data, 6, now - 1, now + 1, hwm, hwm_ts)
    state[Q_STREAM] = (STREAM_RECOVERING if recovering else 0) | (0 if error is None else STREAM_ERROR)
    assert kc.watch_quiet(state)
    return state, word


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(limits=_limits, steps=_steps)
def test_decide_quiet_when_random_state_then_same_verdict_and_state_as_decide_with_the_gates_arguments(limits, steps):
    w, kc = _world(limits)
    decide_quiet = compiled_decide_quiet()
    for events, _action, _inst, _qty, now_ms, lag, age_ms, (recovering, error), o in steps:
        if events:
            w.apply(*events, ts=T0 + now_ms * MS // 2)
        now = T0 + now_ms * MS
        view = (w.seq, w.seq + lag, now - age_ms * MS, recovering, error)
        state, word = _quiet_state(kc, view, now)
        # What Gate.check passes decide after a poll: the HWM raised to the applied seq, and
        # "recovering" only while the lag is unknown.
        hwm = max(view[1], w.seq)
        flags = (2 if error is not None else 0) | (1 if recovering and (hwm > w.seq or not view[2]) else 0)
        taken = set(w.res.by_id) | w.fold.seen_ids
        before = {k: v.copy() for k, v in _arrays(w).items()}
        kc.ids.reset(taken)
        kc.load(o.account) if o.account in (1, 2) else None
        got = decide_quiet(kc.meta_address, o, now)
        after_quiet = {k: v.copy() for k, v in _arrays(w).items()}
        ids_quiet = set(kc.ids)
        for name, arr in _arrays(w).items():
            arr[...] = before[name]
        kc.ids.reset(taken)
        want = kc.decide(kc.meta_address, o, now, w.seq, hwm, view[2], flags)
        assert got == want, (got, want, view)
        assert set(kc.ids) == ids_quiet
        for name, arr in _arrays(w).items():
            assert np.array_equal(arr, after_quiet[name], equal_nan=True), name
        word[0] = 8  # the file moved on: no longer quiet
        assert decide_quiet(kc.meta_address, o, now) == NEED_POLL
        state[Q_GEN] = NOT_QUIET
        assert decide_quiet(kc.meta_address, o, now) == NEED_POLL
        for name, arr in _arrays(w).items():
            arr[...] = after_quiet[name]
        if got == 0:
            w.res.by_id[o.order_id] = o

"""The Gate class in-process: conversion, audit-trail records, reservations, fail closed."""

from __future__ import annotations

import json
from pathlib import Path
from decimal import Decimal
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gate_support import T0, FakeProducer, FakeSubscriber, rec
from risk_gate import FixedOrder, Gate, GateConfig, Order, RefuseReason
from risk_gate.limits import LimitType
from risk_gate.reasons import truncate_detail
from sequencer.protocol import Kind
from sequencer.registry import default_registry

REG = default_registry()
PX = 5_000_000


class _Sub(FakeSubscriber):
    def __init__(self):
        super().__init__(None)


def make_gate(tmp_path=None, producer=None, kernel=True, **cfg) -> Gate:
    sub = _Sub()
    gate = Gate(limits=GateConfig(**cfg), registry=REG, subscriber=sub, producer=producer or FakeProducer(), clock=lambda: T0,
                decision_log=(tmp_path / "decisions.jsonl") if tmp_path else None, kernel=kernel)
    sub.fold = gate.fold
    sub.push([rec(Kind.PRICE, instrument=1, price=PX), rec(Kind.PRICE, instrument=2, price=300_000)])
    return gate


def btc(qty="0.5", price="50000.00", oid=1, **kw) -> Order:
    return Order(kw.pop("account", "acct-1"), kw.pop("instrument", "BTC-USDT"), "sim-1", kw.pop("side", "buy"), qty, price, oid)


def test_check_when_decimal_order_within_limits_then_approves_and_publishes_new_order():
    gate = make_gate(max_order_qty="1")
    d = gate.check(btc())
    assert d.approved and d.reason is None and d.applied_seq == 2 and d.hwm == 2 and d.lag == 0
    (r,) = gate.producer.records
    assert int(r["kind"]) == Kind.NEW_ORDER and int(r["order_id"]) == 1
    assert (int(r["qty"]), int(r["price"]), int(r["aux1"]), int(r["aux2"])) == (5000, PX, 2, 2)
    assert 1 in gate.reservations


@pytest.mark.parametrize(
    ("order", "field"),
    [
        (btc(qty="nan"), "qty"),
        (btc(qty=float("nan")), "qty"),
        (btc(qty="-1"), "qty"),
        (btc(qty="0.00001"), "qty"),
        (btc(price="50000.001"), "price"),
        (btc(price=0), "price"),
        (btc(account="nobody"), "account"),
        (btc(instrument="XRP"), "instrument"),
        (btc(side="hold"), "side"),
        (btc(oid=0), "order_id"),
    ],
)
def test_check_when_order_invalid_then_refuses_invalid_order_naming_field(order, field):
    gate = make_gate()
    d = gate.check(order)
    assert d.reason is RefuseReason.INVALID_ORDER
    assert d.detail.startswith(field), d.detail


def test_check_when_inputs_are_decimal_int_float_then_same_fixed_point():
    gate = make_gate()
    ds = [gate.check(btc(qty=q, price=p, oid=n)) for n, (q, p) in enumerate(
        [("1", "50000"), (Decimal("1"), Decimal("50000.00")), (1, 50000), (1.0, 50000.0)], start=1)]
    assert all(d.approved for d in ds)
    recs = gate.producer.records
    assert set(recs["qty"].tolist()) == {10000} and set(recs["price"].tolist()) == {PX}


def test_check_when_refused_then_publishes_refused_record_with_reason_and_truncated_detail():
    gate = make_gate(max_order_qty="0.1")
    d = gate.check(btc(qty="0.5"))
    assert d.reason is RefuseReason.MAX_ORDER_QTY
    (r,) = gate.producer.records
    assert int(r["kind"]) == Kind.REFUSED and int(r["code"]) == RefuseReason.MAX_ORDER_QTY
    assert bytes(r["text"]).rstrip(b"\0").decode() == truncate_detail(d.detail).decode()
    assert 1 not in gate.reservations


def test_check_when_publish_refusals_off_then_nothing_published():
    gate = make_gate(max_order_qty="0.1", publish_refusals=False)
    assert not gate.check(btc()).approved
    assert len(gate.producer.records) == 0


def test_truncate_detail_when_multibyte_at_boundary_then_cut_on_character():
    text = "é" * 30  # 60 bytes
    cut = truncate_detail(text)
    assert len(cut) == 40 and cut.decode() == "é" * 20
    assert truncate_detail("x" + "€" * 20).decode() == "x" + "€" * 13  # 1 + 13 * 3 = 40 bytes exactly
    assert truncate_detail("xy" + "€" * 20).decode() == "xy" + "€" * 12  # the 13th would end at byte 41


def test_check_when_own_new_order_comes_back_then_reservation_released():
    gate = make_gate(max_position="1")
    assert gate.check(btc(qty="0.6", oid=1)).approved
    assert gate.check(btc(qty="0.6", oid=2)).reason is RefuseReason.MAX_POSITION
    sent = gate.producer.records[0:1].copy()
    gate.subscriber.push([sent])
    assert gate.check(btc(qty="0.3", oid=3)).approved  # poll applied it: now open, not reserved
    assert 1 not in gate.reservations and 3 in gate.reservations
    assert int(gate.book.open_buy[1, 1]) == 6000
    # A released reservation is still an approval given (counts derive from reservations).
    assert (gate.counts["approved"], gate.counts["refused"]) == (2, 1)


def test_check_when_order_id_reused_then_duplicate():
    gate = make_gate()
    assert gate.check(btc(oid=5)).approved
    assert gate.check(btc(oid=5)).reason is RefuseReason.DUPLICATE_ORDER_ID


@pytest.mark.parametrize("kernel", [True, False])
def test_check_when_a_check_raises_then_refuses_internal_error(monkeypatch, kernel):
    gate = make_gate(kernel=kernel)

    def boom(*a, **k):
        raise RuntimeError("injected")

    if kernel:
        gate._kernel.decide = boom
    else:
        monkeypatch.setattr("risk_gate.gate.check_order", boom)
    d = gate.check(btc())
    assert not d.approved and d.reason is RefuseReason.INTERNAL_ERROR and "injected" in d.detail
    assert len(gate.reservations) == 0
    (r,) = gate.producer.records
    assert int(r["code"]) == RefuseReason.INTERNAL_ERROR


def test_check_when_subscriber_poll_raises_then_refuses_internal_error():
    gate = make_gate()
    gate.subscriber.poll = lambda n=0: 1 / 0
    d = gate.check(btc())
    assert d.reason is RefuseReason.INTERNAL_ERROR and "ZeroDivisionError" in d.detail


@pytest.mark.parametrize("broken", ["poll", "clock", "kernel"])
def test_check_when_fast_path_step_raises_then_refuses_internal_error(broken):
    gate = make_gate(publish_approvals=False)
    assert gate._lean

    def boom(*a, **k):
        raise RuntimeError("injected")

    if broken == "poll":
        gate.subscriber.poll = boom
    elif broken == "clock":
        gate._clock = boom
    else:
        gate._decide = gate._kernel.decide = boom
    d = gate.check(FixedOrder(1, 1, 1, 1, 5000, PX, 9))
    assert not d.approved and d.reason is RefuseReason.INTERNAL_ERROR and "injected" in d.detail
    assert len(gate.reservations) == 0 and not gate.reservations.buy.any()
    assert (gate.counts["approved"], gate.counts["refused"]) == (0, 1)


@pytest.mark.parametrize(("field", "value"), [("qty", 5000.0), ("qty", "5000"), ("price", 1.5), ("order_id", 9.0)])
def test_check_when_fixed_order_field_not_an_int_on_fast_path_then_invalid_naming_it(field, value):
    gate = make_gate(publish_approvals=False)
    d = gate.check(FixedOrder(1, 1, 1, 1, 5000, PX, 9)._replace(**{field: value}))
    assert d.reason is RefuseReason.INVALID_ORDER and d.detail.startswith(field)
    assert len(gate.reservations) == 0 and not gate.reservations.buy.any()


def test_check_when_fixed_order_has_numpy_ints_on_fast_path_then_decided_as_ints():
    gate = make_gate(publish_approvals=False)
    d = gate.check(FixedOrder(*(np.int64(v) for v in (1, 1, 1, 1, 5000, PX, 9))))
    assert d.approved and type(d.order_id) is int and list(gate.reservations.by_id) == [9]
    assert gate.check(FixedOrder(1, 1, 1, 1, 5000, PX, 9)).reason is RefuseReason.DUPLICATE_ORDER_ID


@pytest.mark.parametrize("publish", [False, True])
def test_check_when_limit_event_tightens_after_kernel_loaded_rows_then_refuses(publish):
    gate = make_gate(publish_approvals=publish)
    assert gate._lean is not publish
    assert gate.check(FixedOrder(1, 1, 1, 1, 5000, PX, 9)).approved  # the kernel loaded account 1's rows
    gate.subscriber.push([rec(Kind.LIMIT, code=int(LimitType.MAX_ORDER_QTY), account=1, aux1=400_000)])
    d = gate.check(FixedOrder(1, 1, 1, 1, 5000, PX, 10))
    assert d.reason is RefuseReason.MAX_ORDER_QTY and d.applied_seq == gate.table.last_change_seq


def test_check_when_events_pending_then_drained_before_deciding():
    gate = make_gate()
    gate.subscriber.push([rec(Kind.HALT)])
    d = gate.check(btc())
    assert d.reason is RefuseReason.HALTED and d.applied_seq == 3 and d.lag == 0


def test_check_when_hwm_ahead_beyond_budget_then_stale_sequence_then_recovers():
    gate = make_gate(max_lag_events=3)
    gate.subscriber.heartbeat(10, T0)
    d = gate.check(btc(oid=1))
    assert d.reason is RefuseReason.STALE_SEQUENCE and d.lag == 8
    gate.subscriber.heartbeat(4, T0)
    assert gate.check(btc(oid=2)).approved


def test_check_when_fixed_order_then_fast_path_same_decision():
    gate = make_gate()
    d = gate.check(FixedOrder(1, 1, 1, 1, 5000, PX, 9))
    assert d.approved and int(gate.producer.records[0]["qty"]) == 5000


def test_check_when_decision_log_enabled_then_one_line_per_check(tmp_path):
    gate = make_gate(tmp_path, max_order_qty="0.1")
    gate.check(btc(qty="0.1", oid=1))
    gate.check(btc(qty="1", oid=2))
    gate.close()
    lines = [json.loads(x) for x in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    assert [line[1:3] for line in lines] == [[1, 0], [2, int(RefuseReason.MAX_ORDER_QTY)]]
    assert all(line[5] > 0 for line in lines)


def test_check_when_rate_limited_then_tokens_taken_only_on_approval():
    gate = make_gate(rate_per_sec=2, max_order_qty="0.1")
    for n in range(5):
        gate.check(btc(qty="1", oid=100 + n))  # refused by qty: takes no token
    assert gate.check(btc(qty="0.1", oid=1)).approved
    assert gate.check(btc(qty="0.1", oid=2)).approved
    assert gate.check(btc(qty="0.1", oid=3)).reason is RefuseReason.RATE_LIMIT
    gate._clock = lambda: T0 + 600_000_000
    gate.subscriber.heartbeat(2, T0 + 600_000_000)
    assert gate.check(btc(qty="0.1", oid=4)).approved


def test_from_config_when_file_given_then_endpoints_from_sequencer_section(tmp_path, monkeypatch):
    p = tmp_path / "c.toml"
    p.write_text('[sequencer]\npublish = "ipc://x-pub"\nhwm = "ipc://x-hwm"\nreplay = "ipc://x-rep"\ningest = "ipc://x-in"\n'
                 '[gate]\nname = "g1"\nmax_order_qty = "2"\n')
    seen = {}

    def fake_init(self, **kw):
        seen.update(kw)

    monkeypatch.setattr(Gate, "__init__", fake_init)
    Gate.from_config(p)
    assert seen["publish"] == "ipc://x-pub" and seen["ingest"] == "ipc://x-in" and seen["name"] == "g1"
    assert seen["limits"].resolved(1, 1).max_qty_lots == 20_000
    # No hwm_file anywhere: where the sequencer writes it by default (JOURNAL/hwm).
    assert seen["hwm_file"] == str(Path("journal") / "hwm")


@pytest.mark.parametrize(
    ("sequencer_line", "gate_line", "expected"),
    [
        ('journal = "/data/j"\n', "", "/data/j/hwm"),
        ('hwm_file = "/dev/shm/h"\n', "", "/dev/shm/h"),
        ('hwm_file = "off"\n', "", None),
        ("", 'hwm_file = "/tmp/own"\n', "/tmp/own"),
        ('hwm_file = "/dev/shm/h"\n', 'hwm_file = "off"\n', None),
    ],
)
def test_from_config_when_hwm_file_set_or_not_then_gate_reads_the_sequencers(tmp_path, monkeypatch, sequencer_line, gate_line, expected):
    p = tmp_path / "c.toml"
    p.write_text(f"[sequencer]\n{sequencer_line}[gate]\n{gate_line}")
    seen = {}
    monkeypatch.setattr(Gate, "__init__", lambda self, **kw: seen.update(kw))
    Gate.from_config(p)
    assert seen["hwm_file"] == expected


def test_check_when_heartbeat_lags_data_path_then_hwm_used_and_recorded_is_applied_seq():
    gate = make_gate(max_order_qty="1")
    gate.subscriber.push([rec(Kind.PRICE, instrument=1, price=PX), rec(Kind.PRICE, instrument=2, price=300_000)], heartbeat=False)
    assert gate.subscriber.hwm == 2
    ok = gate.check(btc(oid=1))
    bad = gate.check(btc(qty="5", oid=2))
    assert ok.approved and bad.reason is RefuseReason.MAX_ORDER_QTY
    for d in (ok, bad):
        assert (d.applied_seq, d.hwm, d.lag) == (4, 4, 0)
    recs = gate.producer.records
    assert recs["kind"].tolist() == [Kind.NEW_ORDER, Kind.REFUSED]
    assert recs["aux1"].tolist() == [4, 4] and recs["aux2"].tolist() == [4, 4]


def test_decision_frame_when_filled_then_bytes_equal_encode_frame():
    from risk_gate.publish import DecisionFrame
    from sequencer.protocol import RECORD_DTYPE, FrameType, encode_frame

    frame = DecisionFrame(77)
    for kind, code, text in ((Kind.NEW_ORDER, 0, b""), (Kind.REFUSED, int(RefuseReason.MAX_POSITION), "é détail".encode())):
        got = frame.encode(int(kind), 123, 9, 10, PX, 3, 4, 1, 1, 2, 2, code, text)
        r = np.zeros(1, RECORD_DTYPE)
        for k, v in dict(kind=int(kind), producer_seq=123, order_id=9, qty=10, price=PX, aux1=3, aux2=4, instrument=1,
                         producer=77, account=1, venue=2, side=2, code=code, text=text).items():
            r[k] = v
        assert got == encode_frame(r, frame_type=FrameType.INGEST)


def test_check_when_real_producer_then_decision_sent_as_one_record_frame(tmp_path):
    import zmq

    from sequencer.producer import Producer
    from sequencer.protocol import decode_frame

    ep = f"ipc://{tmp_path}/ingest"
    sink = zmq.Context.instance().socket(zmq.ROUTER)
    sink.setsockopt(zmq.LINGER, 0)
    sink.bind(ep)
    sub = _Sub()
    producer = Producer(ep, name="g-test", first_producer_seq=100)
    gate = Gate(limits=GateConfig(max_order_qty="1"), registry=REG, subscriber=sub, producer=producer, clock=lambda: T0)
    sub.fold = gate.fold
    sub.push([rec(Kind.PRICE, instrument=1, price=PX)])
    try:
        assert gate.check(btc(oid=1)).approved
        assert gate.check(btc(qty="5", oid=2)).reason is RefuseReason.MAX_ORDER_QTY
        got = []
        for _ in range(2):
            assert sink.poll(5000)
            got.append(decode_frame(sink.recv_multipart()[-1]))
        recs = np.concatenate([r for _h, r in got])
        assert recs["kind"].tolist() == [Kind.NEW_ORDER, Kind.REFUSED]
        assert recs["producer_seq"].tolist() == [100, 101] and set(recs["producer"].tolist()) == {producer.producer_id}
        assert recs["aux1"].tolist() == [1, 1] and recs["aux2"].tolist() == [1, 1]
        assert int(recs["code"][1]) == RefuseReason.MAX_ORDER_QTY and producer.pending == 2
        assert gate.counts["published"] == 2
    finally:
        gate.close()
        sink.close(0)


def test_check_when_subscriber_recovering_then_decides_as_check_order_on_its_view():
    gate = make_gate(max_lag_events=1)
    sub = gate.subscriber
    sub.recovering = True
    assert gate.check(btc(oid=1)).approved  # lag 0 and a fresh HWM: known to be within budget
    sub.heartbeat(5, T0)
    assert gate.check(btc(oid=2)).reason is RefuseReason.STALE_SEQUENCE
    sub.heartbeat(2, T0)
    sub.error = "epoch discontinuity"
    d = gate.check(btc(oid=3))
    assert d.reason is RefuseReason.RECOVERING and "epoch discontinuity" in d.detail


_field_values = st.sampled_from(["acct-1", "acct-2", 1, 2, True, 1.0, "BTC-USDT", "ETH-USDT", "nobody", 0, -1])
_numbers = st.one_of(
    st.sampled_from(["0.5", "0.0001", "1", "50000.00", "50000.001", "nan", "-1", "", 1, 0, True, 1.0, 0.5, float("nan"), None]),
    st.decimals(min_value=-2, max_value=60000, places=4, allow_nan=True, allow_infinity=False),
)


@settings(max_examples=80, deadline=None)
@given(orders=st.lists(st.builds(
    Order, account=_field_values, instrument=_field_values, venue=st.sampled_from(["sim-1", "sim-2", 1, True, "x"]),
    side=st.sampled_from(["buy", "sell", 1, 2, True, "hold", 1.0]), qty=_numbers.filter(lambda v: v is not None),
    price=_numbers, order_id=st.sampled_from([1, 2, 0, -3, True, 7.0]),
), min_size=1, max_size=20))
def test_fixed_converter_when_orders_repeat_then_same_result_as_to_fixed(orders):
    from risk_gate.order import FixedConverter, to_fixed

    conv = FixedConverter(REG)
    for o in orders + orders:
        got = conv(o)
        want = to_fixed(o, REG)
        assert got == want and type(got[0]) is type(want[0])


def test_check_when_approval_cannot_be_published_then_refuses_internal_error_and_releases_reservation():
    gate = make_gate()
    real_submit = gate.producer.submit

    def broken(records):
        raise RuntimeError("socket closed")

    gate.producer.submit = broken
    d = gate.check(btc(oid=11))
    assert not d.approved and d.reason is RefuseReason.INTERNAL_ERROR
    assert "decision not published" in d.detail and "socket closed" in d.detail
    assert 11 not in gate.reservations
    assert gate.counts["publish_errors"] >= 1
    gate.producer.submit = real_submit
    assert gate.check(btc(oid=12)).approved
    # The withdrawn approval was never given: it is not counted, and its id is free again.
    assert (gate.counts["approved"], gate.counts["refused"]) == (1, 1)
    assert gate.check(btc(oid=11)).approved
    assert (gate.counts["approved"], gate.counts["refused"]) == (2, 1)


def test_poll_when_sequencer_refuses_approval_records_then_reservation_released_and_id_free():
    gate = make_gate()
    assert gate.check(btc(oid=21)).approved
    assert gate.check(btc(oid=21)).reason is RefuseReason.DUPLICATE_ORDER_ID
    token = int(gate.producer.records["producer_seq"][0])
    refusal = SimpleNamespace(ok=False, first_producer_seq=token, code_name="BAD_RECORD", message="injected")
    gate.producer.poll = lambda timeout_ms=0: [refusal]
    gate.poll()
    assert 21 not in gate.reservations and gate.counts["publish_errors"] == 1
    assert gate.check(btc(oid=21)).approved  # never stamped: the id may be used again


def test_check_when_fast_publish_path_raises_then_refuses_internal_error():
    class BrokenFastProducer(FakeProducer):
        producer_id = 77
        next_producer_seq = 1

        def submit_encoded(self, frame, first, last):
            raise OSError("send failed")

    gate = make_gate(producer=BrokenFastProducer())
    d = gate.check(btc(oid=21))
    assert not d.approved and d.reason is RefuseReason.INTERNAL_ERROR and "OSError" in d.detail
    assert 21 not in gate.reservations

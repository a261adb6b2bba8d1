"""Audit re-check on synthetic journals with known answers (in memory, no journal files)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.book import Book
from risk_gate.audit.recheck import run_audit
from risk_gate.checks import BookView, FixedOrder, StreamView, check_order
from risk_gate.limits import GateConfig, LimitTable
from risk_gate.reasons import RefuseReason
from risk_gate.state import RateState, Reservations
from sequencer.registry import default_registry
from journal_factory import JournalBuilder

REG = default_registry()


def audit(b: JournalBuilder, config: GateConfig | None = None, **kw):
    return run_audit([b.records()], REG, config, **kw).report


def test_audit_when_gate_approves_at_lag_zero_then_zero_divergence_and_no_stale_approvals():
    b = JournalBuilder()
    b.price("BTC-USDT", "100")
    for n in range(5):
        oid = b.new_order("acct-1", "BTC-USDT", "buy", "0.1", "100")
        b.ack(oid)
        b.fill(oid, "0.1", "100")
    r = audit(b, GateConfig(max_position="1", max_order_qty="0.5"))
    assert r.decisions.approved == 5
    assert r.max_observed_lag == 0 and r.max_true_lag == 0
    assert r.stale_approvals == []
    assert r.recheck.checked == 5 and r.recheck.clean == 5
    assert r.verdict.kind == "zero_divergence"
    assert r.verdict.text.startswith("zero divergence: every approval was made at lag 0 and re-checks clean")
    assert r.events == 16 and r.events_by_kind["fill"] == 5
    assert [(h.lo, h.hi, h.observed, h.true) for h in r.lag_histogram] == [(0, 0, 5, 5)]


def test_audit_when_approvals_made_behind_then_known_lags_and_known_breach():
    b = JournalBuilder()
    b.price("BTC-USDT", "100")  # seq 1
    b.new_order("acct-1", "BTC-USDT", "buy", "1", "100")  # seq 2, lag 0
    b.cancel(1)  # seq 3
    b.position_reset("acct-1", "BTC-USDT", "1", "100")  # seq 4: reconciliation says long 1
    b.price("BTC-USDT", "100.5")  # seq 5
    # seq 6: the gate had applied seq 3 and saw HWM 4: it missed the reset (and the price).
    b.new_order("acct-1", "BTC-USDT", "buy", "1", "100", order_id=2, applied_seq=3, hwm=4)
    # seq 7: behind by 2 (prices only), harmless: a sell reduces the position.
    b.new_order("acct-1", "BTC-USDT", "sell", "0.5", "100", order_id=3, applied_seq=4, hwm=6)
    r = audit(b, GateConfig(max_position="1.5"))
    assert r.decisions.approved == 3
    assert r.max_observed_lag == 2  # seq 7: hwm 6 - applied 4 (seq 6: 4 - 3 = 1)
    assert r.max_true_lag == 2  # seq 6: 5 - 3 = 2; seq 7: 6 - 4 = 2
    assert r.recheck.approvals_behind == 2
    assert len(r.stale_approvals) == 1
    s = r.stale_approvals[0]
    assert (s.order_id, s.seq, s.applied_seq, s.hwm, s.observed_lag, s.true_lag) == (2, 6, 3, 4, 1, 2)
    assert s.reason == "MAX_POSITION" and s.account == "acct-1" and s.instrument == "BTC-USDT"
    assert r.recheck.would_refuse_by_reason["MAX_POSITION"] == 1
    assert r.verdict.kind == "exposure_window"
    assert r.verdict.text == "exposure window: 2 approvals made up to 2 events behind; 1 would have been refused"


def test_audit_when_refusals_of_every_reason_then_each_counted_by_name():
    b = JournalBuilder()
    for n, reason in enumerate(RefuseReason):
        for _ in range(n + 1):
            b.refused("acct-2", "ETH-USDT", "sell", "1", "10", reason=reason, detail=reason.name.lower())
    r = audit(b)
    assert r.decisions.refused == sum(range(1, len(RefuseReason) + 1))
    assert r.decisions.approved == 0
    assert r.decisions.refused_by_reason == {reason.name: n + 1 for n, reason in enumerate(RefuseReason)}
    assert r.verdict.kind == "zero_divergence"


def test_audit_when_limit_changes_mid_journal_then_limits_in_force_at_each_seq_apply():
    b = JournalBuilder()
    b.price("ETH-USDT", "10")
    b.new_order("acct-1", "ETH-USDT", "buy", "5", "10")  # seq 2: under the config's 10
    lim = b.limit("max_order_qty", "2", account="acct-1")  # seq 3
    b.new_order("acct-1", "ETH-USDT", "buy", "5", "10", lag=1)  # seq 4: gate missed the change
    b.new_order("acct-1", "ETH-USDT", "buy", "2", "10")  # seq 5: within the new limit
    b.limit("max_order_qty", "10", account="acct-1")  # seq 6
    b.new_order("acct-2", "ETH-USDT", "buy", "5", "10", lag=3)  # seq 7: other account, never limited
    b.new_order("acct-1", "ETH-USDT", "buy", "5", "10")  # seq 8: limit raised again
    r = audit(b, GateConfig(max_order_qty="10"))
    assert lim == 3
    assert r.limit_changes == 2
    assert [(s.seq, s.reason) for s in r.stale_approvals] == [(4, "MAX_ORDER_QTY")]
    assert r.stale_approvals[0].true_lag == 1


def test_audit_when_halt_and_resume_then_approvals_during_halt_would_refuse():
    b = JournalBuilder()
    b.price("BTC-USDT", "100")
    b.position_reset("acct-1", "BTC-USDT", "1", "100")
    b.halt(reason="ops halt")  # seq 3
    b.new_order("acct-1", "BTC-USDT", "buy", "0.1", "100", lag=1)  # seq 4: missed the halt
    b.resume()  # seq 5
    b.new_order("acct-1", "BTC-USDT", "buy", "0.1", "100", lag=1)  # seq 6: missed the resume: fine
    b.reduce_only(instrument="BTC-USDT")  # seq 7
    b.new_order("acct-1", "BTC-USDT", "buy", "0.1", "100", lag=2)  # seq 8: adds risk
    b.new_order("acct-1", "BTC-USDT", "sell", "0.5", "100", lag=3)  # seq 9: reduces: fine
    b.halt(account="acct-2")  # seq 10
    b.new_order("acct-1", "BTC-USDT", "sell", "0.1", "100")  # seq 11: acct-1 not halted, reduces
    b.new_order("acct-2", "BTC-USDT", "sell", "0.1", "100", lag=1)  # seq 12: acct-2 halted
    r = audit(b)
    assert [(s.seq, s.reason) for s in r.stale_approvals] == [(4, "HALTED"), (8, "REDUCE_ONLY"), (12, "HALTED")]
    assert r.recheck.approvals_behind == 5


def test_audit_when_stale_gate_reuses_an_order_id_then_duplicate_would_refuse():
    b = JournalBuilder()
    b.price("BTC-USDT", "100")
    b.new_order("acct-1", "BTC-USDT", "buy", "0.1", "100", order_id=7)
    b.new_order("acct-1", "BTC-USDT", "buy", "0.1", "100", order_id=7, lag=1)
    r = audit(b)
    assert [(s.seq, s.reason, s.order_id) for s in r.stale_approvals] == [(3, "DUPLICATE_ORDER_ID", 7)]
    assert r.anomalies == 1  # the Book records the duplicate too


def test_audit_when_rate_exceeded_on_record_clock_then_rate_limit_and_bucket_refills():
    b = JournalBuilder(step_ns=1_000_000)
    b.price("BTC-USDT", "100")
    for _ in range(3):
        b.new_order("acct-1", "BTC-USDT", "buy", "0.01", "100")
    b.advance(2_000_000_000)
    b.new_order("acct-1", "BTC-USDT", "buy", "0.01", "100")
    r = audit(b, GateConfig(rate_per_sec=2))
    assert [(s.seq, s.reason) for s in r.stale_approvals] == [(4, "RATE_LIMIT")]


def test_audit_when_open_orders_and_notional_and_collar_and_restricted_then_each_found():
    b = JournalBuilder()
    b.price("ETH-USDT", "10")
    b.new_order("acct-1", "ETH-USDT", "buy", "1", "10")  # seq 2
    b.new_order("acct-1", "ETH-USDT", "buy", "1", "10")  # seq 3: 2 open orders > 1
    b.new_order("acct-2", "ETH-USDT", "buy", "20", "10")  # seq 4: notional 200 > 100
    b.new_order("acct-2", "ETH-USDT", "buy", "1", "11")  # seq 5: 1000 bps off the reference
    b.new_order("acct-2", "BTC-USDT", "buy", "0.1", "10")  # seq 6: restricted (no price: collar skipped)
    cfg = GateConfig(
        max_order_notional="100",
        accounts={"acct-1": {"max_open_orders": 1}, "acct-2": {"price_collar_bps": 500, "restricted_instruments": ["BTC-USDT"]}},
    )
    import msgspec

    cfg = msgspec.convert(msgspec.to_builtins(cfg), GateConfig)
    r = audit(b, cfg)
    got = [(s.seq, s.reason) for s in r.stale_approvals]
    assert got == [(3, "MAX_OPEN_ORDERS"), (4, "MAX_ORDER_NOTIONAL"), (5, "PRICE_COLLAR"), (6, "RESTRICTED")]


# -- property: a gate deciding at lag 0 with the same checks is never contradicted --------

_order = st.tuples(
    st.sampled_from(["acct-1", "acct-2"]),
    st.sampled_from(["BTC-USDT", "ETH-USDT"]),
    st.sampled_from(["buy", "sell"]),
    st.integers(1, 8),
    st.sampled_from(["order", "order", "order", "order", "fill", "cancel", "price", "halt", "resume", "limit"]),
)


@settings(max_examples=30, deadline=None)
@given(st.lists(_order, min_size=3, max_size=40))
def test_audit_when_gate_checks_each_order_at_lag_zero_then_every_approval_rechecks_clean(steps):
    cfg = GateConfig(max_position="2", max_order_qty="0.6", max_open_orders=4)
    b = JournalBuilder()
    b.price("BTC-USDT", "100")
    b.price("ETH-USDT", "10")
    book = Book(REG)
    table = LimitTable(cfg, REG)
    view = BookView.from_book(book, REG)
    res = Reservations(REG.max_account_id + 1, view.stride)
    rates = RateState(REG.max_account_id + 1)
    done = 0
    live: list[int] = []

    def catch_up():
        nonlocal done
        recs = b.records()[done:]
        book.apply(recs)
        table.apply(recs)
        done += len(recs)

    next_id = 1
    for account, symbol, side, tenths, what in steps:
        catch_up()
        inst = REG.instrument(symbol)
        if what == "order":
            qty = f"{tenths / 10}"
            o = FixedOrder(REG.account_id(account), inst.id, 1, 1 if side == "buy" else 2, inst.to_lots(qty), inst.to_ticks("10"), next_id)
            seq = b.next_seq
            reason, _ = check_order(o, view, table, res, rates, StreamView(seq - 1, seq - 1, 1), 1)
            if reason is None:
                b.new_order(account, symbol, side, qty, "10", order_id=next_id)
                live.append(next_id)
            else:
                b.refused(account, symbol, side, qty, "10", order_id=next_id, reason=reason)
            next_id += 1
        elif what == "fill" and live:
            oid = live.pop(0)
            row = book.orders[book.order_slot(oid)]
            b.fill(oid, REG.instrument(int(row["instrument"])).qty_str(int(row["qty"])), "10")
        elif what == "cancel" and live:
            b.cancel(live.pop())
        elif what == "price":
            b.price(symbol, "10")
        elif what == "halt":
            b.reduce_only(account=account) if tenths % 2 else b.halt(instrument=symbol)
        elif what == "resume":
            b.resume(account=account) if tenths % 2 else b.resume(instrument=symbol)
        else:
            b.limit("max_position", str(tenths / 4), account=account)
    r = audit(b, cfg)
    assert r.stale_approvals == []
    assert r.verdict.kind == "zero_divergence"
    assert r.decisions.approved + r.decisions.refused == next_id - 1
    assert np.sum([v for v in r.decisions.refused_by_reason.values()]) == r.decisions.refused

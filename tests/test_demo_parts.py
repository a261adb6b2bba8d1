"""The demo's parts on their own: venue simulator, fault plan, child process control, views."""

from __future__ import annotations

import io
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from risk_gate.demo.config import DemoConfig
from risk_gate.demo.plan import FaultPlan
from risk_gate.demo.procs import Child, wait_all_gone
from risk_gate.demo.stats import GateStats, PositionRow, VenueStats
from risk_gate.demo.summary import PlainReporter, final_report, summary_line
from risk_gate.demo.venue import VenueFold, VenueSim
from risk_gate.demo.view import DemoView
from sequencer.protocol import Kind, empty_records
from sequencer.registry import default_registry


def _orders(qtys: list[int], prices: list[int]) -> np.ndarray:
    r = empty_records(len(qtys))
    r["kind"] = Kind.NEW_ORDER
    r["order_id"] = np.arange(1, len(qtys) + 1)
    r["account"] = 1
    r["instrument"] = [1 + n % 3 for n in range(len(qtys))]
    r["venue"] = 1
    r["side"] = [1 + n % 2 for n in range(len(qtys))]
    r["qty"] = qtys
    r["price"] = prices
    return r


@settings(max_examples=60, deadline=None)
@given(
    qtys=st.lists(st.integers(1, 10_000), min_size=1, max_size=40),
    seed=st.integers(0, 2**32),
    reject=st.floats(0, 1),
    cancel=st.floats(0, 1),
)
def test_venue_when_orders_arrive_then_each_ends_once_and_fills_never_exceed_qty(
    qtys: list[int], seed: int, reject: float, cancel: float
) -> None:
    sim = VenueSim(default_registry(), DemoConfig(reject_prob=reject, cancel_prob=cancel), seed)
    orders = _orders(qtys, [0 if n % 4 == 0 else 1000 + n for n in range(len(qtys))])
    sim.on_new_orders(orders, 0.0)
    sim.on_new_orders(orders, 0.0)  # a redelivered order is answered once
    out = np.concatenate([sim.due(t) for t in (0.001, 0.01, 0.1, 1.0, 100.0)])
    assert not sim.heap and not sim.orders
    for oid, qty in zip(orders["order_id"], qtys):
        mine = out[out["order_id"] == oid]
        kinds = mine["kind"].tolist()
        filled = int(mine["qty"][mine["kind"] == Kind.FILL].sum())
        assert filled <= qty
        ends = kinds.count(Kind.REJECT) + kinds.count(Kind.CANCEL) + (filled == qty)
        assert ends == 1
        assert kinds.count(Kind.ACK) + kinds.count(Kind.REJECT) == 1
        if Kind.REJECT in kinds:
            assert kinds == [Kind.REJECT]
        assert (mine["price"][mine["kind"] == Kind.FILL] > 0).all()
    trade_ids = out["aux1"][out["kind"] == Kind.FILL]
    assert len(set(trade_ids.tolist())) == len(trade_ids) and (trade_ids > 0).all()


def test_venue_prices_when_stepped_then_positive_and_on_known_instruments() -> None:
    sim = VenueSim(default_registry(), DemoConfig(price_vol_bps=500.0), 7)
    for _ in range(200):
        recs = sim.prices()
        assert (recs["kind"] == Kind.PRICE).all()
        assert (recs["price"] > 0).all()
        assert sorted(recs["instrument"].tolist()) == [1, 2, 3]
    assert set(sim.last_prices()) == {"BTC-USDT", "ETH-USDT", "EUR-USD"}


def test_venue_fold_when_batches_applied_then_only_new_orders_taken_once() -> None:
    fold = VenueFold()
    r = _orders([5, 6, 7], [1, 2, 3])
    r["kind"][1] = Kind.REFUSED
    r["seq"] = [1, 2, 3]
    fold.apply(r)
    assert fold.applied_seq == 3
    assert fold.take()["order_id"].tolist() == [1, 3]
    assert len(fold.take()) == 0


@settings(max_examples=50, deadline=None)
@given(seconds=st.floats(1, 600))
def test_plan_when_any_length_then_every_fault_ends_before_the_run(seconds: float) -> None:
    plan = FaultPlan.build(seconds, DemoConfig())
    actions = [s.action for s in plan.steps]
    assert actions.count("stall") == actions.count("unstall") == 1
    assert actions.index("stall") < actions.index("unstall")
    assert actions.index("kill") < actions.index("restart")
    assert all(0 <= s.at < seconds for s in plan.steps)
    got = plan.due(seconds) + plan.due(seconds)
    assert [s.action for s in got] == actions


_IGNORE_TERM = "import signal,time,subprocess,sys\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"


def test_child_when_it_ignores_sigterm_then_stop_kills_it_and_its_children(tmp_path: Path) -> None:
    code = _IGNORE_TERM + (
        "p = subprocess.Popen([sys.executable, '-c', 'import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'])\n"
        f"open({str(tmp_path / 'gc.pid')!r}, 'w').write(str(p.pid))\n"
        "time.sleep(60)\n"
    )
    child = Child("stubborn", [sys.executable, "-c", code], tmp_path / "stubborn.log")
    child.start()
    pidfile = tmp_path / "gc.pid"
    deadline = time.monotonic() + 20
    while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(pidfile.read_text())
    t0 = time.monotonic()
    rc = child.stop(timeout_s=0.5)
    assert rc == -signal.SIGKILL
    assert time.monotonic() - t0 < 10
    assert wait_all_gone([child.pid, grandchild], 5.0) == []


def test_child_when_paused_then_stop_still_ends_it(tmp_path: Path) -> None:
    child = Child("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "s.log")
    child.start()
    child.pause()
    assert child.paused and child.running()
    child.stop(timeout_s=5.0)
    assert not child.running()
    assert wait_all_gone([child.pid], 2.0) == []


def test_child_when_killed_then_restart_gets_a_new_pid_and_log_appends(tmp_path: Path) -> None:
    child = Child("s", [sys.executable, "-c", "print('hello', flush=True); import time; time.sleep(60)"], tmp_path / "s.log")
    child.start()
    first = child.pid
    child.kill()
    assert not child.running() and child.expected_exit
    child.start()
    assert child.pid != first and child.starts == 2 and not child.expected_exit
    child.stop()
    assert (tmp_path / "s.log").read_text().count("--- start") == 2
    assert wait_all_gone([first, child.pid], 2.0) == []


def _view() -> DemoView:
    view = DemoView(seconds=10, out_dir="out")
    view.started = time.monotonic() - 3
    view.set_status(2, 500, {"new_order": 10}, {"oms": (2, 498, 500, 2)})
    view.update(GateStats(
        ts_ns=1, pid=os.getpid(), epoch=2, applied_seq=490, hwm=500, lag=10, hwm_age_ms=1.0, recovering=False,
        checks=30, approved=20, refused={"MAX_POSITION": 7, "STALE_SEQUENCE": 3}, last_refusal="MAX_POSITION",
        positions=[PositionRow("acct-1", "BTC-USDT", 1.5, 0.2, 0.0, 3.0)], ready=True,
    ))
    view.update(VenueStats(
        ts_ns=1, pid=2, applied_seq=499, hwm=500, lag=1, orders=20, acks=19, fills=30, cancels=2, rejects=1,
        prices=90, resting=3, last_prices={"BTC-USDT": "60000.00"}, ready=True,
    ))
    view.note("kill -9 the sequencer")
    return view


def test_summary_when_view_has_reports_then_lines_name_lag_and_reasons() -> None:
    view = _view()
    line = summary_line(view)
    assert "gate applied 490 lag 10" in line and "oms applied 498 lag 2" in line
    assert "approved 20 refused 10" in line and "MAX_POSITION 7" in line
    report = final_report(view)
    assert "MAX_POSITION" in report and "acct-1" in report and "kill -9" in report
    buf = io.StringIO()
    PlainReporter(buf).refresh(view, time.monotonic())
    assert ">>> kill -9 the sequencer" in buf.getvalue()


def test_ui_when_rendered_then_shows_streams_decisions_and_positions() -> None:
    from rich.console import Console

    from risk_gate.demo.ui import render

    console = Console(file=io.StringIO(), width=160, color_system=None)
    console.print(render(_view()))
    text = console.file.getvalue()
    for want in ("sequencer", "gate", "oms", "MAX_POSITION", "APPROVED", "acct-1", "BTC-USDT", "kill -9"):
        assert want in text

"""The gate against a real sequencer process: stalled data path, killed sequencer, kill switch."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zmq

from gate_support import rec
from risk_gate import FixedOrder, Gate, GateConfig, Order, RefuseReason
from sequencer.producer import Producer
from sequencer.protocol import Kind
from support import REPO_ROOT, running_sequencer

pytestmark = pytest.mark.slow


class Forwarder:
    """A PUB -> SUB relay in a thread; while ``paused`` frames queue up in it (heartbeats do not pass here)."""

    def __init__(self, ctx: zmq.Context, publish: str, tmp) -> None:
        self.publish = f"ipc://{tmp}/fwd-pub"
        self.paused = threading.Event()
        self._holding = threading.Event()
        self._stop = threading.Event()
        self._xsub = ctx.socket(zmq.SUB)
        self._xsub.setsockopt(zmq.SUBSCRIBE, b"")
        self._xsub.connect(publish)
        self._xpub = ctx.socket(zmq.PUB)
        self._xpub.bind(self.publish)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.paused.is_set():
                self._holding.set()
                time.sleep(0.002)
                continue
            self._holding.clear()
            if self._xsub.poll(10, zmq.POLLIN):
                self._xpub.send_multipart(self._xsub.recv_multipart(zmq.NOBLOCK))

    def pause(self) -> None:
        """Stop forwarding; returns once the relay thread holds (no frame is mid-forward)."""
        self.paused.set()
        assert self._holding.wait(10)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for s in (self._xsub, self._xpub):
            s.close(0)


def until(fn, timeout_s=20.0, every=0.005):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout_s} s")


_ids = iter(range(1_000_000, 2_000_000))


def order(qty: str = "0.01") -> Order:
    """An order with a fresh id (a refused id is on the stream and would be a duplicate)."""
    return Order("acct-1", "BTC-USDT", "sim-1", "buy", qty, "50000.00", next(_ids))


def publish_price(prod: Producer, n: int = 1) -> None:
    recs = np.concatenate([rec(Kind.PRICE, instrument=1, price=5_000_000) for _ in range(n)])
    prod.submit(recs)
    assert all(r.ok for r in prod.flush(5.0))


def make_gate(sp, publish=None, subscriber_options=None, **cfg) -> Gate:
    return Gate(publish=publish or sp.publish, hwm=sp.hwm, replay=sp.replay, ingest=sp.ingest,
                limits=GateConfig(**cfg), name="gate-test", subscriber_options=subscriber_options)


def test_gate_when_data_path_stalls_then_stale_sequence_and_approves_after(tmp_path):
    ctx = zmq.Context.instance()
    with running_sequencer(tmp_path, heartbeat_ms=2) as sp:
        fwd = Forwarder(ctx, sp.publish, tmp_path)
        # stall_s: the subscriber fetches a range stuck behind the HWM by replay after this long;
        # long enough to observe the stall, short enough to recover a frame lost while joining.
        gate = make_gate(sp, publish=fwd.publish, subscriber_options={"stall_s": 3.0}, max_lag_events=5, max_hwm_age_ms=500)
        prod = Producer(sp.ingest, name="prices")
        try:
            publish_price(prod)
            until(lambda: gate.check(order()).approved)
            fwd.pause()
            target = gate.subscriber.hwm + 20 + 1
            publish_price(prod, 20)
            until(lambda: gate.poll() >= 0 and gate.subscriber.hwm >= target)
            d = gate.check(order())
            assert d.reason is RefuseReason.STALE_SEQUENCE, d
            assert d.lag > 5
            fwd.paused.clear()
            d = until(lambda: (lambda x: x if x.approved else None)(gate.check(order())))
            assert d.lag <= 5
        finally:
            prod.close()
            gate.close()
            fwd.close()


@pytest.mark.parametrize("quiet", [False, True])
def test_gate_when_sequencer_killed_then_stale_hwm_after_max_age(tmp_path, quiet):
    # quiet: same host, HWM file, nothing published by the gate, so check() skips polling
    # while the file says nothing is new; a dead sequencer stops writing it and the HWM ages
    # all the same.
    with running_sequencer(tmp_path, heartbeat_ms=2) as sp:
        if quiet:
            gate = Gate(publish=sp.publish, hwm=sp.hwm, replay=sp.replay, hwm_file=sp.hwm_file,
                        limits=GateConfig(max_hwm_age_ms=200), name="gate-quiet")
            assert gate._quiet and sp.hwm_file is not None
            ids = itertools.count(1)
            new_order = lambda: FixedOrder(1, 1, 1, 1, 1, 5_000_000, next(ids))  # noqa: E731
        else:
            gate = make_gate(sp, max_hwm_age_ms=200)
            new_order = order
        prod = Producer(sp.ingest, name="prices")
        try:
            publish_price(prod)
            until(lambda: gate.check(new_order()).approved)
            sp.kill()
            d = until(lambda: (lambda x: x if x.reason is RefuseReason.STALE_HWM else None)(gate.check(new_order())))
            assert d.hwm_age_ms > 200
        finally:
            prod.close()
            gate.close()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sequencer.cli", *args], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)


def test_cli_when_halt_reduce_only_resume_then_gate_follows_sequenced_controls(tmp_path):
    import json

    with running_sequencer(tmp_path) as sp:
        gate = make_gate(sp)
        prod = Producer(sp.ingest, name="prices")
        try:
            publish_price(prod)
            until(lambda: gate.check(order()).approved)
            out = _cli("halt", "--ingest", sp.ingest, "--account", "acct-1", "--reason", "ops drill")
            assert out.returncode == 0, out.stderr
            seq = json.loads(out.stdout)["seq"]
            until(lambda: gate.poll() >= 0 and gate.applied_seq >= seq)
            d = gate.check(order())
            assert d.reason is RefuseReason.HALTED and d.applied_seq >= seq
            assert gate.check(Order("acct-2", "BTC-USDT", "sim-1", "buy", "0.01", "50000.00", next(_ids))).approved
            out = _cli("reduce-only", "--ingest", sp.ingest, "--instrument", "BTC-USDT", "--reason", "wind down")
            assert out.returncode == 0, out.stderr
            out = _cli("resume", "--ingest", sp.ingest, "--account", "acct-1", "--reason", "drill over")
            seq = json.loads(out.stdout)["seq"]
            until(lambda: gate.poll() >= 0 and gate.applied_seq >= seq)
            assert gate.check(order()).reason is RefuseReason.REDUCE_ONLY
            assert gate.check(Order("acct-1", "BTC-USDT", "sim-1", "sell", "0.01", "50000.00", next(_ids))).reason is RefuseReason.REDUCE_ONLY
            out = _cli("resume", "--ingest", sp.ingest, "--instrument", "BTC-USDT", "--reason", "all clear")
            seq = json.loads(out.stdout)["seq"]
            until(lambda: gate.poll() >= 0 and gate.applied_seq >= seq)
            assert gate.check(order()).approved
            bad = _cli("halt", "--ingest", sp.ingest, "--account", "nobody", "--reason", "x")
            assert bad.returncode == 2 and "unknown account 'nobody'" in bad.stderr
        finally:
            prod.close()
            gate.close()

"""A subscriber's quiet state (consumers.quiet) and the gate's check that reads it instead of polling."""

from __future__ import annotations

import contextlib
import ctypes
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from consumers import Subscriber
from consumers.hwm import HwmFile
from consumers.quiet import NOT_QUIET, Q_FILE, Q_FROM, Q_GEN, Q_LENGTH, Q_UNTIL, is_quiet, is_quiet_py, new_quiet_state
from fake_sequencer import FakeSequencer, HashFold
from gate_support import FakeProducer
from risk_gate import FixedOrder, Gate, GateConfig, Order, RefuseReason
from sequencer.hwm_file import HwmFileWriter

# A limit order needs no reference price with the collar and gross exposure off; the fake
# sequencer's price records are stamped with ancient timestamps.
CFG = GateConfig(max_lag_events=0, max_hwm_age_ms=60_000, max_order_qty="10", max_position="1000000",
                 max_open_orders=10**7, rate_per_sec=1e9, rate_per_min=1e12)
PX = 5_000_000


@njit
def _kernel_quiet(state_address, now_ns):
    return is_quiet(state_address, now_ns)


def _gen_at(address: int) -> int:
    return ctypes.c_int64.from_address(address).value


@pytest.fixture
def fake():
    with tempfile.TemporaryDirectory(prefix="fq-") as d, FakeSequencer(d) as f:
        yield f


def _drive(fn, until, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        fn()
        if until():
            return
        time.sleep(0.001)
    raise AssertionError(f"condition not reached in {timeout_s} s")


# -- the kernel helper against its reference ------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(
    has_file=st.booleans(),
    file_gen=st.integers(0, 2**40),
    quiet_gen=st.one_of(st.just(NOT_QUIET), st.integers(0, 2**40)),
    same=st.booleans(),
    window=st.tuples(st.integers(0, 10**12), st.integers(0, 10**9)),
    now=st.integers(0, 2 * 10**12),
)
def test_is_quiet_when_random_state_then_kernel_equals_reference(has_file, file_gen, quiet_gen, same, window, now) -> None:
    word = np.array([file_gen], np.int64)
    state = new_quiet_state()
    if same and quiet_gen != NOT_QUIET:
        quiet_gen = file_gen
    state[Q_FILE] = word.ctypes.data if has_file else 0
    state[Q_GEN] = quiet_gen
    state[Q_FROM], state[Q_UNTIL] = window[0], window[0] + window[1]
    assert _kernel_quiet(state.ctypes.data, now) == is_quiet_py(state, file_gen, now)


def test_is_quiet_when_no_state_then_false() -> None:
    assert not _kernel_quiet(0, time.time_ns())
    state = new_quiet_state()
    assert state.shape == (Q_LENGTH,) and not is_quiet_py(state, 0, time.time_ns())


# -- the HWM file's generation address ------------------------------------------------------
def test_gen_address_when_file_written_then_reads_the_generation(tmp_path: Path) -> None:
    path = tmp_path / "hwm"
    f = HwmFile(path, reopen_interval_ns=0)
    assert f.generation(0) == -1 and f.gen_address == 0
    w = HwmFileWriter(path)
    w.write(1, 5, 100)
    gen = f.generation(1)
    assert _gen_at(f.gen_address) == gen
    w.write(1, 6, 200)
    assert _gen_at(f.gen_address) == f.generation(2) != gen
    w.close()
    f.close()
    assert f.gen_address == 0 and f.mm is None


def test_gen_address_when_file_replaced_then_moves_and_old_mapping_stays_readable(tmp_path: Path) -> None:
    path = tmp_path / "hwm"
    w = HwmFileWriter(path)
    w.write(1, 5, 100)
    f = HwmFile(path, reopen_interval_ns=0)
    f.generation(0)
    old = f.gen_address
    old_gen = _gen_at(old)
    w.close()
    os.unlink(path)  # a restarted sequencer writes a new file (new inode)
    w2 = HwmFileWriter(path)
    w2.write(2, 9, 300)
    gen = f.generation(1)
    assert f.read() == (gen, (2, 9, 300))
    assert f.gen_address != old and _gen_at(f.gen_address) == gen
    assert _gen_at(old) == old_gen  # still mapped: a reader holding it sees an old, unchanging word
    w2.close()
    f.close()
    assert f.gen_address == 0


# -- the subscriber's quiet state -----------------------------------------------------------
def test_quiet_when_current_with_hwm_file_then_names_generation_and_window(fake: FakeSequencer) -> None:
    fold = HashFold()
    fake.publish_records(10)
    with Subscriber(fake.publish, fake.hwm, fake.replay, fold, hwm_file=fake.hwm_file, check_interval_s=60.0) as sub:
        _drive(lambda: (fake.pump(), sub.poll()), lambda: fold.applied_seq == 10 and not sub.recovering and sub.hwm == 10)
        sub.poll()
        q = sub.quiet
        now = time.time_ns()
        assert q[Q_FILE] != 0 and q[Q_GEN] == _gen_at(int(q[Q_FILE])) >= 0
        assert q[Q_FROM] <= now < q[Q_UNTIL]
        assert _kernel_quiet(q.ctypes.data, now) and sub.poll() == 0
        assert sub.stream_state == (sub.hwm, sub.hwm_ts_ns, sub.recovering, sub.error) == (10, sub.hwm_ts_ns, False, None)
        fake.publish_records(3)  # the file's generation moves: no longer quiet
        assert not _kernel_quiet(q.ctypes.data, time.time_ns())
        _drive(sub.poll, lambda: fold.applied_seq == 13)
        assert sub.stream_state[0] == 13 and _kernel_quiet(q.ctypes.data, time.time_ns())
    assert q[Q_FILE] == 0 and q[Q_GEN] == NOT_QUIET


def test_quiet_when_no_hwm_file_then_never_quiet(fake: FakeSequencer) -> None:
    fold = HashFold()
    fake.publish_records(4)
    with Subscriber(fake.publish, fake.hwm, fake.replay, fold, hwm_file=None) as sub:
        _drive(lambda: (fake.pump(), sub.poll()), lambda: fold.applied_seq == 4 and not sub.recovering)
        sub.poll()
        assert sub.quiet[Q_FILE] == 0 and not _kernel_quiet(sub.quiet.ctypes.data, time.time_ns())
        assert sub.stream_state[2] is False


# -- the gate reading it --------------------------------------------------------------------
@contextlib.contextmanager
def _quiet_gate(fake: FakeSequencer, producer=None, **options):
    """A gate current with ``fake`` (10 records), its first check done; closed on exit."""
    fake.publish_records(10)
    gate = Gate(fake.publish, fake.hwm, fake.replay, limits=CFG, hwm_file=fake.hwm_file, producer=producer, subscriber_options=options)
    _drive(lambda: (fake.pump(), gate.poll()), lambda: gate.applied_seq == fake.last_seq and not gate.subscriber.recovering
           and gate.subscriber.hwm == fake.last_seq)
    try:
        # The first check of an account loads its limit rows on the full path (which polls).
        assert gate.check(FixedOrder(1, 1, 1, 1, 1, PX, 1)).approved
        yield gate
    finally:
        gate.close()


class _CountPolls:
    def __init__(self, sub: Subscriber) -> None:
        self.n = 0
        self._poll = sub.poll
        sub.poll = self

    def __call__(self, *args):
        self.n += 1
        return self._poll(*args)


def test_check_when_subscriber_quiet_then_decides_without_polling(fake: FakeSequencer) -> None:
    with _quiet_gate(fake, check_interval_s=60.0) as gate:
        polls = _CountPolls(gate.subscriber)
        decisions = [gate.check(FixedOrder(1, 1, 1, 1 + k % 2, 1, PX, 100 + k)) for k in range(300)]
        assert all(d.approved for d in decisions) and polls.n == 0
        assert {(d.applied_seq, d.hwm, d.hwm_ts_ns) for d in decisions} == {(10, 10, gate.subscriber.hwm_ts_ns)}
        assert gate.reservations.total == 301


def test_full_path_check_when_subscriber_quiet_then_skips_polling_until_sequencer_publishes(fake: FakeSequencer) -> None:
    producer = FakeProducer()  # approvals are published: every check takes the full path
    with _quiet_gate(fake, producer=producer, check_interval_s=60.0) as gate:
        polls = _CountPolls(gate.subscriber)
        decisions = [gate.check(Order("acct-1", "BTC-USDT", "sim-1", "buy", "0.0001", "50000.00", 500 + k)) for k in range(50)]
        assert all(d.approved for d in decisions) and polls.n == 0
        assert len(producer.records) == 51
        fake.publish_records(2)
        d = gate.check(FixedOrder(1, 1, 1, 1, 1, PX, 600))
        assert polls.n == 1 and d.hwm == 12


def test_check_when_sequencer_published_since_then_polls_and_decides_on_new_state(fake: FakeSequencer) -> None:
    with _quiet_gate(fake, check_interval_s=60.0) as gate:
        polls = _CountPolls(gate.subscriber)
        fake.publish_records(5)
        d = gate.check(FixedOrder(1, 1, 1, 1, 1, PX, 7))
        assert polls.n >= 1 and d.hwm == 15
        # Budget 0 events: approved only once everything the file announced is applied.
        assert d.approved == (d.applied_seq == 15)
        if not d.approved:
            assert d.reason is RefuseReason.STALE_SEQUENCE
        _drive(lambda: None, lambda: gate.check(FixedOrder(1, 1, 1, 1, 1, PX, 8 + polls.n)).approved)
        assert gate.applied_seq == 15


def test_check_when_quiet_window_ends_then_polls_again(fake: FakeSequencer) -> None:
    with _quiet_gate(fake, check_interval_s=0.005) as gate:
        polls = _CountPolls(gate.subscriber)
        time.sleep(0.02)
        assert gate.check(FixedOrder(1, 1, 1, 1, 1, PX, 50)).approved
        assert polls.n >= 1


def test_check_when_quiet_and_order_breaks_a_limit_then_refuses_like_the_full_path(fake: FakeSequencer) -> None:
    with _quiet_gate(fake, check_interval_s=60.0) as gate:
        d = gate.check(FixedOrder(1, 1, 1, 1, 10**9, PX, 60))
        assert not d.approved and d.reason is RefuseReason.MAX_ORDER_QTY and "qty" in d.detail
        assert gate.check(FixedOrder(1, 1, 1, 1, 1, PX, 61)).approved
        dup = gate.check(FixedOrder(1, 1, 1, 1, 1, PX, 61))
        assert dup.reason is RefuseReason.DUPLICATE_ORDER_ID


def test_check_when_gate_has_its_own_clock_then_polls_every_time(fake: FakeSequencer) -> None:
    fake.publish_records(2)
    gate = Gate(fake.publish, fake.hwm, fake.replay, limits=CFG, hwm_file=fake.hwm_file, clock=time.time_ns.__call__,
                subscriber_options={"check_interval_s": 60.0})
    try:
        _drive(lambda: (fake.pump(), gate.poll()), lambda: gate.applied_seq == 2 and not gate.subscriber.recovering)
        polls = _CountPolls(gate.subscriber)
        assert all(gate.check(FixedOrder(1, 1, 1, 1, 1, PX, 200 + k)).approved for k in range(5))
        assert polls.n == 5
    finally:
        gate.close()


def test_check_when_subscriber_closed_then_refuses(fake: FakeSequencer) -> None:
    with _quiet_gate(fake, check_interval_s=60.0) as gate:
        gate.subscriber.close()
        d = gate.check(FixedOrder(1, 1, 1, 1, 1, PX, 70))
        assert not d.approved and d.reason is RefuseReason.INTERNAL_ERROR


def test_quiet_when_hwm_file_is_stale_then_never_quiet(fake: FakeSequencer, tmp_path: Path) -> None:
    stale = tmp_path / "old-hwm"
    w = HwmFileWriter(stale)  # a file left by another, earlier sequencer
    w.write(1, 3, time.time_ns() - 10**9)
    fold = HashFold()
    fake.publish_records(6)
    try:
        with Subscriber(fake.publish, fake.hwm, fake.replay, fold, hwm_file=stale) as sub:
            _drive(lambda: (fake.pump(), sub.poll()), lambda: fold.applied_seq == 6 and not sub.recovering and sub.hwm == 6)
            sub.poll()
            assert sub.quiet[Q_FILE] != 0 and sub.quiet[Q_GEN] == NOT_QUIET
            assert not _kernel_quiet(sub.quiet.ctypes.data, time.time_ns())
            fake.publish_records(2)  # the stale file does not move: polls must still find these
            _drive(sub.poll, lambda: fold.applied_seq == 8)
    finally:
        w.close()

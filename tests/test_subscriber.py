"""Subscriber over real ZeroMQ sockets against the in-process fake sequencer."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers import Subscriber
from consumers.hwm import HwmFile, HwmTracker
from fake_sequencer import FakeSequencer, HashFold, make_records, one_pass_hash
from sequencer.hwm_file import HwmFileWriter
from sequencer.protocol import encode_frame, encode_heartbeat


def drive(sub: Subscriber, fake: FakeSequencer, until, timeout_s: float = 10.0) -> None:
    """Pump the fake and poll the subscriber until ``until()`` holds (bounded in time)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        fake.pump()
        if sub.poll(256) == 0:
            time.sleep(0.0005)
        if until():
            return
    raise AssertionError(f"condition not reached in {timeout_s} s: {sub.counters()} error={sub.error}")


def current(sub: Subscriber, fake: FakeSequencer):
    return lambda: sub.applied_seq == fake.last_seq and not sub.recovering and sub.hwm == fake.last_seq


def make_sub(fake: FakeSequencer, fold: HashFold | None = None, **kw) -> Subscriber:
    kw.setdefault("replay_timeout_s", 0.3)
    kw.setdefault("stall_s", 0.02)
    return Subscriber(fake.publish, fake.hwm, fake.replay, fold or HashFold(), hwm_file=kw.pop("hwm_file", fake.hwm_file), **kw)


@pytest.fixture
def fake(tmp_path: Path):
    with tempfile.TemporaryDirectory(prefix="fs-") as d, FakeSequencer(d) as f:
        yield f


def test_late_join_when_history_exists_then_replays_and_splices_live(fake: FakeSequencer) -> None:
    fake.publish_records(1000, frame_records=50)
    fold = HashFold()
    with make_sub(fake, fold) as sub:
        assert sub.recovering
        drive(sub, fake, current(sub, fake))
        for _ in range(10):
            fake.publish_records(64, frame_records=16)
            sub.poll(256)
        drive(sub, fake, current(sub, fake))
        assert fold.state_hash() == one_pass_hash(fake.journal())
        assert sub.error is None and sub.replays >= 1 and sub.records == 1640


def test_gap_when_live_frames_dropped_then_fills_from_replay(fake: FakeSequencer) -> None:
    fold = HashFold()
    with make_sub(fake, fold, stall_s=10.0) as sub:
        drive(sub, fake, lambda: not sub.recovering)
        fake.publish_records(32, frame_records=8)
        drive(sub, fake, current(sub, fake))
        fake.drop_live = 3
        fake.publish_records(80, frame_records=8)
        drive(sub, fake, current(sub, fake))
        assert sub.gaps >= 1 and fold.state_hash() == one_pass_hash(fake.journal())


def test_gap_when_buffer_bound_reached_then_drops_buffered_and_still_converges(fake: FakeSequencer) -> None:
    fold = HashFold()
    with make_sub(fake, fold, max_buffered_frames=2, stall_s=10.0) as sub:
        drive(sub, fake, lambda: not sub.recovering)
        fake.answer_replays = False
        fake.drop_live = 1
        fake.publish_records(100, frame_records=5)
        drive(sub, fake, lambda: sub.dropped_buffered > 0)
        fake.answer_replays = True
        drive(sub, fake, current(sub, fake))
        assert fold.state_hash() == one_pass_hash(fake.journal())


def test_replay_when_answer_never_comes_then_rerequests_and_recovers(fake: FakeSequencer) -> None:
    fake.publish_records(50)
    fake.answer_replays = False
    fold = HashFold()
    with make_sub(fake, fold, replay_timeout_s=0.05) as sub:
        drive(sub, fake, lambda: sub.counters()["replay_timeouts"] >= 2)
        assert sub.recovering and sub.applied_seq == 0
        fake.answer_replays = True
        drive(sub, fake, current(sub, fake))
        assert fold.state_hash() == one_pass_hash(fake.journal())


def test_stall_when_data_stops_but_heartbeats_flow_then_replays_at_bounded_rate(fake: FakeSequencer) -> None:
    fold = HashFold()
    with make_sub(fake, fold, stall_s=0.05, hwm_file=None) as sub:
        drive(sub, fake, lambda: not sub.recovering)
        fake.stall_data = True
        fake.publish_records(40)
        t0 = time.monotonic()
        drive(sub, fake, current(sub, fake))
        before = sub.replays
        fake.answer_replays = False
        fake.publish_records(40)
        time.sleep(0.01)
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            fake.pump()
            sub.poll()
            time.sleep(0.001)
        # at most one request per stall_s, plus re-requests after the replay timeout
        assert 1 <= sub.replays - before <= 0.5 / 0.05 + 2
        fake.answer_replays = True
        drive(sub, fake, current(sub, fake))
        assert fold.state_hash() == one_pass_hash(fake.journal())
        assert time.monotonic() - t0 < 30


def test_epoch_when_sequencer_restarts_continuously_then_continues_without_gap_or_duplicate(fake: FakeSequencer) -> None:
    fold = HashFold()
    with make_sub(fake, fold) as sub:
        fake.publish_records(100, frame_records=10)
        drive(sub, fake, current(sub, fake))
        fake.restart()
        fake.publish_records(100, frame_records=10)
        drive(sub, fake, lambda: current(sub, fake)() and sub.epoch == 2)
        assert sub.error is None
        assert fold.state_hash() == one_pass_hash(fake.journal())


def test_epoch_when_restart_lost_an_applied_tail_then_error_and_recovering(fake: FakeSequencer) -> None:
    fold = HashFold()
    with make_sub(fake, fold) as sub:
        fake.publish_records(100, frame_records=10)
        drive(sub, fake, current(sub, fake))
        fake.restart(lose_tail=2)
        fake.publish_records(50, frame_records=10)
        drive(sub, fake, lambda: sub.error is not None)
        assert "discontinuity" in sub.error and sub.recovering
        applied = sub.applied_seq
        fake.publish_records(50, frame_records=10)
        for _ in range(50):
            fake.pump()
            sub.poll()
        assert sub.applied_seq == applied == 100


def test_hwm_when_sequencer_silent_then_age_grows_from_its_timestamp(fake: FakeSequencer) -> None:
    with make_sub(fake) as sub:
        drive(sub, fake, lambda: not sub.recovering and sub.hwm_ts_ns > 0)
        fake.heartbeats = False
        a1 = sub.hwm_age_ns()
        time.sleep(0.05)
        for _ in range(20):
            sub.poll()
        a2 = sub.hwm_age_ns()
        assert a2 >= a1 + 40_000_000
        assert sub.hwm_age_ns(sub.hwm_ts_ns + 7) == 7


def test_hwm_when_heartbeat_is_old_then_age_uses_sequencer_timestamp(tmp_path: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="fs-") as d, FakeSequencer(d) as fake:
        fake.heartbeats = False
        with make_sub(fake, hwm_file=None) as sub:
            old = time.time_ns() - 5_000_000_000
            deadline = time.monotonic() + 5
            while sub.hwm_ts_ns == 0 and time.monotonic() < deadline:
                fake._hb.send(encode_heartbeat(1, 0, old))
                sub.poll()
                time.sleep(0.002)
            assert sub.hwm_ts_ns == old and sub.hwm_age_ns() >= 5_000_000_000


def test_hwm_tracker_when_older_or_newer_values_then_keeps_the_newest() -> None:
    t = HwmTracker()
    assert t.age_ns(10) == 10
    assert t.update(1, 5, 100) and not t.update(1, 4, 90) and not t.update(1, 5, 100)
    assert t.update(2, 3, 50)
    assert (t.epoch, t.hwm, t.ts_ns) == (2, 3, 50) and t.age_ns(40) == 0


def test_hwm_file_when_absent_then_appears_then_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "hwm"
    f = HwmFile(path, reopen_interval_ns=0)
    assert f.generation(0) == -1 and f.read() is None
    w = HwmFileWriter(path)
    w.write(3, 42, 1234)
    gen = f.generation(1)
    assert gen >= 2 and f.read() == (gen, (3, 42, 1234))
    w.write(3, 43, 1300)
    assert f.generation(2) != gen
    w.close()
    f.close()


def test_poll_when_idle_with_hwm_file_then_returns_zero_and_stays_current(fake: FakeSequencer) -> None:
    fold = HashFold()
    with make_sub(fake, fold) as sub:
        fake.publish_records(10)
        drive(sub, fake, current(sub, fake))
        assert all(sub.poll() == 0 for _ in range(1000))
        fake.publish_records(10)
        drive(sub, fake, current(sub, fake))


def test_report_when_interval_passes_then_sequencer_gets_consumer_report(fake: FakeSequencer) -> None:
    with make_sub(fake, name="probe", report_interval_s=0.01) as sub:
        drive(sub, fake, lambda: any(r.name == "probe" for r in fake.reports))
        assert fake.reports[-1].lag >= 0


def test_live_when_garbage_frame_then_counts_it_and_continues(fake: FakeSequencer) -> None:
    fold = HashFold()
    with make_sub(fake, fold) as sub:
        drive(sub, fake, lambda: not sub.recovering)
        bad = bytearray(encode_frame(make_records(1, 2, 1), epoch=1))
        bad[-1] ^= 0xFF
        for _ in range(200):
            fake._pub.send(bytes(bad))
            fake._pub.send(b"junk")
            sub.poll()
            if sub.bad_frames >= 2:
                break
            time.sleep(0.002)
        assert sub.bad_frames >= 2 and sub.last_bad_frame
        fake.publish_records(20)
        drive(sub, fake, current(sub, fake))
        assert fold.state_hash() == one_pass_hash(fake.journal())


def test_run_when_stop_set_then_returns_promptly(fake: FakeSequencer) -> None:
    fake.publish_records(300, frame_records=30)
    fake.start()
    fold = HashFold()
    sub = make_sub(fake, fold)
    stop = threading.Event()
    t = threading.Thread(target=sub.run, args=(stop,))
    t.start()
    try:
        deadline = time.monotonic() + 10
        while fold.applied_seq < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fold.applied_seq == 300
    finally:
        stop.set()
        t.join(2)
        assert not t.is_alive()
        sub.close()
        fake.stop()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    before=st.integers(0, 300),
    frames=st.lists(st.tuples(st.integers(1, 40), st.booleans()), min_size=1, max_size=25),
    restart_at=st.integers(-1, 25),
    buffer=st.integers(0, 8),
)
def test_fold_when_random_drops_and_late_join_then_hash_equals_one_pass(before, frames, restart_at, buffer) -> None:
    with tempfile.TemporaryDirectory(prefix="fs-") as d, FakeSequencer(d, max_replay_records=97, chunk_records=13) as fake:
        fake.publish_records(before, frame_records=17)
        fold = HashFold()
        with make_sub(fake, fold, max_buffered_frames=buffer) as sub:
            for i, (n, dropped) in enumerate(frames):
                if i == restart_at:
                    fake.restart()
                fake.drop_live = int(dropped)
                fake.publish_records(n, frame_records=n)
                fake.pump()
                sub.poll(4)
            drive(sub, fake, current(sub, fake))
            assert sub.error is None
            assert fold.state_hash() == one_pass_hash(fake.journal())

"""Subscriber against the REAL sequencer process: late join, gap fill, kill -9, HWM age, snapshots."""

from __future__ import annotations

import time

import numpy as np
import pytest

from consumers import BookFold, Subscriber
from consumers.fold import fold_journal
from fake_sequencer import HashFold, one_pass_hash
from sequencer.journal import JournalReader
from sequencer.producer import Producer
from sequencer.protocol import RECORD_DTYPE, Kind, Side
from support import running_sequencer

pytestmark = pytest.mark.slow


def events(n: int, start: int) -> np.ndarray:
    """Reference prices interleaved with new orders (valid for the default registry)."""
    recs = np.zeros(n, RECORD_DTYPE)
    idx = np.arange(start, start + n)
    orders = idx % 3 == 0
    recs["kind"] = np.where(orders, int(Kind.NEW_ORDER), int(Kind.PRICE))
    recs["instrument"] = 1
    recs["price"] = 10_000 + idx % 50
    recs["account"] = np.where(orders, 1, 0)
    recs["venue"] = np.where(orders, 1, 0)
    recs["side"] = np.where(orders, int(Side.BUY), int(Side.NONE))
    recs["qty"] = np.where(orders, 1 + idx % 5, 0)
    recs["order_id"] = np.where(orders, idx + 1, 0)
    return recs


def produce(ingest: str, name: str, total: int, per_frame: int, start: int = 0) -> None:
    with Producer(ingest, name) as prod:
        for i in range(start, start + total, per_frame):
            prod.submit(events(min(per_frame, start + total - i), i))
        replies = prod.flush(30)
        assert all(r.ok for r in replies), [r.message for r in replies if not r.ok][:3]


def journal_records(path) -> np.ndarray:
    reader = JournalReader(path)
    try:
        chunks = list(reader.read(1))
    finally:
        reader.close()
    return np.concatenate(chunks) if chunks else np.zeros(0, RECORD_DTYPE)


def drive(sub: Subscriber, until, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if sub.poll(256) == 0:
            time.sleep(0.001)
        if until():
            return
    raise AssertionError(f"not reached in {timeout_s} s: {sub.counters()} error={sub.error}")


def caught_up(sub: Subscriber, hwm: int):
    return lambda: sub.applied_seq == hwm and sub.hwm == hwm and not sub.recovering


def test_late_join_when_sequencer_has_history_then_fold_equals_journal(tmp_path) -> None:
    with running_sequencer(tmp_path, heartbeat_ms=5) as seq:
        produce(seq.ingest, "p-late", 3000, 64)
        fold = HashFold()
        with Subscriber(seq.publish, seq.hwm, seq.replay, fold, hwm_file=seq.hwm_file, name="late", max_replay_records=1000) as sub:
            drive(sub, caught_up(sub, 3000))
            produce(seq.ingest, "p-late2", 500, 10)
            drive(sub, caught_up(sub, 3500))
            assert sub.error is None and sub.replays >= 3
        assert fold.state_hash() == one_pass_hash(journal_records(seq.journal))


def test_gap_when_sub_queue_overflows_then_replay_fills_and_fold_equals_journal(tmp_path) -> None:
    with running_sequencer(tmp_path, heartbeat_ms=5, max_batch_records=1) as seq:
        fold = HashFold()
        with Subscriber(seq.publish, seq.hwm, seq.replay, fold, hwm_file=None, rcvhwm=1, max_buffered_frames=8) as sub:
            drive(sub, lambda: not sub.recovering)
            time.sleep(0.2)
            produce(seq.ingest, "p-flood", 30_000, 1)
            drive(sub, lambda: sub.frames > 0)
            produce(seq.ingest, "p-more", 100, 10, start=30_000)
            drive(sub, caught_up(sub, 30_100), 30)
            # Most frames were dropped by the full queues (gap or stall detected) and replayed.
            assert sub.frames < 30_000 and sub.replays >= 2, str(sub.counters())
            assert sub.error is None
        assert fold.state_hash() == one_pass_hash(journal_records(seq.journal))


def test_kill_when_sequencer_killed_and_restarted_mid_stream_then_continues_across_epoch(tmp_path) -> None:
    journal = tmp_path / "j"
    fold = HashFold()
    with running_sequencer(tmp_path, journal=journal, heartbeat_ms=5) as seq:
        sub = Subscriber(seq.publish, seq.hwm, seq.replay, fold, hwm_file=seq.hwm_file, replay_timeout_s=0.3)
        drive(sub, lambda: not sub.recovering)
        produce(seq.ingest, "p-a", 2000, 50)
        drive(sub, lambda: sub.applied_seq >= 500)
        epoch1 = sub.epoch
        seq.kill()
        age = sub.hwm_age_ns()
        time.sleep(0.2)
        for _ in range(50):
            sub.poll()
        assert sub.hwm_age_ns() >= age + 150_000_000, "HWM age must keep growing while the sequencer is dead"
    try:
        with running_sequencer(tmp_path, journal=journal, heartbeat_ms=5) as seq:
            produce(seq.ingest, "p-b", 1000, 50, start=2000)
            drive(sub, caught_up(sub, 3000), 30)
            assert sub.epoch > epoch1 and sub.error is None
            assert sub.duplicates_ignored >= 0 and fold.applied_seq == 3000
    finally:
        sub.close()
    assert fold.state_hash() == one_pass_hash(journal_records(journal))


def test_snapshot_when_restored_consumer_replays_tail_then_equals_full_replay(tmp_path) -> None:
    with running_sequencer(tmp_path, heartbeat_ms=5) as seq:
        produce(seq.ingest, "p-snap", 2000, 100)
        full = BookFold()
        with Subscriber(seq.publish, seq.hwm, seq.replay, full, hwm_file=seq.hwm_file) as sub:
            drive(sub, lambda: sub.applied_seq >= 1200)
        part = fold_journal(BookFold(), seq.journal, until=1200)
        snap = tmp_path / "book.snap"
        part.snapshot(snap)
        produce(seq.ingest, "p-snap2", 1000, 100, start=2000)
        restored = BookFold.from_snapshot(snap)
        assert restored.applied_seq == 1200
        with Subscriber(seq.publish, seq.hwm, seq.replay, restored, hwm_file=seq.hwm_file) as sub:
            drive(sub, caught_up(sub, 3000))
            assert sub.records == 1800
        with Subscriber(seq.publish, seq.hwm, seq.replay, full, hwm_file=seq.hwm_file) as sub:
            drive(sub, caught_up(sub, 3000))
        assert restored.state_hash() == full.state_hash()

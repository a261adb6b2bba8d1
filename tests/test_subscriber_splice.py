"""The pure splicer: ordering, gap fill, late join, epochs, against a simulated sequencer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from consumers.splice import Splicer
from fake_sequencer import HashFold, make_records, one_pass_hash
from sequencer.protocol import RECORD_DTYPE

TIMEOUT = 1_000_000
STALL = 100_000


class World:
    """A simulated sequencer: a journal of frames, a live queue and a replay inbox."""

    def __init__(self, epoch: int = 1) -> None:
        self.epoch = epoch
        self.frames: list[tuple[int, np.ndarray]] = []
        self.last_seq = 0
        self.live: list[tuple[int, int, np.ndarray]] = []
        self.inbox: list[tuple] = []
        self.salt = 0

    def publish(self, n: int) -> tuple[int, int, np.ndarray]:
        recs = make_records(self.last_seq + 1, n, self.epoch, self.salt)
        self.frames.append((self.epoch, recs))
        self.last_seq += n
        frame = (self.epoch, int(recs["seq"][0]), recs)
        self.live.append(frame)
        return frame

    def restart(self, lose_frames: int = 0) -> None:
        if lose_frames:
            del self.frames[len(self.frames) - lose_frames :]
            self.last_seq = int(self.frames[-1][1]["seq"][-1]) if self.frames else 0
        self.epoch += 1
        self.salt += 1

    def journal(self) -> np.ndarray:
        if not self.frames:
            return np.zeros(0, dtype=RECORD_DTYPE)
        return np.concatenate([r for _, r in self.frames])

    def answer(self, want, limit: int, whole_frames: bool) -> None:
        """Queue the replay answer for ``want`` (data chunks then done), like the service."""
        hwm = self.last_seq
        to = hwm if want.to_seq == 0 else min(want.to_seq, hwm)
        end = min(to, want.from_seq + min(limit, want.max_records) - 1)
        last = want.from_seq - 1
        for ep, recs in self.frames:
            f, l = int(recs["seq"][0]), int(recs["seq"][-1])
            if l < want.from_seq or f > end:
                continue
            part = recs if whole_frames else recs[max(0, want.from_seq - f) : end - f + 1]
            self.inbox.append(("D", want.req_id, ep, int(part["seq"][0]), part))
            last = l if whole_frames else min(l, end)
        self.inbox.append(("E", want.req_id, last, hwm, self.epoch, last >= to))


def deliver(sp: Splicer, msg: tuple, now: int) -> None:
    if msg[0] == "D":
        _, rid, ep, first, recs = msg
        sp.on_replay_data(rid, ep, first, recs, now)
    else:
        _, rid, last, hwm, ep, complete = msg
        sp.on_replay_done(rid, last, hwm, ep, complete, now)


def settle(sp: Splicer, world: World, now: int, limit: int = 64, whole: bool = False) -> int:
    """Deliver everything and answer every request until the splicer is current (bounded)."""
    for _ in range(500):
        while world.live:
            sp.on_live(*world.live.pop(0), now)
        while world.inbox:
            deliver(sp, world.inbox.pop(0), now)
        sp.note_hwm(world.epoch, world.last_seq, now)
        now += TIMEOUT + 1
        want = sp.want_replay(now)
        if want is not None:
            world.answer(want, limit, whole)
        elif sp.idle and sp.applied_seq >= world.last_seq or sp.error:
            break
    return now


def test_apply_when_frames_arrive_in_order_then_applies_each_once() -> None:
    fold = HashFold()
    sp = Splicer(fold.apply)
    world = World()
    world.publish(3)
    now = settle(sp, world, 0)
    assert sp.joined and sp.applied_seq == 3
    for _ in range(5):
        sp.on_live(*world.publish(4), now)
    assert sp.applied_seq == 23 and sp.gaps == 0 and sp.replays == 1
    assert fold.state_hash() == one_pass_hash(world.journal())


def test_live_when_frame_overlaps_applied_then_slices_it() -> None:
    fold = HashFold()
    sp = Splicer(fold.apply)
    world = World()
    settle(sp, world, 0)
    recs = make_records(1, 10, 1)
    sp.on_live(1, 1, recs[:6], 1)
    sp.on_live(1, 4, recs[3:], 2)
    sp.on_live(1, 2, recs[1:3], 3)
    assert sp.applied_seq == 10 and sp.duplicates_ignored == 1
    assert fold.state_hash() == one_pass_hash(recs)


def test_live_when_gap_then_requests_exactly_the_gap_and_buffers() -> None:
    fold = HashFold()
    sp = Splicer(fold.apply)
    world = World()
    now = settle(sp, world, 0)
    sp.on_live(*world.publish(5), now)
    world.publish(5)
    world.live.pop()
    sp.on_live(*world.publish(5), now)
    assert sp.gaps == 1 and sp.buffered_frames == 1 and sp.recovering
    want = sp.want_replay(now)
    assert (want.from_seq, want.to_seq, want.reason) == (6, 10, "gap")
    world.answer(want, 100, False)
    settle(sp, world, now)
    assert sp.applied_seq == 15 and not sp.recovering
    assert fold.state_hash() == one_pass_hash(world.journal())


def test_live_when_buffer_full_then_drops_and_replays_instead() -> None:
    fold = HashFold()
    sp = Splicer(fold.apply, max_buffered_frames=2)
    world = World()
    now = settle(sp, world, 0)
    world.publish(1)
    world.live.pop()
    for _ in range(5):
        sp.on_live(*world.publish(2), now)
    assert sp.buffered_frames == 2 and sp.dropped_buffered == 3
    settle(sp, world, now)
    assert sp.applied_seq == 11 and not sp.recovering
    assert fold.state_hash() == one_pass_hash(world.journal())


def test_replay_when_answer_never_comes_then_rerequests_after_timeout() -> None:
    sp = Splicer(HashFold().apply, replay_timeout_ns=TIMEOUT)
    first = sp.want_replay(0)
    assert first is not None and sp.want_replay(TIMEOUT - 1) is None
    again = sp.want_replay(TIMEOUT)
    assert again is not None and again.after_timeout and again.req_id != first.req_id
    assert sp.replay_timeouts == 1
    sp.on_replay_done(first.req_id, 0, 0, 1, True, TIMEOUT + 1)
    assert sp.stale_replies == 1 and not sp.joined


def test_hwm_when_above_applied_without_data_then_replays_at_bounded_rate() -> None:
    fold = HashFold()
    sp = Splicer(fold.apply, stall_ns=STALL)
    world = World()
    now = settle(sp, world, 0)
    world.publish(4)
    world.live.clear()
    sp.note_hwm(1, 4, now)
    assert sp.want_replay(now + STALL - 1) is None
    want = sp.want_replay(now + STALL)
    assert want is not None and want.reason == "stall"
    sp.on_replay_done(want.req_id, 0, 0, 1, True, now + STALL)  # a bogus empty answer
    assert sp.want_replay(now + STALL + 1) is None
    assert sp.want_replay(now + 2 * STALL + TIMEOUT) is not None


def test_epoch_when_restart_is_continuous_then_confirms_and_continues() -> None:
    fold = HashFold()
    sp = Splicer(fold.apply)
    world = World()
    world.publish(3)
    now = settle(sp, world, 0)
    world.restart()
    sp.on_live(*world.publish(2), now)
    assert sp.applied_seq == 3 and sp.recovering
    want = sp.want_replay(now)
    assert want.reason == "epoch" and want.from_seq == 3
    world.answer(want, 100, False)
    settle(sp, world, now)
    assert sp.error is None and sp.applied_seq == 5 and sp.confirmed_epoch == 2
    assert fold.state_hash() == one_pass_hash(world.journal())


def test_epoch_when_lost_tail_restamped_then_sets_error_and_stops_applying() -> None:
    fold = HashFold()
    sp = Splicer(fold.apply)
    world = World()
    world.publish(3)
    world.publish(3)
    now = settle(sp, world, 0)
    world.restart(lose_frames=1)
    world.publish(5)
    sp.on_live(*world.live.pop(), now)
    assert sp.error is not None and "discontinuity" in sp.error
    assert sp.recovering and sp.want_replay(now + TIMEOUT) is None
    sp.on_live(1, 7, make_records(7, 1, 1), now)
    assert sp.applied_seq == 6


def test_epoch_when_heartbeat_shows_shorter_history_then_replay_check_sets_error() -> None:
    sp = Splicer(HashFold().apply)
    world = World()
    world.publish(4)
    now = settle(sp, world, 0)
    world.restart(lose_frames=1)
    sp.note_hwm(world.epoch, world.last_seq, now)
    want = sp.want_replay(now)
    assert want.reason == "epoch"
    world.answer(want, 100, False)
    settle(sp, world, now)
    assert sp.error is not None and "HWM 0" in sp.error


def test_late_join_when_snapshot_restored_then_replays_from_its_seq() -> None:
    world = World()
    world.publish(10)
    journal = world.journal()
    fold = HashFold()
    fold.apply(journal[:6])
    sp = Splicer(fold.apply, applied_seq=6)
    want = sp.want_replay(0)
    assert want.from_seq == 6 and want.reason == "late_join"
    world.answer(want, 100, True)
    settle(sp, world, 0)
    assert sp.applied_epoch == 1 and sp.applied_seq == 10
    assert fold.state_hash() == one_pass_hash(journal)


def test_splicer_when_bad_arguments_then_raises() -> None:
    with pytest.raises(ValueError, match="applied_seq"):
        Splicer(HashFold().apply, applied_seq=-1)
    with pytest.raises(ValueError, match="max_replay_records"):
        Splicer(HashFold().apply, max_replay_records=0)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fold_when_random_drops_joins_and_restarts_then_hash_equals_one_pass(data: st.DataObject) -> None:
    world = World(epoch=data.draw(st.integers(1, 3)))
    sizes = data.draw(st.lists(st.integers(1, 6), min_size=1, max_size=30), label="frame sizes")
    join_at = data.draw(st.integers(0, len(sizes)), label="late join at frame")
    restore = data.draw(st.integers(0, 3), label="snapshot frames")
    limit = data.draw(st.integers(1, 20), label="replay limit")
    whole = data.draw(st.booleans(), label="whole journal frames")
    sp_fold = HashFold()
    for n in sizes[:join_at]:
        world.publish(n)
    world.live.clear()
    prefix = world.journal()[: sum(sizes[: min(restore, join_at)])]
    if len(prefix):
        sp_fold.apply(prefix)
    sp = Splicer(
        sp_fold.apply,
        applied_seq=len(prefix),
        max_buffered_frames=data.draw(st.integers(0, 6), label="buffer"),
        max_replay_records=data.draw(st.integers(1, 30), label="request size"),
        replay_timeout_ns=TIMEOUT,
        stall_ns=STALL,
    )
    now = 0
    for n in sizes[join_at:]:
        if data.draw(st.integers(0, 9)) == 0:
            world.restart()
        world.publish(n)
        for _ in range(data.draw(st.integers(0, 3))):
            act = data.draw(st.sampled_from(["live", "drop", "inbox", "lose", "hwm", "want", "tick"]))
            if act == "live" and world.live:
                sp.on_live(*world.live.pop(0), now)
            elif act == "drop" and world.live:
                world.live.pop(0)
            elif act == "inbox" and world.inbox:
                deliver(sp, world.inbox.pop(0), now)
            elif act == "lose":
                world.inbox.clear()
            elif act == "hwm":
                sp.note_hwm(world.epoch, world.last_seq, now)
            elif act == "want":
                want = sp.want_replay(now)
                if want is not None:
                    world.answer(want, limit, whole)
            elif act == "tick":
                now += data.draw(st.sampled_from([1, STALL, TIMEOUT]))
    settle(sp, world, now, limit, whole)
    assert sp.error is None
    assert sp.applied_seq == world.last_seq and not sp.recovering
    assert sp_fold.state_hash() == one_pass_hash(world.journal())


class SpliceMachine(RuleBasedStateMachine):
    """Random interleavings including restarts that lose a journal tail.

    Oracle: a consumer that folded a record the journal no longer holds must end in
    ``error``; any other consumer must end current with the one-pass hash.
    """

    @initialize(buffer=st.integers(0, 4), request=st.integers(1, 12))
    def setup(self, buffer: int, request: int) -> None:
        self.world = World()
        self.fold = HashFold()
        self.now = 0
        self.sp = Splicer(
            self.fold.apply, max_buffered_frames=buffer, max_replay_records=request, replay_timeout_ns=TIMEOUT, stall_ns=STALL
        )

    @rule(n=st.integers(1, 5))
    def publish(self, n: int) -> None:
        self.world.publish(n)

    @rule()
    def deliver_live(self) -> None:
        if self.world.live:
            self.sp.on_live(*self.world.live.pop(0), self.now)

    @rule()
    def drop_live(self) -> None:
        if self.world.live:
            self.world.live.pop(0)

    @rule()
    def deliver_replay(self) -> None:
        if self.world.inbox:
            deliver(self.sp, self.world.inbox.pop(0), self.now)

    @rule(whole=st.booleans(), limit=st.integers(1, 10))
    def request(self, whole: bool, limit: int) -> None:
        want = self.sp.want_replay(self.now)
        if want is not None:
            self.world.answer(want, limit, whole)

    @rule()
    def heartbeat(self) -> None:
        self.sp.note_hwm(self.world.epoch, self.world.last_seq, self.now)

    @rule(dt=st.sampled_from([1, STALL, TIMEOUT]))
    def tick(self, dt: int) -> None:
        self.now += dt

    @rule(lose=st.integers(0, 2), keep_inbox=st.booleans(), keep_live=st.booleans())
    def restart(self, lose: int, keep_inbox: bool, keep_live: bool) -> None:
        self.world.restart(min(lose, len(self.world.frames)))
        if not keep_inbox:
            self.world.inbox.clear()
        if not keep_live:
            self.world.live.clear()

    @invariant()
    def applied_is_contiguous_prefix(self) -> None:
        assert self.fold.applied_seq == self.sp.applied_seq
        if self.sp.error is not None:
            assert self.sp.recovering

    def teardown(self) -> None:
        if not hasattr(self, "sp"):
            return
        settle(self.sp, self.world, self.now)
        journal = self.world.journal()
        got = self.fold.applied_epochs()
        n = min(len(got), len(journal))
        diverged = len(got) > len(journal) or not np.array_equal(got[:n], journal["epoch"][:n])
        if diverged:
            assert self.sp.error is not None
        else:
            assert self.sp.error is None, self.sp.error
            assert self.sp.applied_seq == self.world.last_seq
            assert self.fold.state_hash() == one_pass_hash(journal)


SpliceMachine.TestCase.settings = settings(max_examples=120, stateful_step_count=40, deadline=None)
test_splice_machine_when_random_faults_then_current_or_error_exactly_when_diverged = SpliceMachine.TestCase

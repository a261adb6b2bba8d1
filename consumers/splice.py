"""The splicer: pure ordering, gap and epoch logic of a consumer (no sockets, no clocks).

A :class:`Splicer` is fed the frames a consumer receives, live (PUB) or from the replay
service, plus HWM updates, each call carrying the caller's monotonic ``now_ns``. It decides
what to apply (in seq order, each seq exactly once, partially overlapping frames sliced),
what to buffer and which range to ask the replay service for (:meth:`Splicer.want_replay`).
Everything it does is a function of its inputs, so tests drive it directly.

Epochs and the anchor. Every replay request starts at the *anchor*: the last applied seq
(overlapping by one record), and the first frame of the answer must carry that seq in the
epoch the consumer applied it in. A sequencer that lost a journal tail (power loss with
``batch``/``none`` durability) and restamped those seqs in a new epoch fails that check, so
the divergence is detected instead of silently folded. Live frames of an epoch newer than
the last *confirmed* one wait in the buffer until a replay answer from that epoch has
confirmed the anchor. A detected discontinuity sets :attr:`Splicer.error`; from then on
nothing is applied (the consumer must be rebuilt from an older snapshot or from seq 1).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

__all__ = ["Splicer", "ReplayWant"]


class ReplayWant(NamedTuple):
    """A replay request the caller should send now: ``from_seq..to_seq`` (0 = up to the HWM)."""

    req_id: int
    from_seq: int
    to_seq: int
    max_records: int
    reason: str
    after_timeout: bool


class _Pending:
    """The one outstanding replay request."""

    __slots__ = (
        "req_id", "from_seq", "to_seq", "anchored", "anchor_seq", "anchor_epoch", "anchor_ok", "abandoned",
        "activity_ns", "reason",
    )

    def __init__(self, want: ReplayWant, anchored: bool, anchor_seq: int, anchor_epoch: int, now_ns: int) -> None:
        self.req_id = want.req_id
        self.from_seq = want.from_seq
        self.to_seq = want.to_seq
        self.anchored = anchored
        self.anchor_seq = anchor_seq
        self.anchor_epoch = anchor_epoch
        self.anchor_ok = anchor_seq == 0
        self.abandoned = False
        self.activity_ns = now_ns
        self.reason = want.reason


class Splicer:
    """Orders live and replayed frames into one contiguous stream for ``apply``.

    ``apply(records)`` is called with record arrays whose first seq is always
    ``applied_seq + 1``. ``applied_seq``/``applied_epoch`` start from the fold's state
    (``applied_epoch`` 0 = unknown, learned from the first replay answer).
    """

    def __init__(
        self,
        apply: Callable[[np.ndarray], None],
        applied_seq: int = 0,
        applied_epoch: int = 0,
        *,
        max_buffered_frames: int = 1024,
        max_replay_records: int = 65536,
        replay_timeout_ns: int = 1_000_000_000,
        replay_retry_ns: int = 100_000_000,
        stall_ns: int = 50_000_000,
    ) -> None:
        if applied_seq < 0:
            raise ValueError(f"applied_seq must be >= 0, got {applied_seq}")
        if max_buffered_frames < 0:
            raise ValueError(f"max_buffered_frames must be >= 0, got {max_buffered_frames}")
        if max_replay_records < 1:
            raise ValueError(f"max_replay_records must be >= 1, got {max_replay_records}")
        self._apply = apply
        self.applied_seq = applied_seq
        self.applied_epoch = applied_epoch
        self.max_buffered_frames = max_buffered_frames
        self.max_replay_records = max_replay_records
        self.replay_timeout_ns = replay_timeout_ns
        self.replay_retry_ns = replay_retry_ns
        self.stall_ns = stall_ns
        # The newest sequencer epoch whose history is known to contain our applied prefix.
        self.confirmed_epoch = 0
        self.seen_epoch = 0
        self.hwm = 0
        self.joined = False
        self.error: str | None = None
        self._buffer: list[tuple[int, int, int, np.ndarray]] = []  # (first, last, epoch, records)
        self._firsts: list[int] = []
        self._pending: _Pending | None = None
        self._next_req_id = 1
        self._continue = False
        self._continue_to = 0
        self._dropped_tail = 0
        self._behind_since: int | None = None
        self._last_request_ns: int | None = None
        self._retry_at_ns = 0
        self.frames = 0
        self.replay_frames = 0
        self.records = 0
        self.gaps = 0
        self.replays = 0
        self.replay_timeouts = 0
        self.replay_errors = 0
        self.stale_replies = 0
        self.duplicates_ignored = 0
        self.dropped_buffered = 0
        self.stale_epoch_frames = 0

    # ----------------------------------------------------------------- state queries
    @property
    def buffered_frames(self) -> int:
        """Live frames waiting for a gap fill or an epoch confirmation."""
        return len(self._buffer)

    @property
    def pending_request(self) -> int | None:
        """The req_id of the outstanding replay request, if any."""
        return self._pending.req_id if self._pending is not None else None

    @property
    def idle(self) -> bool:
        """Nothing in progress: joined, no replay outstanding, nothing buffered, no error."""
        return (
            self._pending is None
            and not self._continue
            and not self._buffer
            and self.joined
            and self.error is None
            and self.seen_epoch <= self.confirmed_epoch
            and self._dropped_tail <= self.applied_seq
        )

    @property
    def recovering(self) -> bool:
        """True while a late join, gap fill or epoch check is in progress, or after an error."""
        return not self.idle

    # ----------------------------------------------------------------- inputs
    def note_hwm(self, epoch: int, hwm: int, now_ns: int) -> None:
        """The newest HWM known (heartbeat or HWM file); drives stall detection."""
        if epoch > self.seen_epoch:
            self.seen_epoch = epoch
        self.hwm = hwm
        if hwm > self.applied_seq:
            if self._behind_since is None:
                self._behind_since = now_ns
        else:
            self._behind_since = None

    def on_live(self, epoch: int, first_seq: int, records: np.ndarray, now_ns: int) -> None:
        """A stamped frame from the publish socket."""
        self.frames += 1
        n = len(records)
        if n == 0:
            return
        if epoch > self.seen_epoch:
            self.seen_epoch = epoch
        if self.error is not None:
            return
        if epoch < self.confirmed_epoch:
            # A late frame of a sequencer process that has since restarted: its tail may not
            # be in the journal, so only the replay service may supply those seqs.
            self.stale_epoch_frames += 1
            return
        last = first_seq + n - 1
        applied = self.applied_seq
        if first_seq <= applied and self.applied_epoch and epoch > self.applied_epoch:
            # A newer epoch restamped a seq we applied: the journal lost a tail we folded.
            self._discontinuity(first_seq, epoch)
            return
        if last <= applied:
            self.duplicates_ignored += 1
            return
        if not self._buffer and first_seq <= applied + 1 and epoch == self.confirmed_epoch and self.joined:
            self._apply_slice(first_seq, epoch, records, now_ns)
            return
        if first_seq > applied + 1 and not self._buffer and self.joined:
            self.gaps += 1
        if len(self._buffer) >= self.max_buffered_frames:
            self.dropped_buffered += 1
            if last > self._dropped_tail:
                self._dropped_tail = last
            return
        i = bisect.bisect_right(self._firsts, first_seq)
        self._firsts.insert(i, first_seq)
        self._buffer.insert(i, (first_seq, last, epoch, records))
        if self.joined:
            self._drain(now_ns)

    def on_replay_data(self, req_id: int, epoch: int, first_seq: int, records: np.ndarray, now_ns: int) -> None:
        """One chunk (a journal frame) of a replay answer."""
        p = self._pending
        if p is None or req_id != p.req_id:
            self.stale_replies += 1
            return
        p.activity_ns = now_ns
        self.replay_frames += 1
        n = len(records)
        if self.error is not None or n == 0 or p.abandoned:
            return
        last = first_seq + n - 1
        if not p.anchored and epoch > self.confirmed_epoch:
            # The serving sequencer restarted since our last check: records of its new epoch
            # may only be applied after an anchored request has confirmed our prefix.
            if epoch > self.seen_epoch:
                self.seen_epoch = epoch
            p.abandoned = True
            return
        if not p.anchor_ok:
            a = p.anchor_seq
            if first_seq > a:
                self._set_error(
                    f"replay from seq {a} started at seq {first_seq} (epoch {epoch}): the sequencer no longer "
                    f"has seq {a}, which this consumer applied in epoch {p.anchor_epoch or '?'}"
                )
                return
            if last < a:
                return
            if p.anchor_epoch and epoch != p.anchor_epoch:
                self._set_error(
                    f"epoch discontinuity: seq {a} was applied in epoch {p.anchor_epoch} but the sequencer's "
                    f"journal has it in epoch {epoch} (events after a lost journal tail were restamped)"
                )
                return
            p.anchor_ok = True
            if not self.applied_epoch and self.applied_seq == a:
                self.applied_epoch = epoch
        if first_seq > self.applied_seq + 1:
            # The journal answers contiguously from the anchor; a hole means a broken answer.
            self.replay_errors += 1
            self._pending = None
            self._retry_at_ns = now_ns + self.replay_retry_ns
            return
        if last > self.applied_seq:
            self._apply_slice(first_seq, epoch, records, now_ns)

    def on_replay_done(
        self,
        req_id: int,
        last_seq: int,
        hwm: int,
        epoch: int,
        complete: bool,
        now_ns: int,
        code: int = 0,
        error: str = "",
    ) -> None:
        """The ``ReplayDone`` that ends a replay answer."""
        p = self._pending
        if p is None or req_id != p.req_id:
            self.stale_replies += 1
            return
        self._pending = None
        if epoch > self.seen_epoch:
            self.seen_epoch = epoch
        if self.error is not None:
            return
        if not p.anchor_ok and hwm < p.anchor_seq:
            self._set_error(
                f"epoch discontinuity: the sequencer (epoch {epoch}) has HWM {hwm}, below seq "
                f"{p.anchor_seq} that this consumer applied: its journal lost events this consumer folded"
            )
            return
        empty_journal = p.anchor_seq == 0 and hwm == 0
        if (code != 0 or error) and not empty_journal or not p.anchor_ok:
            self.replay_errors += 1
            self._retry_at_ns = now_ns + self.replay_retry_ns
            return
        if p.abandoned:
            return
        if p.anchored and epoch > self.confirmed_epoch:
            self.confirmed_epoch = epoch
            # Frames dropped before the restart may be a lost tail: gaps and stalls of the
            # confirmed epoch are detected afresh.
            self._dropped_tail = 0
        complete = complete or empty_journal
        self._continue = not complete
        self._continue_to = p.to_seq
        self.joined = True
        self._drain(now_ns)

    # ----------------------------------------------------------------- decisions
    def want_replay(self, now_ns: int) -> ReplayWant | None:
        """The replay request to send now, or None. Registers it as outstanding."""
        if self.error is not None:
            return None
        after_timeout = False
        p = self._pending
        if p is not None:
            if now_ns - p.activity_ns < self.replay_timeout_ns:
                return None
            self._pending = None
            self.replay_timeouts += 1
            after_timeout = True
        elif now_ns < self._retry_at_ns:
            return None
        applied = self.applied_seq
        to_seq = 0
        if self._continue and self._continue_to and applied >= self._continue_to:
            self._continue = False
        if not self.joined:
            reason = "late_join"
        elif self.seen_epoch > self.confirmed_epoch:
            reason = "epoch"
        elif self._continue:
            reason = "continue"
            to_seq = self._continue_to
        elif self._buffer:
            reason = "gap"
            to_seq = max(self._buffer[0][0] - 1, applied)
        elif self._dropped_tail > applied:
            reason = "dropped"
            to_seq = self._dropped_tail
        elif (
            self.hwm > applied
            and self._behind_since is not None
            and now_ns - self._behind_since >= self.stall_ns
            and (self._last_request_ns is None or now_ns - self._last_request_ns >= self.stall_ns)
        ):
            reason = "stall"
        else:
            return None
        # Only a request that confirms an epoch overlaps the applied seq by one record (the
        # anchor); others start after it, so a server cap of one record still makes progress.
        anchored = reason in ("late_join", "epoch")
        anchor = applied if anchored else 0
        want = ReplayWant(
            self._next_req_id,
            anchor if anchor > 0 else applied + 1,
            to_seq,
            self.max_replay_records + (1 if anchor else 0),
            reason,
            after_timeout,
        )
        self._next_req_id += 1
        self._pending = _Pending(want, anchored, anchor, self.applied_epoch, now_ns)
        self._last_request_ns = now_ns
        self.replays += 1
        return want

    # ----------------------------------------------------------------- internals
    def _apply_slice(self, first_seq: int, epoch: int, records: np.ndarray, now_ns: int) -> None:
        applied = self.applied_seq
        skip = applied + 1 - first_seq
        if skip > 0:
            if self.applied_epoch and epoch > self.applied_epoch:
                self._discontinuity(first_seq, epoch)
                return
            records = records[skip:]
        n = len(records)
        if n == 0:
            return
        self._apply(records)
        self.applied_seq = applied = applied + n
        self.applied_epoch = epoch
        self.records += n
        self._behind_since = now_ns if self.hwm > applied else None

    def _drain(self, now_ns: int) -> None:
        buf = self._buffer
        i = 0
        while i < len(buf):
            first, last, epoch, records = buf[i]
            if epoch < self.confirmed_epoch:
                self.stale_epoch_frames += 1
            elif last <= self.applied_seq:
                if self.applied_epoch and epoch > self.applied_epoch:
                    self._discontinuity(first, epoch)
                    return
                self.duplicates_ignored += 1
            elif first > self.applied_seq + 1 or epoch > self.confirmed_epoch:
                break
            else:
                self._apply_slice(first, epoch, records, now_ns)
                if self.error is not None:
                    return
            i += 1
        if i:
            del buf[:i]
            del self._firsts[:i]

    def _discontinuity(self, first_seq: int, epoch: int) -> None:
        self._set_error(
            f"epoch discontinuity: epoch {epoch} restamped seq {first_seq}, at or below seq {self.applied_seq} "
            f"that this consumer applied in epoch {self.applied_epoch}"
        )

    def _set_error(self, text: str) -> None:
        if self.error is None:
            self.error = text
        self._buffer.clear()
        self._firsts.clear()

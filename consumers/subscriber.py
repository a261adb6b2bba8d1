"""``Subscriber``: keeps a fold current with the sequencer's ordered stream.

It owns the consumer side of three sockets (publish SUB, conflated heartbeat SUB, replay
DEALER, whose side lives in :class:`~consumers.replay_client.ReplayClient`) and optionally
the HWM file, and feeds what arrives to a
:class:`~consumers.splice.Splicer`, which decides what the fold applies and which ranges to
ask the replay service for. Nothing runs in the background: :meth:`Subscriber.poll` does
the work in the caller's thread and :meth:`Subscriber.run` loops over it.

``poll()`` is meant to be called very often (the gate calls it in every ``check()``).
When the HWM file is available and says nothing new was published it returns after one
read of a mapped page, without a syscall; otherwise it asks the data socket with
``getsockopt(EVENTS)`` (no exceptions on the idle path). Heartbeats, timers and reports
are looked at once every ``check_interval_s``. The facts that quick return rests on are
mirrored in ``Subscriber.quiet`` (:mod:`consumers.quiet`), so compiled code (the gate's check
kernel) can tell that ``poll()`` would do nothing without calling it.
"""

from __future__ import annotations

import struct
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import zmq

from consumers.frames import decode_stamped
from consumers.hwm import HwmFile, HwmTracker
from consumers.quiet import (
    NOT_QUIET, Q_FILE, Q_FROM, Q_GEN, Q_HWM, Q_HWM_TS, Q_STREAM, Q_UNTIL, STREAM_ERROR, STREAM_RECOVERING, new_quiet_state,
)
from consumers.replay_client import ReplayClient
from consumers.splice import Splicer
from sequencer.log import get_logger
from sequencer.protocol import FrameError, decode_heartbeat

__all__ = ["Subscriber", "FoldLike"]

_log = get_logger("subscriber")
# Plain ints: pyzmq's enum members cost microseconds per getsockopt and per ``&``.
_POLLIN = int(zmq.POLLIN)
_EVENTS = int(zmq.EVENTS)
_NOBLOCK = int(zmq.NOBLOCK)
_mono = time.monotonic_ns
_wall = time.time_ns
_GEN = struct.Struct("<Q").unpack_from


class FoldLike(Protocol):
    """What a Subscriber needs of a fold (``consumers.fold.Fold`` satisfies it)."""

    @property
    def applied_seq(self) -> int: ...

    def apply(self, records: np.ndarray) -> None: ...


class Subscriber(ReplayClient):
    """Subscribe, late-join, fill gaps, track the HWM and fold the stream into ``fold``.

    Arguments: the sequencer's ``publish``, ``hwm`` and ``replay`` endpoints; ``fold`` (any
    object with ``applied_seq`` and ``apply(records)``; restored from a snapshot, it
    continues from its seq); ``hwm_file`` (path of the sequencer's HWM file when on the same
    host, or None); ``name`` (shown in the sequencer's status). Tuning:
    ``max_buffered_frames`` (live frames held while a gap is filled; beyond it they are
    dropped and replayed instead), ``report_interval_s`` (how often a ``ConsumerReport`` is
    sent; None or 0 = never), ``replay_timeout_s`` (re-ask when an answer stalls that
    long), ``stall_s`` (how long the HWM may sit above the applied seq with no data before a
    replay is asked for; also the minimum spacing of such requests), ``max_replay_records``,
    ``check_interval_s`` (how often heartbeats, timers and reports are looked at).

    ``quiet`` (int64 array, :mod:`consumers.quiet`) says when ``poll()`` would return 0 without
    doing anything, and ``stream_state`` is ``(hwm, hwm_ts_ns, recovering, error)`` in one tuple
    (what the properties of those names return): both are refreshed by every poll that does
    more than that quick return, the only place they change; ``quiet`` stays the same array.
    """

    def __init__(
        self,
        publish: str,
        hwm: str,
        replay: str,
        fold: Any,
        hwm_file: str | Path | None = None,
        name: str = "consumer",
        *,
        max_buffered_frames: int = 1024,
        report_interval_s: float | None = 1.0,
        replay_timeout_s: float = 1.0,
        stall_s: float = 0.05,
        max_replay_records: int = 65536,
        check_interval_s: float = 0.001,
        rcvhwm: int = 10_000,
        context: zmq.Context | None = None,
    ) -> None:
        self.publish_endpoint = publish
        self.hwm_endpoint = hwm
        self.replay_endpoint = replay
        self.fold = fold
        self.name = name
        self._ctx = context or zmq.Context.instance()
        self._rcvhwm = rcvhwm
        self._splicer = Splicer(
            fold.apply,
            int(fold.applied_seq),
            int(getattr(fold, "applied_epoch", 0) or 0),
            max_buffered_frames=max_buffered_frames,
            max_replay_records=max_replay_records,
            replay_timeout_ns=int(replay_timeout_s * 1e9),
            stall_ns=int(stall_s * 1e9),
        )
        self._tracker = HwmTracker()
        self._file = HwmFile(hwm_file) if hwm_file else None
        self._file_gen = -1
        self._file_key = (-1, -1)  # (epoch, ts_ns) of the file's last read
        self._quiet_gen = NOT_QUIET
        self.quiet = new_quiet_state()
        self._wall_from = 0
        self._check_ns = max(0, int(check_interval_s * 1e9))
        self._next_check_ns = 0
        self._report_ns = int(report_interval_s * 1e9) if report_interval_s else 0
        self._next_report_ns = 0
        self._sub = self._ctx.socket(zmq.SUB)
        self._sub.setsockopt(zmq.LINGER, 0)
        self._sub.setsockopt(zmq.RCVHWM, rcvhwm)
        self._sub.setsockopt(zmq.SUBSCRIBE, b"")
        self._sub.connect(publish)
        self._hb = self._ctx.socket(zmq.SUB)
        self._hb.setsockopt(zmq.LINGER, 0)
        self._hb.setsockopt(zmq.CONFLATE, 1)
        self._hb.setsockopt(zmq.SUBSCRIBE, b"")
        self._hb.connect(hwm)
        self._dealer = self._new_dealer()
        self._sockets_changed = True
        self._logged_error: str | None = None
        self._closed = False
        self.bad_frames = 0
        self.bad_heartbeats = 0
        self.reports_sent = 0
        self.last_bad_frame: str | None = None
        self.stream_state: tuple[int, int, bool, str | None] = (0, 0, True, None)
        self._mirror(None)

    # ------------------------------------------------------------------ state
    @property
    def applied_seq(self) -> int:
        """Seq of the last record the fold applied."""
        return self._splicer.applied_seq

    @property
    def hwm(self) -> int:
        """The newest HWM known (heartbeat or HWM file, whichever the sequencer stamped later)."""
        return self._tracker.hwm

    @property
    def hwm_ts_ns(self) -> int:
        """The sequencer's wall-clock timestamp of that HWM (0 before any)."""
        return self._tracker.ts_ns

    def hwm_age_ns(self, now_ns: int | None = None) -> int:
        """Nanoseconds since the sequencer stamped the newest HWM (``time.time_ns()`` clock)."""
        return self._tracker.age_ns(now_ns)

    @property
    def lag(self) -> int:
        """``max(0, hwm - applied_seq)``: events that exist and the fold has not applied."""
        return max(0, self._tracker.hwm - self._splicer.applied_seq)

    @property
    def epoch(self) -> int:
        """The newest sequencer epoch seen (heartbeat, file, frames, replay answers)."""
        return max(self._tracker.epoch, self._splicer.seen_epoch)

    @property
    def recovering(self) -> bool:
        """True during late join, gap fill or an epoch check, and after an ``error``."""
        return self._splicer.recovering

    @property
    def error(self) -> str | None:
        """None, or why this consumer can no longer be current (epoch discontinuity)."""
        return self._splicer.error

    @property
    def gaps(self) -> int:
        """Live frames that did not continue the applied seq (each starts a gap fill)."""
        return self._splicer.gaps

    @property
    def replays(self) -> int:
        """Replay requests sent."""
        return self._splicer.replays

    @property
    def frames(self) -> int:
        """Live frames received."""
        return self._splicer.frames

    @property
    def records(self) -> int:
        """Records applied to the fold (live and replayed)."""
        return self._splicer.records

    @property
    def duplicates_ignored(self) -> int:
        """Live frames entirely at or below the applied seq."""
        return self._splicer.duplicates_ignored

    @property
    def dropped_buffered(self) -> int:
        """Live frames dropped because the gap buffer was full (replayed instead)."""
        return self._splicer.dropped_buffered

    def counters(self) -> dict[str, int]:
        """Every counter by name (for status lines and tests)."""
        sp = self._splicer
        return {
            "applied_seq": sp.applied_seq,
            "hwm": self._tracker.hwm,
            "lag": self.lag,
            "epoch": self.epoch,
            "frames": sp.frames,
            "records": sp.records,
            "gaps": sp.gaps,
            "replays": sp.replays,
            "replay_frames": sp.replay_frames,
            "replay_timeouts": sp.replay_timeouts,
            "replay_errors": sp.replay_errors,
            "stale_replies": sp.stale_replies,
            "duplicates_ignored": sp.duplicates_ignored,
            "dropped_buffered": sp.dropped_buffered,
            "stale_epoch_frames": sp.stale_epoch_frames,
            "buffered_frames": sp.buffered_frames,
            "bad_frames": self.bad_frames,
            "bad_heartbeats": self.bad_heartbeats,
            "reports_sent": self.reports_sent,
        }

    # ------------------------------------------------------------------ driving
    def poll(self, max_frames: int = 64) -> int:
        """Apply what is pending without blocking; returns the frames handled (live + replay)."""
        now = _mono()
        hf = self._file
        if hf is not None:
            mm = hf.mm
            # Fast path: the last full poll found us current and the sequencer has not
            # written its HWM file since (one read of a mapped page, no syscall).
            if mm is not None and now < self._next_check_ns and _GEN(mm, 8)[0] == self._quiet_gen:
                return 0
        try:
            return self._poll(now, hf, max_frames)
        finally:
            # Even when the fold raised: what was applied and heard so far is the state.
            self._mirror(hf)

    def _poll(self, now: int, hf: HwmFile | None, max_frames: int) -> int:
        if hf is not None and hf.generation(now) != self._file_gen:
            self._read_file(now)
        sp = self._splicer
        if now >= self._next_check_ns:
            self._periodic(now)
        n = 0
        if sp.pending_request is not None:
            n = self._drain_replay(now, max_frames)
        sub = self._sub
        if n < max_frames and sub.getsockopt(_EVENTS) & _POLLIN:
            # One EVENTS check per poll (the idle path); while frames flow, recv until empty
            # (one Again per drain is cheaper than a getsockopt syscall per frame).
            recv = sub.recv
            while n < max_frames:
                try:
                    msg = recv(_NOBLOCK, copy=False)
                except zmq.Again:
                    break
                self._on_live(msg, now)
                n += 1
        if n:
            self._request(now)
            if sp.error is not None and sp.error != self._logged_error:
                self._log_error()
        if hf is not None:
            tr = self._tracker
            # Quiet only while the file is the newest HWM source: a file no sequencer writes
            # any more (a stale path) must not stand for "nothing new was published".
            quiet = sp.idle and tr.hwm <= sp.applied_seq and self._file_key >= (tr.epoch, tr.ts_ns)
            self._quiet_gen = self._file_gen if quiet else NOT_QUIET
        return n

    def run(self, stop: threading.Event, *, max_frames: int = 512, idle_wait_s: float = 0.005) -> None:
        """Poll until ``stop`` is set; waits at most ``idle_wait_s`` when nothing is pending."""
        poller = zmq.Poller()
        wait_ms = max(1, int(idle_wait_s * 1000))
        while not stop.is_set():
            if self.poll(max_frames):
                continue
            if self._sockets_changed:
                poller = zmq.Poller()
                for s in (self._sub, self._hb, self._dealer):
                    poller.register(s, zmq.POLLIN)
                self._sockets_changed = False
            poller.poll(wait_ms)

    def close(self) -> None:
        """Close the sockets and the HWM file (the context is left to its owner)."""
        if self._closed:
            return
        self._closed = True
        self.quiet[Q_FILE] = 0
        self.quiet[Q_GEN] = NOT_QUIET
        for s in (self._sub, self._hb, self._dealer):
            s.close(0)
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals
    def _mirror(self, hf: HwmFile | None) -> None:
        """Refresh ``stream_state`` and copy the quick return's conditions into ``quiet``."""
        sp = self._splicer
        tr = self._tracker
        self.stream_state = (tr.hwm, tr.ts_ns, sp.recovering, sp.error)
        if hf is not None:
            q = self.quiet
            q[Q_FILE] = hf.gen_address
            q[Q_GEN] = self._quiet_gen
            q[Q_FROM] = self._wall_from
            q[Q_UNTIL] = self._wall_from + self._check_ns
            q[Q_HWM] = tr.hwm
            q[Q_HWM_TS] = tr.ts_ns
            q[Q_STREAM] = (STREAM_RECOVERING if sp.recovering else 0) | (0 if sp.error is None else STREAM_ERROR)

    def _periodic(self, now: int) -> None:
        self._next_check_ns = now + self._check_ns
        self._wall_from = _wall()
        hb = self._hb
        if hb.getsockopt(_EVENTS) & _POLLIN:
            msg = hb.recv(_NOBLOCK)
            try:
                epoch, hwm, ts = decode_heartbeat(msg)
            except FrameError as exc:
                self.bad_heartbeats += 1
                _log.warning("bad heartbeat ignored: %s", exc)
            else:
                if self._tracker.update(epoch, hwm, ts):
                    self._splicer.note_hwm(self._tracker.epoch, self._tracker.hwm, now)
        if self._file is not None:
            gen = self._file.generation(now)
            if gen != self._file_gen:
                self._read_file(now)
        if self._splicer.pending_request is None and self._dealer.getsockopt(_EVENTS) & _POLLIN:
            self._drain_replay(now, 64)
        self._request(now)
        if self._report_ns and now >= self._next_report_ns:
            self._next_report_ns = now + self._report_ns
            self._send_report()
        if self._splicer.error is not None and self._splicer.error != self._logged_error:
            self._log_error()

    def _read_file(self, now: int) -> None:
        got = self._file.read() if self._file is not None else None
        if got is None:
            return
        self._file_gen, (epoch, hwm, ts) = got
        self._file_key = (epoch, ts)
        if self._tracker.update(epoch, hwm, ts):
            self._splicer.note_hwm(self._tracker.epoch, self._tracker.hwm, now)

    def _on_live(self, msg: zmq.Frame, now: int) -> None:
        if msg.more:
            self._discard_rest(self._sub)
            self._bad("multipart message on the publish socket")
            return
        try:
            epoch, first, records = decode_stamped(msg.buffer)
        except FrameError as exc:
            self._bad(str(exc))
            return
        self._splicer.on_live(epoch, first, records, now)

    def _bad(self, why: str) -> None:
        self.bad_frames += 1
        self.last_bad_frame = why
        _log.warning("bad frame ignored (%d so far): %s", self.bad_frames, why)

    @staticmethod
    def _discard_rest(sock: zmq.Socket) -> None:
        while sock.getsockopt(zmq.RCVMORE):
            sock.recv(_NOBLOCK)

    def _log_error(self) -> None:
        self._logged_error = self._splicer.error
        _log.error("consumer %s stopped applying: %s", self.name, self._logged_error,
                   extra={"epoch": self.epoch, "seq": self.applied_seq})

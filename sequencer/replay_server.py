"""The replay ROUTER: ranges of the journal in bounded chunks, status, consumer reports.

Runs inside the sequencer's single-threaded loop: every request is answered from the
journal (never from memory that is not journaled), at most :data:`REPLAY_CAP` records per
request and :data:`CHUNK_RECORDS` per frame, and a frame never mixes epochs. Malformed
requests are counted and answered with an ``[b"E", ReplayDone]`` carrying ``BAD_MESSAGE``;
they never stop the loop.
"""

from __future__ import annotations

import time
from typing import Callable

import msgspec
import numpy as np
import zmq

from sequencer.codes import ResultCode
from sequencer.journal import JournalError
from sequencer.messages import (
    REPLAY_DATA,
    REPLAY_DONE,
    STATUS_REPLY,
    ConsumerReport,
    ConsumerStatus,
    ReplayDone,
    ReplayRequest,
    StatusReply,
    StatusRequest,
    decode_request,
    encode,
)
from sequencer.protocol import FrameType, encode_frame

__all__ = ["ReplayServer", "REPLAY_CAP", "CHUNK_RECORDS", "MAX_CONSUMERS"]

REPLAY_CAP = 65536
CHUNK_RECORDS = 4096
MAX_CONSUMERS = 1024
_U64 = (1 << 64) - 1
_ZERO_COPY_BYTES = 1 << 16


class ReplayServer:
    """Answers the replay socket. ``state`` supplies what only the sequencer knows."""

    def __init__(
        self,
        sock: zmq.Socket,
        journal: object,
        hwm: Callable[[], int],
        epoch: Callable[[], int],
        status: Callable[[list[ConsumerStatus]], StatusReply],
        count_error: Callable[[ResultCode], None],
        log: object,
    ) -> None:
        self.sock = sock
        self.journal = journal
        self._hwm = hwm
        self._epoch = epoch
        self._status = status
        self._count_error = count_error
        self._log = log
        self._consumers: dict[str, tuple[ConsumerReport, float]] = {}
        self.requests = 0

    def drain(self, max_messages: int = 32) -> int:
        """Answer up to ``max_messages`` pending requests without blocking; returns how many."""
        n = 0
        while n < max_messages:
            try:
                parts = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            n += 1
            self.handle(parts)
        return n

    def handle(self, parts: list[bytes]) -> None:
        """Answer one multipart message ``[identity, request]``."""
        self.requests += 1
        ident = parts[0]
        if len(parts) != 2:
            self._bad(ident, f"expected one request part, got {len(parts) - 1}")
            return
        try:
            req = decode_request(parts[1])
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._bad(ident, f"undecodable request: {exc}")
            return
        if isinstance(req, ReplayRequest):
            self._replay(ident, req)
        elif isinstance(req, StatusRequest):
            self.sock.send_multipart([ident, STATUS_REPLY, encode(self._status(self.consumers()))])
        elif isinstance(req, ConsumerReport):
            if req.name in self._consumers or len(self._consumers) < MAX_CONSUMERS:
                self._consumers[req.name] = (req, time.monotonic())

    def consumers(self) -> list[ConsumerStatus]:
        """The last report of every consumer, with its age in seconds."""
        now = time.monotonic()
        return [
            ConsumerStatus(r.name, r.applied_seq, r.hwm, r.lag, r.epoch, round(now - t, 3))
            for r, t in sorted(self._consumers.values(), key=lambda x: x[0].name)
        ]

    def _bad(self, ident: bytes, why: str) -> None:
        self._count_error(ResultCode.BAD_MESSAGE)
        self._log.warning("malformed replay request: %s", why)
        done = ReplayDone(0, 0, -1, self._hwm(), self._epoch(), False, int(ResultCode.BAD_MESSAGE), why)
        self.sock.send_multipart([ident, REPLAY_DONE, encode(done)])

    def _done(self, ident: bytes, req: ReplayRequest, last: int, complete: bool,
              code: ResultCode = ResultCode.OK, error: str = "") -> None:
        done = ReplayDone(req.req_id, req.from_seq, last, self._hwm(), self._epoch(), complete, int(code), error)
        self.sock.send_multipart([ident, REPLAY_DONE, encode(done)])

    def _replay(self, ident: bytes, req: ReplayRequest) -> None:
        hwm = self._hwm()
        first = max(1, int(getattr(self.journal, "first_seq", 1) or 1))
        to = req.to_seq if req.to_seq else hwm
        before = req.from_seq - 1
        if req.max_records <= 0:
            self._count_error(ResultCode.BAD_MESSAGE)
            self._done(ident, req, before, False, ResultCode.BAD_MESSAGE, f"max_records {req.max_records} must be > 0")
            return
        if req.from_seq < first or req.from_seq > hwm + 1 or to > hwm or (req.to_seq and to < req.from_seq):
            self._count_error(ResultCode.REPLAY_RANGE)
            self._done(ident, req, before, False, ResultCode.REPLAY_RANGE,
                       f"range {req.from_seq}..{req.to_seq or 'hwm'} is outside the journal {first}..{hwm}")
            return
        end = min(to, req.from_seq + min(req.max_records, REPLAY_CAP) - 1)
        if end < req.from_seq:
            self._done(ident, req, before, True)
            return
        tag = (req.req_id & _U64).to_bytes(8, "little")
        expect = req.from_seq
        try:
            for chunk in self.journal.read(req.from_seq, end):  # type: ignore[attr-defined]
                if not len(chunk):
                    continue
                chunk = chunk[: end - expect + 1]
                if int(chunk["seq"][0]) != expect or int(chunk["seq"][-1]) != expect + len(chunk) - 1:
                    raise _Discontinuity(f"journal chunk starts at seq {int(chunk['seq'][0])}, expected {expect}")
                for frame in _frames(chunk):
                    self.sock.send_multipart([ident, REPLAY_DATA, tag, frame], copy=len(frame) < _ZERO_COPY_BYTES)
                expect += len(chunk)
                if expect > end:
                    break
        except (_Discontinuity, OSError, JournalError) as exc:
            # A corrupt or unreadable journal is answered, never fatal to the loop.
            self._count_error(ResultCode.JOURNAL_CORRUPT)
            self._log.error("replay of %d..%d failed: %s", req.from_seq, end, exc)
            self._done(ident, req, expect - 1, False, ResultCode.JOURNAL_CORRUPT, str(exc))
            return
        last = min(expect - 1, end)
        if last < end:
            self._count_error(ResultCode.JOURNAL_CORRUPT)
            self._done(ident, req, last, False, ResultCode.JOURNAL_CORRUPT,
                       f"journal ended at seq {last}, expected records up to {end}")
            return
        self._done(ident, req, last, last >= to)


class _Discontinuity(Exception):
    """The journal returned records that do not continue the range."""


def _frames(chunk: np.ndarray):
    """Stamped frames of at most CHUNK_RECORDS records, split where the epoch changes."""
    epochs = chunk["epoch"]
    cuts = np.flatnonzero(epochs[1:] != epochs[:-1]) + 1
    bounds = [0, *cuts.tolist(), len(chunk)]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        epoch = int(epochs[lo])
        for a in range(lo, hi, CHUNK_RECORDS):
            part = chunk[a:min(hi, a + CHUNK_RECORDS)]
            yield encode_frame(part, frame_type=FrameType.STAMPED, epoch=epoch)

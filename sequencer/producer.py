"""The producer client: submit records to the sequencer's ingest socket, collect acks.

A :class:`Producer` owns a DEALER socket connected to the ingest ROUTER. ``submit`` never
blocks: it fills in the producer id and increasing producer seqs, sends one ingest frame and
returns a token (the frame's first producer seq). Replies come back through ``poll``/``flush``
as :class:`~sequencer.messages.IngestReply`, one per frame (the sequencer sends them as one
message per drain, an array of replies). A frame not acknowledged within
``resend_timeout_s``, and every unanswered frame after the socket reconnects (frames written
to a sequencer that then crashed are lost), is sent again:
the sequencer's ingest is idempotent, so a resent frame that was stamped returns its
original seqs (``duplicate=True``) instead of being stamped twice.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict

import msgspec
import numpy as np
import xxhash
import zmq

from sequencer.codes import ResultCode
from sequencer.messages import IngestReply, decode_ingest_replies
from sequencer.protocol import RECORD_DTYPE, FrameType, encode_frame

__all__ = ["Producer", "producer_id_for", "RETRYABLE_CODES"]

# Replies that say "not now" rather than "never": the frame stays pending and is resent.
RETRYABLE_CODES = frozenset({int(ResultCode.JOURNAL_WRITE_FAILED), int(ResultCode.SEQUENCER_HALTED)})


def producer_id_for(name: str) -> int:
    """The stable producer id of a producer name: xxh32 of its UTF-8 bytes, 0 mapped to 1."""
    pid = xxhash.xxh32_intdigest(name.encode("utf-8"))
    return pid or 1


class _Pending:
    __slots__ = ("frame", "sent_ns", "last_pseq", "sends")

    def __init__(self, frame: bytes, sent_ns: int, last_pseq: int) -> None:
        self.frame = frame
        self.sent_ns = sent_ns
        self.last_pseq = last_pseq
        self.sends = 1


class Producer:
    """Non-blocking ingest client (see the module docstring).

    ``name`` picks the producer id (:func:`producer_id_for`); without it a unique name is
    made for this run. Producer seqs not given in the records (0) are assigned from
    ``first_producer_seq``, which defaults to the wall clock in ns so that a restarted
    producer with the same name keeps increasing; pass it explicitly for reproducible seqs.
    """

    def __init__(self, ingest: str, name: str | None = None, *, first_producer_seq: int | None = None,
                 resend_timeout_s: float = 1.0, max_pending: int = 100_000,
                 context: zmq.Context | None = None) -> None:
        self.name = name or f"producer-{uuid.uuid4().hex[:12]}"
        self.producer_id = producer_id_for(self.name)
        self.ingest = ingest
        self.resend_timeout_ns = int(resend_timeout_s * 1e9)
        self.max_pending = max_pending
        self._next_pseq = first_producer_seq if first_producer_seq is not None else time.time_ns()
        self._last_pseq = self._next_pseq - 1
        self._pending: OrderedDict[int, _Pending] = OrderedDict()
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.SNDHWM, 100_000)
        self._monitor = self._sock.get_monitor_socket(zmq.EVENT_CONNECTED)
        self._connects = 0
        self._monitor_checked_ns = 0
        self._sock.connect(ingest)
        self.resends = 0

    @property
    def pending(self) -> int:
        """Frames sent and not yet answered."""
        return len(self._pending)

    @property
    def last_producer_seq(self) -> int:
        """The highest producer seq submitted so far."""
        return self._last_pseq

    def submit(self, records: np.ndarray) -> int:
        """Send ``records`` (one record or an array) as one ingest frame; returns its token.

        Fills ``producer`` (where 0) with this producer's id and ``producer_seq`` (where 0)
        with the next seqs; explicit producer seqs must keep increasing. The records are
        copied; the caller's array is not changed. Raises ``ValueError`` on bad input and
        ``BufferError`` when ``max_pending`` frames are unanswered.
        """
        if getattr(records, "dtype", None) != RECORD_DTYPE:
            raise TypeError(f"records must have RECORD_DTYPE, got {getattr(records, 'dtype', type(records))}")
        # A flat copy through bytes: numpy copies this structured dtype field by field (ten
        # times slower), and np.array(record, copy=True) of one record (a numpy void) still
        # wrote through to the caller's array.
        recs = np.frombuffer(bytearray(np.asarray(records).tobytes()), RECORD_DTYPE)
        n = len(recs)
        if n == 0:
            raise ValueError("submit needs at least one record")
        if len(self._pending) >= self.max_pending:
            raise BufferError(f"{len(self._pending)} frames are unanswered (max_pending {self.max_pending})")
        pid = self.producer_id
        prod = recs["producer"]
        prod[prod == 0] = pid
        if (prod != pid).any():
            raise ValueError(f"records carry another producer id than {pid} ({self.name!r})")
        pseq = recs["producer_seq"]
        unset = pseq == 0
        k = int(np.count_nonzero(unset))
        if k:
            if k == n:
                pseq[:] = np.arange(self._next_pseq, self._next_pseq + n, dtype=np.int64)
            else:
                self._fill_gaps(pseq, unset)
        if pseq[0] <= self._last_pseq or (n > 1 and (np.diff(pseq) <= 0).any()):
            raise ValueError(f"producer seqs must strictly increase above {self._last_pseq}")
        first, last = int(pseq[0]), int(pseq[-1])
        frame = encode_frame(recs, frame_type=FrameType.INGEST)
        self._send(frame)
        self._pending[first] = _Pending(frame, time.monotonic_ns(), last)
        self._last_pseq = last
        self._next_pseq = max(self._next_pseq, last + 1)
        return first

    @property
    def next_producer_seq(self) -> int:
        """The producer seq ``submit`` would give the next record (for :meth:`submit_encoded`)."""
        return max(self._next_pseq, self._last_pseq + 1)

    def submit_encoded(self, frame: bytes, first: int, last: int) -> int:
        """Send an ingest frame the caller encoded (records with this producer's id and producer
        seqs ``first..last``, ``first`` from :attr:`next_producer_seq`); tracked for replies and
        resends exactly like :meth:`submit`. Returns the token (``first``). For callers on a
        latency path that keep a preallocated frame (the risk gate); the sequencer validates it.
        """
        if first <= self._last_pseq or last < first:
            raise ValueError(f"producer seqs must strictly increase above {self._last_pseq}")
        if len(self._pending) >= self.max_pending:
            raise BufferError(f"{len(self._pending)} frames are unanswered (max_pending {self.max_pending})")
        self._send(frame)
        self._pending[first] = _Pending(frame, time.monotonic_ns(), last)
        self._last_pseq = last
        if self._next_pseq <= last:
            self._next_pseq = last + 1
        return first

    def _fill_gaps(self, pseq: np.ndarray, unset: np.ndarray) -> None:
        nxt = max(self._next_pseq, self._last_pseq + 1)
        for i in range(len(pseq)):
            if unset[i]:
                pseq[i] = nxt
            nxt = int(pseq[i]) + 1

    def _send(self, frame: bytes) -> None:
        try:
            self._sock.send(frame, zmq.NOBLOCK)
        except zmq.Again:
            pass  # the DEALER queue is full (sequencer away): the resend timer retries

    def poll(self, timeout_ms: int = 0) -> list[IngestReply]:
        """Replies received within ``timeout_ms`` (0: what is there now); resends overdue frames.

        Each reply is returned once; a retryable failure (journal failed) is returned too and
        its frame stays pending. Replies to frames no longer pending (answers to resends of
        an acknowledged frame) are dropped.
        """
        out: list[IngestReply] = []
        if self._sock.poll(timeout_ms, zmq.POLLIN):
            while True:
                try:
                    raw = self._sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                try:
                    replies = decode_ingest_replies(raw)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    continue
                pending = self._pending
                for reply in replies:  # one message answers this producer's frames of a drain
                    token = reply.first_producer_seq
                    if token not in pending:
                        if not reply.ok and reply.record_index == -1 and token == 0:
                            out.append(reply)  # a frame-level error (garbage) has no producer seqs
                        continue
                    if reply.ok or reply.code not in RETRYABLE_CODES:
                        del pending[token]
                    out.append(reply)
        self._resend_overdue()
        return out

    def _resend_overdue(self) -> None:
        pending = self._pending
        if not pending:
            return
        now = time.monotonic_ns()
        # After a reconnect, frames written to the old peer are lost: resend them all now.
        # The monitor is read at most once per ms so poll() stays cheap.
        everything = False
        if now - self._monitor_checked_ns >= 1_000_000:
            self._monitor_checked_ns = now
            everything = self._reconnected()
        # Pending frames are kept in order of their last send (a resent frame moves to the
        # end), so the scan stops at the first frame not yet due: O(resent), not O(pending).
        for _ in range(len(pending)):
            first = next(iter(pending))
            p = pending[first]
            if not everything and now - p.sent_ns < self.resend_timeout_ns:
                break
            self._send(p.frame)
            p.sent_ns = now
            p.sends += 1
            self.resends += 1
            pending.move_to_end(first)

    def _reconnected(self) -> bool:
        """True when the socket connected again since the last call (not the first connect)."""
        again = False
        while True:
            try:
                self._monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return again
            self._connects += 1
            again = again or self._connects > 1

    def flush(self, timeout_s: float = 5.0) -> list[IngestReply]:
        """Poll until every frame is answered (or ``timeout_s``); returns the replies seen."""
        deadline = time.monotonic() + timeout_s
        out: list[IngestReply] = []
        while True:
            remaining = deadline - time.monotonic()
            out.extend(self.poll(max(0, min(50, int(remaining * 1000)))))
            if not self._pending or remaining <= 0:
                return out
            if any(not r.ok and r.code in RETRYABLE_CODES for r in out[-1:]):
                time.sleep(0.01)

    def close(self) -> None:
        """Close the socket; unanswered frames are forgotten."""
        self._sock.disable_monitor()
        self._monitor.close(linger=0)
        self._sock.close(linger=0)

    def __enter__(self) -> "Producer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The decision publishing fast path: one preallocated ingest frame, filled in place.

A ``new_order``/``refused`` decision is one record. Instead of building a numpy array and
encoding it through :func:`sequencer.protocol.encode_frame` (several array allocations, a
copy and a ``bytes`` of the frame), :class:`DecisionFrame` keeps one 160-byte frame (header
+ record) in a ``bytearray``: the constant header fields are written once, each decision
packs its record fields with one precompiled :class:`struct.Struct` and stores the xxh3
checksum. The bytes are identical to ``encode_frame(record, frame_type=INGEST)`` (tested).

The frame is handed to :meth:`sequencer.producer.Producer.submit_encoded`, which sends it
with ``zmq.NOBLOCK`` and tracks it for replies and resends exactly like ``submit``.

:class:`DecisionPublishing` is the gate's side of it (a mixin of :class:`risk_gate.gate.Gate`):
send each decision at once, or queue them for one frame per ``flush``, and read the
sequencer's replies (an approval it refuses releases its reservation).
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import xxhash

from risk_gate.checks import FixedOrder
from risk_gate.order import Decision, Order
from risk_gate.reasons import RefuseReason, truncate_detail
from sequencer.log import get_logger
from sequencer.protocol import HEADER_DTYPE, HEADER_SIZE, MAGIC, PROTOCOL_VERSION, RECORD_DTYPE, RECORD_SIZE, FrameType, Kind

__all__ = ["DecisionFrame", "DecisionPublishing"]

log = get_logger("gate")
_NEW = int(Kind.NEW_ORDER)
_REFUSED = int(Kind.REFUSED)
_INTERNAL = RefuseReason.INTERNAL_ERROR
_REPLY_POLL_EVERY = 64

# Field order and widths of RECORD_DTYPE (little endian, no padding between fields).
_RECORD = struct.Struct("<8q3I2H2BHI40s")
_CHECKSUM = struct.Struct("<Q")
if _RECORD.size != RECORD_SIZE or list(RECORD_DTYPE.names[:8]) != [
    "seq", "ts_ns", "order_id", "qty", "price", "producer_seq", "aux1", "aux2",
]:
    raise ImportError("risk_gate.publish: RECORD_DTYPE changed; update _RECORD")


class DecisionFrame:
    """One reusable one-record ingest frame for ``producer_id``."""

    __slots__ = ("buf", "_view", "_pack", "producer_id")

    def __init__(self, producer_id: int) -> None:
        self.producer_id = producer_id
        self.buf = bytearray(HEADER_SIZE + RECORD_SIZE)
        hdr = np.frombuffer(self.buf, dtype=HEADER_DTYPE, count=1)
        hdr["magic"] = MAGIC
        hdr["version"] = PROTOCOL_VERSION
        hdr["type"] = int(FrameType.INGEST)
        hdr["count"] = 1
        del hdr  # a live numpy view would pin the bytearray's size
        self._view = memoryview(self.buf)[16:]
        self._pack = _RECORD.pack_into

    def encode(
        self, kind: int, producer_seq: int, order_id: int, qty: int, price: int, aux1: int, aux2: int,
        instrument: int, account: int, venue: int, side: int, code: int, text: bytes,
    ) -> bytes:
        """The frame bytes of one record with these fields (seq, ts_ns, epoch, flags 0)."""
        buf = self.buf
        self._pack(
            buf, HEADER_SIZE, 0, 0, order_id, qty, price, producer_seq, aux1, aux2,
            0, instrument, self.producer_id, account, venue, kind, side, code, 0, text,
        )
        _CHECKSUM.pack_into(buf, 8, xxhash.xxh3_64_intdigest(self._view))
        return bytes(buf)



class DecisionPublishing:
    """Publishing the gate's decisions (mixin; the state lives on :class:`risk_gate.gate.Gate`)."""

    def flush(self) -> None:
        """Submit queued decision records as one frame (non-blocking)."""
        if not self._outbox:
            return
        recs = np.array(self._outbox, dtype=RECORD_DTYPE)
        self._outbox.clear()
        ids = recs["order_id"][recs["kind"] == _NEW].tolist()
        try:
            token = self.producer.submit(recs)
        except (BufferError, ValueError, TypeError) as exc:
            self._pub_counts["publish_errors"] += 1
            log.error("decision records not published: %s", exc, extra={"seq": self.applied_seq})
            return
        self._pub_counts["published"] += len(recs)
        if ids:
            self._token_ids[token] = ids

    def _poll_replies(self) -> None:
        self._since_reply_poll = 0
        if self.producer is None:
            return
        for reply in self.producer.poll(0):
            ids = self._token_ids.pop(reply.first_producer_seq, None)
            if not reply.ok:
                self._pub_counts["publish_errors"] += 1
                log.error("sequencer refused decision records: %s %s", reply.code_name, reply.message, extra={"seq": self.applied_seq})
                # An approval the sequencer will never stamp must not hold its reservation forever.
                for oid in ids or ():
                    self._unreserve(oid, withdrawn=False)

    def _publishable(self, fo: FixedOrder | None) -> bool:
        # A record the sequencer would reject (unknown ids, bad qty) is not sent: the
        # sequencer validates frames all-or-nothing and would drop good records with it.
        if fo is None or fo.qty <= 0 or fo.order_id <= 0 or fo.price < 0 or fo.side not in (1, 2) or not (
            fo.account and fo.instrument and fo.venue
        ):
            self._pub_counts["unpublished"] += 1
            return False
        return True

    def _publish_now(self, kind: int, fo: FixedOrder | None, code: int, text: bytes, applied: int, hwm: int) -> None:
        """Fill the preallocated frame and submit it at once (non-blocking, no numpy on the way)."""
        if self._publishable(fo):
            self._send_decision(kind, fo, code, text, applied, hwm)

    def _send_decision(self, kind: int, fo: FixedOrder, code: int, text: bytes, applied: int, hwm: int) -> None:
        """Pack one decision record into the preallocated frame and hand it to the producer."""
        producer = self.producer
        pseq = producer.next_producer_seq
        frame = self._fast.encode(kind, pseq, fo.order_id, fo.qty, fo.price, applied, hwm, fo.instrument, fo.account, fo.venue, fo.side, code, text)
        try:
            token = producer.submit_encoded(frame, pseq, pseq)
        except (BufferError, ValueError) as exc:
            self._pub_counts["publish_errors"] += 1
            log.error("decision record not published: %s", exc, extra={"seq": applied})
            return
        self._pub_counts["published"] += 1
        if kind == _NEW:
            self._token_ids[token] = [fo.order_id]

    def _text(self, detail: str) -> bytes:
        got = self._text_cache.get(detail)
        if got is None:
            got = truncate_detail(detail)
            if len(self._text_cache) < 4096:
                self._text_cache[detail] = got
        return got

    def _queue(self, kind: int, fo: FixedOrder | None, code: int, text: bytes, applied: int, hwm: int) -> None:
        if self.producer is None or not self._publishable(fo):
            return
        self._outbox.append(
            (0, 0, fo.order_id, fo.qty, fo.price, 0, applied, hwm, 0, fo.instrument, 0, fo.account, fo.venue, kind, fo.side, code, 0, text)
        )

    def _decided(
        self, order: Order | FixedOrder, fo: FixedOrder | None, reason: RefuseReason | None, detail: str,
        applied: int, hwm: int, hwm_ts: int, now: int, log_file: Any, t0: int,
    ) -> Decision:
        """Publish, count and log a decision of ``Gate._check`` (an approval that cannot be published is refused)."""
        if reason is None:
            try:
                if self._pub_ok:
                    if self._fast is not None:
                        self._send_decision(_NEW, fo, 0, b"", applied, hwm)  # approved: its fields are valid
                    else:
                        self._queue(_NEW, fo, 0, b"", applied, hwm)
                if self._outbox and self._each and self.producer is not None:
                    self.flush()
            except Exception as exc:  # fail closed: an approval that cannot be recorded is not given
                log.exception("approval not published; refusing", extra={"seq": applied})
                self._unreserve(fo.order_id, withdrawn=True)
                self._pub_counts["publish_errors"] += 1
                reason = _INTERNAL
                detail = f"decision not published: {type(exc).__name__}: {exc}"
        if reason is None:
            decision = Decision(True, None, "", applied, hwm, hwm_ts, now, fo.order_id)
        else:
            self._refused += 1
            name = reason.name
            self.refused_by_reason[name] = self.refused_by_reason.get(name, 0) + 1
            try:
                if self._pub_refused:
                    if self._fast is not None:
                        self._publish_now(_REFUSED, fo, int(reason), self._text(detail), applied, hwm)
                    else:
                        self._queue(_REFUSED, fo, int(reason), self._text(detail), applied, hwm)
                if self._outbox and self._each and self.producer is not None:
                    self.flush()
            except Exception:  # the refusal stands; only its audit record is missing
                log.exception("refusal not published", extra={"seq": applied})
                self._pub_counts["publish_errors"] += 1
            oid = fo.order_id if fo is not None else getattr(order, "order_id", 0)
            decision = Decision(False, reason, detail, applied, hwm, hwm_ts, now, oid)
        self._since_reply_poll += 1
        if self._since_reply_poll >= _REPLY_POLL_EVERY:
            self._poll_replies()
        if log_file is not None:
            self._log(decision, t0)
        return decision

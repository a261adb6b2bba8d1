"""The sequencer's ingest turn: drain, check, validate, dedup, stamp, journal, publish, ack.

:class:`IngestLoop` is the part of :class:`sequencer.service.Sequencer` that handles one
drain of the ingest ROUTER. A drain of at least ``BATCH_PATH_MIN_FRAMES`` frames, every one
valid and new, takes the *batch path*: a few numba calls over the whole drain and Python
work per producer run, not per frame (:func:`sequencer.runs.frame_runs`,
:func:`sequencer.acks.encode_acks`). A drain of one frame that is valid and new takes the
*one-frame path*: one numba call validates and stamps it (:mod:`sequencer.stamp_one`). Anything
else (a small drain, a bad frame, a duplicate,
a late frame, a journal failure) takes the *frame path*, which decides frame by frame. Both
give the same replies, stamps and journal. The drain's messages are taken and sorted by
:class:`sequencer.service_receive.IngestReceive`.
"""

from __future__ import annotations

import time

import msgspec
import numpy as np
import zmq

from sequencer.acks import encode_acks
from sequencer.codes import ResultCode
from sequencer.ingest import describe_error, validate_drain
from sequencer.messages import IngestReply
from sequencer.protocol import HEADER_SIZE, RECORD_DTYPE, RECORD_SIZE
from sequencer.runs import frame_runs
from sequencer.service_one import OneFrameDrain
from sequencer.service_receive import IngestReceive, _Drain, error_reply
from sequencer.stamp import stamp_frame

__all__ = ["IngestLoop", "error_reply", "BATCH_PATH_MIN_FRAMES", "ONE_FRAME_PATH"]

_NOBLOCK = int(zmq.NOBLOCK)
_SNDMORE = int(zmq.SNDMORE)
# The Cython send, without the Python wrapper of zmq.Socket.send (half the cost per call);
# plain int flags, because enum flag arithmetic costs more than the send itself.
_base_send = zmq.backend.Socket.send
_ZERO_COPY_BYTES = 1 << 16
_reply_encoder = msgspec.msgpack.Encoder()
BATCH_PATH_MIN_FRAMES = 4
# A drain of one frame takes OneFrameDrain._drain_one (the tests switch it off to compare paths).
ONE_FRAME_PATH = True


class IngestLoop(IngestReceive, OneFrameDrain):
    """Mixin: the ingest drain of the sequencer (state lives on the Sequencer)."""

    def _drain_ingest(self, one: bool = False) -> int:
        """One drain of the ingest socket (with ``one``, of its first message only); returns the
        messages it took."""
        d = self._receive(one)
        taken = len(d.groups)
        if not taken:
            return 0
        nframes = len(d.starts) - 1
        if ONE_FRAME_PATH and nframes == 1 and not d.rejected:
            self._drain_one(d)
            return taken
        frame_replies = self._process(d) if nframes else []
        if not d.rejected and isinstance(frame_replies, tuple):
            buf, offsets = frame_replies
            for ident, g in d.idents.items():
                _base_send(self._ingest, ident, _SNDMORE)
                _base_send(self._ingest, buf[offsets[g]:offsets[g + 1]])
            return taken
        if isinstance(frame_replies, tuple):
            frame_replies = self._batch_replies_as_list(d)
        self._send_replies(d, frame_replies)
        return taken

    def _send_replies(self, d: _Drain, frame_replies: list) -> None:
        """One msgpack array of replies per producer socket, in arrival order."""
        per: list[list] = [[] for _ in d.idents]
        rejected = d.rejected
        f = 0
        for n, g in enumerate(d.groups):
            reply = rejected.get(n)
            if reply is None:
                reply = frame_replies[f]
                f += 1
            per[g].append(reply)
        enc = _reply_encoder.encode
        for ident, g in d.idents.items():
            _base_send(self._ingest, ident, _SNDMORE)
            _base_send(self._ingest, enc(per[g]))

    # ----------------------------------------------------------------- validate and decide
    def _process(self, d: _Drain) -> list | tuple:
        """Validate, deduplicate and commit the drained frames.

        Returns the encoded acks ``(buf, offsets)`` of :func:`encode_acks` when the batch path
        stamped every frame, else the list of replies to the frames in arrival order.
        """
        buf = d.buf
        starts = d.starts_arr if d.starts_arr is not None else np.array(d.starts, np.int64)
        nrec = d.starts[-1]
        nframes = len(d.starts) - 1
        info = validate_drain(buf, starts, nrec, self._masks)
        # A few frames cost less one by one than the batch path's numba calls and arrays.
        runs = frame_runs(info, starts) if nframes >= BATCH_PATH_MIN_FRAMES else None
        if runs is not None:
            runs_list = runs.tolist()
            if self._all_new(runs_list):
                return self._commit_batch(buf, d, starts, info, runs_list)
        return self._process_frames(buf, nframes, d.starts, nrec, info.tolist())

    def _all_new(self, runs: list[list[int]]) -> bool:
        """Whether each run starts above its producer's highest stamped seq (earlier runs included)."""
        pending: dict[int, int] = {}
        last_of = self.dedup.last
        for producer, p0, p1, _lo, _hi, _contig in runs:
            last = pending.get(producer)
            if last is None:
                last = last_of(producer)
            if p0 <= last:
                return False
            pending[producer] = p1
        return True

    def _commit_batch(self, buf: bytearray, d: _Drain, starts: np.ndarray, info: np.ndarray,
                      runs: list[list[int]]) -> list | tuple:
        """Stamp, journal and publish a drain of only new frames; the encoded acks."""
        n = int(starts[-1])
        first, epoch = self.next_seq, self.epoch
        if not self._stamp_journal_publish(buf, n):
            return self._journal_failed_replies(info.tolist(), range(len(info)), [None] * len(info))
        dedup = self.dedup
        seqs = starts + first
        for producer, p0, _p1, lo, hi, contiguous in runs:
            st = self._producer_stats(producer)
            st[0] += hi - lo
            st[1] += d.starts[hi] - d.starts[lo]
            if contiguous:
                dedup.add_run(producer, p0, first + d.starts[lo], d.starts[hi] - d.starts[lo], epoch)
            else:
                for f in range(lo, hi):
                    self._dedup_frame(buf, d.starts[f], d.starts[f + 1] - d.starts[f], producer, first + d.starts[f], epoch)
        # One producer socket (the usual case): no list of group numbers to convert.
        groups = np.zeros(len(d.groups), np.int64) if len(d.idents) == 1 else np.array(d.groups, np.int64)
        return encode_acks(groups, len(d.idents), info[:, 4], info[:, 5], seqs[:-1], seqs[1:] - 1, epoch)

    def _dedup_frame(self, buf: bytearray, lo: int, count: int, producer: int, seq: int, epoch: int) -> None:
        pseqs = np.frombuffer(buf, RECORD_DTYPE, count=count, offset=HEADER_SIZE + lo * RECORD_SIZE)["producer_seq"]
        self.dedup.add(producer, pseqs, seq, epoch)

    def _batch_replies_as_list(self, d: _Drain) -> list:
        """The batch path's replies as tuples (a drain that also holds rejected messages)."""
        seq0 = self.next_seq - d.starts[-1]
        epoch = self.epoch
        starts = d.starts
        pseqs = np.frombuffer(d.buf, RECORD_DTYPE, count=starts[-1], offset=HEADER_SIZE)["producer_seq"]
        out = []
        for f in range(len(starts) - 1):
            lo, hi = starts[f], starts[f + 1]
            out.append((True, 0, "OK", int(pseqs[lo]), int(pseqs[hi - 1]), epoch, seq0 + lo, seq0 + hi - 1, False, -1, ""))
        return out

    def _process_frames(self, buf: bytearray, nframes: int, starts_list: list[int], nrec: int, info: list) -> list:
        """The frame path: decide frame by frame (bad, duplicate, late, new); replies in arrival order."""
        counts = [starts_list[f + 1] - starts_list[f] for f in range(nframes)]
        replies: list = [None] * nframes
        accepted: list[int] = []
        pending: dict[int, int] = {}
        dedup = self.dedup
        recs = np.frombuffer(buf, RECORD_DTYPE, count=nrec, offset=HEADER_SIZE)
        for f in range(nframes):
            bad, code, field, producer, p0, p1 = info[f]
            lo = starts_list[f]
            if bad >= 0:
                msg = describe_error(recs[lo:lo + counts[f]], bad, code, field)
                self._count_error(ResultCode(code))
                self._producer_stats(producer)[3] += 1
                replies[f] = error_reply(ResultCode(code), msg, p0, p1, bad, self.epoch)
                continue
            last = pending.get(producer)
            if last is None:
                last = dedup.last(producer)
            if p0 > last:
                accepted.append(f)
                pending[producer] = p1
                continue
            if self._late_frame(recs, lo, counts[f], producer, p0, p1, accepted, info):
                accepted.append(f)
                pending[producer] = max(last, p1)
                continue
            replies[f] = self._old_frame(recs, lo, counts[f], producer, p0, p1, last)
        if accepted:
            self._commit_frames(buf, counts, accepted, info, replies)
        return replies

    def _late_frame(self, recs: np.ndarray, lo: int, count: int, producer: int, p0: int, p1: int,
                    accepted: list[int], info: list) -> bool:
        """Whether a frame below the producer's highest stamped seq was never stamped, so it is
        new: a frame lost in a crash and resent after newer ones were stamped. A frame that
        overlaps one accepted earlier in this drain (a resend racing its original) is not."""
        for g in accepted:
            if info[g][3] == producer and info[g][4] <= p1 and p0 <= info[g][5]:
                return False
        return not self.dedup.stamped_any(producer, recs["producer_seq"][lo:lo + count])

    def _old_frame(self, recs: np.ndarray, lo: int, count: int, producer: int, p0: int, p1: int, last: int) -> IngestReply | tuple:
        """Reply to a frame below the producer's last stamped seq that is not new: the original
        seqs when it was stamped whole before, else an error naming why."""
        st = self._producer_stats(producer)
        if p1 > last:
            st[3] += 1
            self._count_error(ResultCode.PARTIAL_DUPLICATE)
            return error_reply(ResultCode.PARTIAL_DUPLICATE,
                               f"producer seqs {p0}..{p1} overlap the last stamped {last}: "
                               "resend whole frames, or only new producer seqs", p0, p1, -1, self.epoch)
        pseqs = recs["producer_seq"][lo:lo + count]
        found = self.dedup.lookup(producer, pseqs)
        if found is None:
            st[3] += 1
            if self.dedup.stamped_any(producer, pseqs):
                self._count_error(ResultCode.PARTIAL_DUPLICATE)
                return error_reply(ResultCode.PARTIAL_DUPLICATE,
                                   f"producer seqs {p0}..{p1} were partly stamped before: "
                                   "resend whole frames as first sent", p0, p1, -1, self.epoch)
            # Not stamped yet, but overlapping a frame accepted earlier in this drain: a resend
            # racing its first copy, whose ack stands.
            self._count_error(ResultCode.PRODUCER_SEQ_NOT_INCREASING)
            return error_reply(ResultCode.PRODUCER_SEQ_NOT_INCREASING,
                               f"producer seqs {p0}..{p1} are being stamped from an earlier frame "
                               "of this batch; its ack stands", p0, p1, 0, self.epoch)
        st[2] += 1
        first_seq, last_seq, epoch = found
        return (True, 0, "OK", p0, p1, epoch, first_seq, last_seq, True, -1, "")

    # ----------------------------------------------------------------- stamp, journal, publish
    def _commit_frames(self, buf: bytearray, counts: list[int], accepted: list[int], info: list,
                       replies: list) -> None:
        """Stamp, journal and publish the accepted frames as one batch; fill their replies."""
        if len(accepted) == len(counts):
            out = buf
            n = (len(buf) - HEADER_SIZE) // RECORD_SIZE
        else:
            keep = np.zeros(len(counts), np.bool_)
            keep[accepted] = True
            rows = np.frombuffer(buf, np.uint8, offset=HEADER_SIZE).reshape(-1, RECORD_SIZE)
            picked = rows[np.repeat(keep, counts)]
            n = len(picked)
            out = bytearray(HEADER_SIZE + n * RECORD_SIZE)
            out[HEADER_SIZE:] = picked.tobytes()
        first = self.next_seq
        if not self._stamp_journal_publish(out, n):
            self._journal_failed_replies(info, accepted, replies)
            return
        self._acknowledge(out, counts, accepted, info, replies, first, self.epoch)

    def _journal_failed_replies(self, info: list, frames, replies: list) -> list:
        for f in frames:
            replies[f] = error_reply(ResultCode.JOURNAL_WRITE_FAILED, "journal write failed; frame not stamped",
                                     info[f][4], info[f][5], -1, self.epoch)
            self._count_error(ResultCode.JOURNAL_WRITE_FAILED)
        return replies

    def _stamp_journal_publish(self, out: bytearray, n: int) -> bool:
        """Stamp ``out`` (``n`` records) from ``next_seq``, journal it, then publish it; False if
        the journal write failed (nothing published, the service stops taking input)."""
        first = self.next_seq
        epoch = self.epoch
        ts = time.time_ns()
        stamp_frame(out, n, first, ts, epoch, self.stats.kind_counts)
        return self._journal_publish(out, first, n, epoch, ts)

    def _journal_publish(self, out: bytearray, first: int, n: int, epoch: int, ts: int) -> bool:
        """Journal the stamped frame ``out``, then publish it; False if the journal write failed."""
        assert self.journal is not None
        try:
            # Stamped a moment ago with exactly these values: the journal need not read them back.
            self.journal.append_stamped(out, first, n, epoch)
        except (OSError, ValueError) as exc:
            # ValueError: the journal refused the frame (a bug); never publish it either.
            self._journal_error(exc)
            return False
        self.next_seq = first + n
        self.hwm = first + n - 1
        # Publish right after the journal write: nothing waits for a batch to fill.
        try:
            if len(out) < _ZERO_COPY_BYTES:
                _base_send(self._publish, out, _NOBLOCK)
            else:
                _base_send(self._publish, out, _NOBLOCK, False)
        except zmq.Again:
            pass  # subscribers recover the frame through replay
        if self._hwm_writer is not None:
            self._hwm_writer.write(epoch, self.hwm, ts)
        return True

    def _acknowledge(self, out: bytearray, counts: list[int], accepted: list[int], info: list, replies: list,
                     seq: int, epoch: int) -> None:
        """Record the stamped frames in the dedup table and the counters; fill their replies."""
        dedup = self.dedup
        # Consecutive frames of one producer with contiguous producer seqs are one dedup run.
        run_prod = run_p0 = run_seq = run_len = 0
        st_prod, st = -1, None
        pos = 0
        for f in accepted:
            c = counts[f]
            producer, p0, p1 = info[f][3], info[f][4], info[f][5]
            if p1 - p0 == c - 1:
                if run_len and producer == run_prod and p0 == run_p0 + run_len:
                    run_len += c
                else:
                    if run_len:
                        dedup.add_run(run_prod, run_p0, run_seq, run_len, epoch)
                    run_prod, run_p0, run_seq, run_len = producer, p0, seq, c
            else:
                if run_len:
                    dedup.add_run(run_prod, run_p0, run_seq, run_len, epoch)
                    run_len = 0
                self._dedup_frame(out, pos, c, producer, seq, epoch)
            if producer != st_prod:
                st_prod, st = producer, self._producer_stats(producer)
            st[0] += 1
            st[1] += c
            # The array form of IngestReply (array_like): encoded with the drain's other replies.
            replies[f] = (True, 0, "OK", p0, p1, epoch, seq, seq + c - 1, False, -1, "")
            seq += c
            pos += c
        if run_len:
            dedup.add_run(run_prod, run_p0, run_seq, run_len, epoch)

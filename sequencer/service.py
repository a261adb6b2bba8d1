"""The sequencer service: ingest, validate, stamp, journal, publish, heartbeat, replay.

One thread, one ``zmq.Poller`` over the ingest ROUTER and the replay ROUTER. Each loop turn
drains up to ``max_batch_records`` worth of ingest frames, validates them in one numba call,
stamps the accepted ones as one batch, appends that batch to the journal as ONE stamped
frame, publishes the same bytes, updates the HWM file and acknowledges every ingest frame
with its seq range: one reply message per producer per drain (an array of ``IngestReply``). Nothing is published before :meth:`Journal.append` returned; after a
journal ``OSError`` the service stops acknowledging and publishing (and stops heartbeating,
so gates fail closed on a stale HWM) but keeps answering status and replay.
"""

from __future__ import annotations

import math
import struct
import threading
import time
from pathlib import Path

import msgspec
import numpy as np
import zmq

from sequencer.codes import ResultCode
from sequencer.config import SequencerConfig
from sequencer.dedup import DedupTable
from sequencer.hwm_file import HwmFileWriter
from sequencer.ingest import Masks, check_ingest_frame, describe_error, validate_drain
from sequencer.journal import Journal
from sequencer.log import get_logger
from sequencer.messages import IngestReply, StatusReply
from sequencer.protocol import (
    HEADER_SIZE,
    PROTOCOL_VERSION,
    RECORD_DTYPE,
    RECORD_SIZE,
    FrameError,
    HEARTBEAT_MAGIC,
)
from sequencer.registry import Registry, default_registry
from sequencer.replay_server import ReplayServer
from sequencer.service_stats import ServiceStats
from sequencer.stamp import stamp_frame

__all__ = ["Sequencer", "PUBLISH_SNDHWM", "hwm_file_path"]

PUBLISH_SNDHWM = 10_000
_PSEQ = struct.Struct("<q")
# Same bytes as protocol.encode_heartbeat (checked by a test), without numpy per beat.
_HEARTBEAT = struct.Struct("<4sHHI4xqq")
_NOBLOCK = int(zmq.NOBLOCK)
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_RCVMORE = int(zmq.RCVMORE)
_SNDMORE = int(zmq.SNDMORE)
# The Cython send, without the Python wrapper of zmq.Socket.send (half the cost per call);
# plain int flags, because enum flag arithmetic costs more than the send itself.
_base_send = zmq.backend.Socket.send
_PSEQ_OFFSET = HEADER_SIZE + RECORD_DTYPE.fields["producer_seq"][1]
_ZERO_COPY_BYTES = 1 << 16
_reply_encoder = msgspec.msgpack.Encoder()


def hwm_file_path(config: SequencerConfig, journal_dir: Path) -> Path | None:
    """Where the HWM file goes: ``config.hwm_file``, ``<journal>/hwm`` by default, None if "off"."""
    if config.hwm_file.lower() in ("off", "none"):
        return None
    return Path(config.hwm_file) if config.hwm_file else journal_dir / "hwm"


def _error_reply(code: ResultCode, message: str, p0: int = 0, p1: int = 0, index: int = -1, epoch: int = 0) -> IngestReply:
    return IngestReply(False, int(code), code.name, p0, p1, epoch, 0, 0, False, index, message)


class Sequencer:
    """The single writer of the ordered stream (see the module docstring).

    ``start()`` recovers the journal, opens a new epoch and binds the sockets; ``run(stop)``
    serves until ``stop`` is set, then shuts down cleanly (``start()`` is called if needed).
    """

    def __init__(self, config: SequencerConfig, registry: Registry | None = None,
                 journal_dir: str | Path | None = None, *, context: zmq.Context | None = None) -> None:
        self.config = config
        self.registry = registry or default_registry()
        self.journal_dir = Path(journal_dir if journal_dir is not None else config.journal)
        self.hwm_path = hwm_file_path(config, self.journal_dir)
        self._ctx = context or zmq.Context.instance()
        self._masks = Masks(self.registry)
        self._log = get_logger("sequencer")
        self.dedup = DedupTable()
        self.journal: Journal | None = None
        self.epoch = 0
        self.hwm = 0
        self.next_seq = 1
        self.journal_failed = False
        self.ready = threading.Event()
        self.stats = ServiceStats()
        self._count_error = self.stats.count_error
        self._producer_stats = self.stats.producer
        self._started_at = time.monotonic()
        self._hwm_writer: HwmFileWriter | None = None
        self._sockets: list[zmq.Socket] = []

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Recover the journal, rebuild the dedup table, open a new epoch, bind the sockets."""
        cfg = self.config
        self.journal_dir.mkdir(parents=True, exist_ok=True)
        # check_checksums=False: the sequencer computed each frame's checksum a moment before.
        self.journal = Journal.open(self.journal_dir, durability=cfg.durability,
                                    segment_bytes=cfg.segment_mb << 20, sync_ms=cfg.sync_ms,
                                    check_checksums=False)
        last = int(self.journal.last_seq)
        if last:
            self._rebuild(int(self.journal.first_seq or 1), last)
        self.epoch = int(self.journal.next_epoch())
        self.hwm = last
        self.next_seq = last + 1
        if self.hwm_path is not None:
            self._hwm_writer = HwmFileWriter(self.hwm_path)
            self._hwm_writer.write(self.epoch, self.hwm, time.time_ns())
        # Replies to a producer that is not reading them queue up to SNDHWM, then are dropped
        # (the producer resends and gets duplicate=True): keep the queue deep.
        try:
            self._ingest = self._bind(zmq.ROUTER, cfg.ingest, sndhwm=100_000, rcvhwm=100_000)
            self._publish = self._bind(zmq.PUB, cfg.publish, sndhwm=PUBLISH_SNDHWM)
            self._hb = self._bind(zmq.PUB, cfg.hwm, sndhwm=1000)
            replay_sock = self._bind(zmq.ROUTER, cfg.replay)
        except zmq.ZMQError:
            for sock in self._sockets:
                sock.close(linger=0)
            self.journal.close()
            raise
        self.replay = ReplayServer(replay_sock, self.journal, lambda: self.hwm, lambda: self.epoch,
                                   self.status, self._count_error, self._log)
        # Compile (or load from the numba cache) before serving, not on the first frame.
        validate_drain(bytearray(HEADER_SIZE + RECORD_SIZE), np.array([0, 1], np.int64), 1, self._masks)
        stamp_frame(bytearray(HEADER_SIZE + RECORD_SIZE), 1, 1, 0, 1, np.zeros(256, np.int64))
        self._started_at = time.monotonic()
        self._log.info(
            "sequencer started: ingest=%s publish=%s hwm=%s replay=%s journal=%s durability=%s resume_seq=%d",
            cfg.ingest, cfg.publish, cfg.hwm, cfg.replay, self.journal_dir, cfg.durability, self.next_seq,
            extra={"epoch": self.epoch, "seq": self.next_seq},
        )
        self.ready.set()

    def _bind(self, kind: int, endpoint: str, sndhwm: int = 1000, rcvhwm: int = 1000) -> zmq.Socket:
        sock = self._ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 500)
        sock.setsockopt(zmq.SNDHWM, sndhwm)
        sock.setsockopt(zmq.RCVHWM, rcvhwm)
        sock.bind(endpoint)
        self._sockets.append(sock)
        return sock

    def _rebuild(self, first: int, last: int) -> None:
        assert self.journal is not None
        total = 0
        for chunk in self.journal.read(first, last):
            total += self.dedup.rebuild_from([chunk])
            self.stats.add_records(chunk)
            prods, n = np.unique(chunk["producer"], return_counts=True)
            for p, c in zip(prods.tolist(), n.tolist()):
                self._producer_stats(p)[1] += c
        self._log.info("dedup table rebuilt from %d journaled records", total, extra={"seq": last})

    def run(self, stop: threading.Event) -> int:
        """Serve until ``stop`` is set; then stop input, sync the journal, last heartbeat. Returns 0."""
        if not self.ready.is_set():
            self.start()
        poller = zmq.Poller()
        poller.register(self._ingest, zmq.POLLIN)
        poller.register(self.replay.sock, zmq.POLLIN)
        interval = int(self.config.heartbeat_ms * 1e6)
        next_hb = 0
        timeout = 0
        try:
            while not stop.is_set():
                # poll returns as soon as a frame arrives; the timeout only paces heartbeats.
                for sock, _ in poller.poll(timeout):
                    if sock is self._ingest:
                        self._drain_ingest()
                    else:
                        self.replay.drain()
                # After the data: a due heartbeat never delays a drain's publish.
                now = time.monotonic_ns()
                if now >= next_hb:
                    self._heartbeat()
                    next_hb = now + interval
                timeout = max(0, math.ceil((next_hb - now) / 1e6))
        finally:
            self._shutdown()
        return 0

    def _shutdown(self) -> None:
        self._ingest.close(linger=0)
        if self.journal is not None:
            try:
                if not self.journal_failed:
                    self.journal.sync()
                self.journal.close()
            except OSError as exc:
                self._log.error("journal sync at shutdown failed: %s", exc, extra={"epoch": self.epoch, "seq": self.hwm})
        if not self.journal_failed:
            self._heartbeat()
        for sock in self._sockets:
            if not sock.closed:
                sock.close()
        if self._hwm_writer is not None:
            self._hwm_writer.close()
        self._log.info("sequencer stopped", extra={"epoch": self.epoch, "seq": self.hwm})

    # ----------------------------------------------------------------- heartbeat / sync
    def _heartbeat(self) -> None:
        if self.journal_failed:
            return  # silence makes every gate refuse with STALE_HWM: fail closed
        now = time.time_ns()
        try:
            self._hb.send(_HEARTBEAT.pack(HEARTBEAT_MAGIC, PROTOCOL_VERSION, 0, self.epoch, self.hwm, now), _NOBLOCK)
        except zmq.Again:
            pass
        if self._hwm_writer is not None:
            # The file's ts is a liveness signal too: an idle sequencer keeps it fresh.
            self._hwm_writer.write(self.epoch, self.hwm, now)

    def _journal_error(self, exc: Exception) -> None:
        self.journal_failed = True
        self._count_error(ResultCode.JOURNAL_WRITE_FAILED)
        self._log.critical(
            "JOURNAL WRITE FAILED (%s): no longer acknowledging or publishing; status and replay of "
            "journaled seqs still served; heartbeats stopped so gates fail closed", exc,
            extra={"epoch": self.epoch, "seq": self.hwm},
        )

    # ----------------------------------------------------------------- ingest
    def _drain_ingest(self) -> None:
        sock = self._ingest
        recv = sock.recv
        limit = self.config.max_batch_records
        # Replies of this drain per producer identity, in arrival order: one reply message per
        # producer per drain (a msgpack array of IngestReply). A valid frame's slot is filled
        # after the batch is journaled and published.
        out: dict[bytes, list] = {}
        frames: list[tuple[list, int, memoryview, int]] = []
        starts = [0]
        nrec = 0
        nmsg = 0
        while nrec < limit:
            if nmsg == 1 and not sock.getsockopt(_EVENTS) & _POLLIN:
                # Most drains at moderate rates hold one frame: asking the socket is about half
                # the cost of the zmq.Again exception that ends a drain otherwise.
                break
            try:
                ident = recv(_NOBLOCK)
            except zmq.Again:
                break
            nmsg += 1
            slots = out.get(ident)
            if slots is None:
                slots = out[ident] = []
            # A ROUTER message is delivered whole: the parts after the identity are there.
            # copy=False: zero-copy payload, and Frame.more is far cheaper than getsockopt.
            part = recv(_NOBLOCK, copy=False)
            if part.more:
                extra = 1
                while part.more:
                    part = recv(_NOBLOCK, copy=False)
                    extra += 1
                slots.append(self._reject(ResultCode.BAD_MESSAGE, f"expected one frame part, got {extra}"))
                continue
            buf = part.buffer
            try:
                count = check_ingest_frame(buf)
            except FrameError as exc:
                slots.append(self._reject(exc.code, exc.message))
                continue
            if self.journal_failed:
                p0 = _PSEQ.unpack_from(buf, _PSEQ_OFFSET)[0]
                p1 = _PSEQ.unpack_from(buf, _PSEQ_OFFSET + (count - 1) * RECORD_SIZE)[0]
                self._count_error(ResultCode.JOURNAL_WRITE_FAILED)
                slots.append(_error_reply(
                    ResultCode.JOURNAL_WRITE_FAILED, "journal write failed earlier; not accepting input",
                    p0, p1, -1, self.epoch))
                continue
            frames.append((slots, len(slots), buf, count))
            slots.append(None)
            nrec += count
            starts.append(nrec)
        if frames:
            self._process(frames, starts, nrec)
        enc = _reply_encoder.encode
        for ident, slots in out.items():
            _base_send(sock, ident, _SNDMORE)
            _base_send(sock, enc(slots))

    def _reject(self, code: ResultCode, message: str) -> IngestReply:
        self._count_error(code)
        return _error_reply(code, message, epoch=self.epoch)

    def _process(self, frames: list[tuple[list, int, memoryview, int]], starts_list: list[int], nrec: int) -> None:
        """Validate, deduplicate and commit the drained frames; fill each frame's reply slot."""
        nframes = len(frames)
        if nframes == 1:
            buf = bytearray(frames[0][2])  # its ingest header is overwritten by the stamp
        else:
            # The first frame's ingest header is the room for the stamped header.
            bufs = [b for _, _, b, _ in frames]
            buf = bytearray().join([bufs[0], *[b[HEADER_SIZE:] for b in bufs[1:]]])
        starts = np.array(starts_list, np.int64)
        info = validate_drain(buf, starts, nrec, self._masks).tolist()
        replies: list = [None] * nframes
        accepted: list[int] = []
        pending: dict[int, int] = {}
        dedup = self.dedup
        recs = None
        for f in range(nframes):
            bad, code, field, producer, p0, p1 = info[f]
            if bad >= 0:
                if recs is None:
                    recs = np.frombuffer(buf, RECORD_DTYPE, count=nrec, offset=HEADER_SIZE)
                lo = starts_list[f]
                msg = describe_error(recs[lo:lo + frames[f][3]], bad, code, field)
                self._count_error(ResultCode(code))
                self._producer_stats(producer)[3] += 1
                replies[f] = _error_reply(ResultCode(code), msg, p0, p1, bad, self.epoch)
                continue
            last = pending.get(producer)
            if last is None:
                last = dedup.last(producer)
            if p0 > last:
                accepted.append(f)
                pending[producer] = p1
                continue
            if recs is None:
                recs = np.frombuffer(buf, RECORD_DTYPE, count=nrec, offset=HEADER_SIZE)
            if self._late_frame(recs, starts_list[f], frames[f][3], producer, p0, p1, accepted, info):
                accepted.append(f)
                pending[producer] = max(last, p1)
                continue
            replies[f] = self._old_frame(recs, starts_list[f], frames[f][3], producer, p0, p1, last)
        if accepted:
            if not self._commit(buf, frames, starts, accepted, info, replies):
                for f in accepted:
                    replies[f] = _error_reply(ResultCode.JOURNAL_WRITE_FAILED, "journal write failed; frame not stamped",
                                              info[f][4], info[f][5], -1, self.epoch)
                    self._count_error(ResultCode.JOURNAL_WRITE_FAILED)
        for f in range(nframes):
            slots, pos, _, _ = frames[f]
            slots[pos] = replies[f]

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
            return _error_reply(ResultCode.PARTIAL_DUPLICATE,
                                f"producer seqs {p0}..{p1} overlap the last stamped {last}: "
                                "resend whole frames, or only new producer seqs", p0, p1, -1, self.epoch)
        pseqs = recs["producer_seq"][lo:lo + count]
        found = self.dedup.lookup(producer, pseqs)
        if found is None:
            st[3] += 1
            if self.dedup.stamped_any(producer, pseqs):
                self._count_error(ResultCode.PARTIAL_DUPLICATE)
                return _error_reply(ResultCode.PARTIAL_DUPLICATE,
                                    f"producer seqs {p0}..{p1} were partly stamped before: "
                                    "resend whole frames as first sent", p0, p1, -1, self.epoch)
            # Not stamped yet, but overlapping a frame accepted earlier in this drain: a resend
            # racing its first copy, whose ack stands.
            self._count_error(ResultCode.PRODUCER_SEQ_NOT_INCREASING)
            return _error_reply(ResultCode.PRODUCER_SEQ_NOT_INCREASING,
                                f"producer seqs {p0}..{p1} are being stamped from an earlier frame "
                                "of this batch; its ack stands", p0, p1, 0, self.epoch)
        st[2] += 1
        first_seq, last_seq, epoch = found
        return (True, 0, "OK", p0, p1, epoch, first_seq, last_seq, True, -1, "")

    def _commit(self, buf: bytearray, frames: list, starts: np.ndarray, accepted: list[int], info: list,
                replies: list) -> bool:
        """Stamp, journal and publish the accepted frames as one batch; fill their replies."""
        if len(accepted) == len(frames):
            out = buf
            n = (len(buf) - HEADER_SIZE) // RECORD_SIZE
        else:
            keep = np.zeros(len(frames), np.bool_)
            keep[accepted] = True
            rows = np.frombuffer(buf, np.uint8, offset=HEADER_SIZE).reshape(-1, RECORD_SIZE)
            picked = rows[np.repeat(keep, np.diff(starts))]
            n = len(picked)
            out = bytearray(HEADER_SIZE + n * RECORD_SIZE)
            out[HEADER_SIZE:] = picked.tobytes()
        first = self.next_seq
        epoch = self.epoch
        ts = time.time_ns()
        stamp_frame(out, n, first, ts, epoch, self.stats.kind_counts)
        assert self.journal is not None
        try:
            self.journal.append(out, first, n, epoch)
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
        self._acknowledge(out, frames, accepted, info, replies, first, epoch)
        return True

    def _acknowledge(self, out: bytearray, frames: list, accepted: list[int], info: list, replies: list,
                     seq: int, epoch: int) -> None:
        """Record the stamped frames in the dedup table and the counters; fill their replies."""
        dedup = self.dedup
        # Consecutive frames of one producer with contiguous producer seqs are one dedup run.
        run_prod = run_p0 = run_seq = run_len = 0
        st_prod, st = -1, None
        pos = 0
        for f in accepted:
            c = frames[f][3]
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
                pseqs = np.frombuffer(out, RECORD_DTYPE, count=c, offset=HEADER_SIZE + pos * RECORD_SIZE)["producer_seq"]
                dedup.add(producer, pseqs, seq, epoch)
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

    # ----------------------------------------------------------------- status
    def status(self, consumers: list) -> StatusReply:
        """The current :class:`StatusReply`."""
        cfg = self.config
        return StatusReply(
            epoch=self.epoch, hwm=self.hwm, first_seq=int(getattr(self.journal, "first_seq", 1) or 1),
            durability=cfg.durability, uptime_s=round(time.monotonic() - self._started_at, 3),
            counts=self.stats.counts_by_name(), producers=self.stats.producer_status(self.dedup.producers()),
            consumers=consumers, errors=self.stats.errors_by_name(), journal=str(self.journal_dir),
            endpoints={"ingest": cfg.ingest, "publish": cfg.publish, "hwm": cfg.hwm, "replay": cfg.replay},
            journal_failed=self.journal_failed,
        )


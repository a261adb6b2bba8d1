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
import xxhash
import zmq

from sequencer.codes import ResultCode
from sequencer.config import SequencerConfig
from sequencer.dedup import DedupTable
from sequencer.hwm_file import HwmFileWriter
from sequencer.ingest import Masks, check_ingest_frame, describe_error, validate_frames
from sequencer.journal import Journal
from sequencer.log import get_logger
from sequencer.messages import IngestReply, StatusReply
from sequencer.protocol import (
    HEADER_SIZE,
    MAGIC,
    PROTOCOL_VERSION,
    RECORD_DTYPE,
    RECORD_SIZE,
    FrameError,
    HEARTBEAT_MAGIC,
    FrameType,
)
from sequencer.registry import Registry, default_registry
from sequencer.replay_server import ReplayServer
from sequencer.service_stats import ServiceStats

__all__ = ["Sequencer", "PUBLISH_SNDHWM", "hwm_file_path"]

PUBLISH_SNDHWM = 10_000
_HEADER = struct.Struct("<4sHBBQIIq")
_CHECKSUM = struct.Struct("<Q")
_STAMPED = int(FrameType.STAMPED)
_PSEQ = struct.Struct("<q")
_ZERO_HEADER = bytes(HEADER_SIZE)
# Same bytes as protocol.encode_heartbeat (checked by a test), without numpy per beat.
_HEARTBEAT = struct.Struct("<4sHHI4xqq")
assert RECORD_DTYPE.fields["seq"][1] == 0 and RECORD_DTYPE.fields["ts_ns"][1] == 8  # int64 row columns 0, 1
_NOBLOCK = int(zmq.NOBLOCK)
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
        validate_frames(np.zeros(1, RECORD_DTYPE), np.array([0, 1], np.int64), self._masks)
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
        try:
            while not stop.is_set():
                now = time.monotonic_ns()
                if now >= next_hb:
                    self._heartbeat()
                    next_hb = now + interval
                events = poller.poll(max(0, math.ceil((next_hb - now) / 1e6)))
                for sock, _ in events:
                    if sock is self._ingest:
                        self._drain_ingest()
                    else:
                        self.replay.drain()
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
        nrec = 0
        while nrec < limit:
            try:
                ident = recv(_NOBLOCK)
            except zmq.Again:
                break
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
        if frames:
            self._process(frames, nrec)
        send = _base_send
        enc = _reply_encoder.encode
        for ident, slots in out.items():
            send(sock, ident, _SNDMORE)
            send(sock, enc(slots))

    def _reject(self, code: ResultCode, message: str) -> IngestReply:
        self._count_error(code)
        return _error_reply(code, message, epoch=self.epoch)

    def _process(self, frames: list[tuple[list, int, memoryview, int]], nrec: int) -> None:
        """Validate, deduplicate and commit the drained frames; fill each frame's reply slot."""
        nframes = len(frames)
        buf = bytearray().join([_ZERO_HEADER, *[b[HEADER_SIZE:] for _, _, b, _ in frames]])
        starts = np.zeros(nframes + 1, np.int64)
        np.cumsum([c for _, _, _, c in frames], out=starts[1:])
        recs = np.frombuffer(buf, RECORD_DTYPE, count=nrec, offset=HEADER_SIZE)
        bad_index, bad_code, bad_field = validate_frames(recs, starts, self._masks)
        heads, tails = starts[:-1], starts[1:] - 1
        prods = recs["producer"][heads].tolist()
        p0s = recs["producer_seq"][heads].tolist()
        p1s = recs["producer_seq"][tails].tolist()
        bad = bad_index.tolist()
        lo_list = heads.tolist()
        replies: list = [None] * nframes
        accepted: list[int] = []
        pending: dict[int, int] = {}
        dedup = self.dedup
        for f in range(nframes):
            producer, p0, p1 = prods[f], p0s[f], p1s[f]
            if bad[f] >= 0:
                code = ResultCode(int(bad_code[f]))
                lo = lo_list[f]
                msg = describe_error(recs[lo:lo + frames[f][3]], bad[f], int(code), int(bad_field[f]))
                self._count_error(code)
                self._producer_stats(producer)[3] += 1
                replies[f] = _error_reply(code, msg, p0, p1, bad[f], self.epoch)
                continue
            last = pending.get(producer)
            if last is None:
                last = dedup.last(producer)
            if p0 > last:
                accepted.append(f)
                pending[producer] = p1
                continue
            replies[f] = self._old_frame(recs, lo_list[f], frames[f][3], producer, p0, p1, last)
        if accepted:
            if not self._commit(buf, recs, frames, starts, accepted, len(accepted) == nframes, replies, p0s, p1s, prods):
                for f in accepted:
                    replies[f] = _error_reply(ResultCode.JOURNAL_WRITE_FAILED, "journal write failed; frame not stamped",
                                              p0s[f], p1s[f], -1, self.epoch)
                    self._count_error(ResultCode.JOURNAL_WRITE_FAILED)
        for f in range(nframes):
            slots, pos, _, _ = frames[f]
            slots[pos] = replies[f]

    def _old_frame(self, recs: np.ndarray, lo: int, count: int, producer: int, p0: int, p1: int, last: int) -> IngestReply | tuple:
        """Reply to a frame whose first producer seq is not above the producer's last one."""
        st = self._producer_stats(producer)
        if p1 > last:
            st[3] += 1
            self._count_error(ResultCode.PARTIAL_DUPLICATE)
            return _error_reply(ResultCode.PARTIAL_DUPLICATE,
                                f"producer seqs {p0}..{p1} overlap the last stamped {last}: "
                                "resend whole frames, or only new producer seqs", p0, p1, -1, self.epoch)
        found = self.dedup.lookup(producer, recs["producer_seq"][lo:lo + count])
        if found is None:
            st[3] += 1
            self._count_error(ResultCode.PRODUCER_SEQ_NOT_INCREASING)
            return _error_reply(ResultCode.PRODUCER_SEQ_NOT_INCREASING,
                                f"producer seqs {p0}..{p1} are not above the last stamped {last} "
                                "and were never stamped", p0, p1, 0, self.epoch)
        st[2] += 1
        first_seq, last_seq, epoch = found
        return (True, 0, "OK", p0, p1, epoch, first_seq, last_seq, True, -1, "")

    def _commit(self, buf: bytearray, recs: np.ndarray, frames: list, starts: np.ndarray, accepted: list[int],
                everything: bool, replies: list, p0s: list, p1s: list, prods: list) -> bool:
        """Stamp, journal and publish the accepted frames as one batch; fill their replies."""
        counts = [frames[f][3] for f in accepted]
        if everything:
            out, stamped = buf, recs
        else:
            n = sum(counts)
            out = bytearray(HEADER_SIZE + n * RECORD_SIZE)
            stamped = np.frombuffer(out, RECORD_DTYPE, count=n, offset=HEADER_SIZE)
            keep = np.zeros(len(frames), np.bool_)
            keep[accepted] = True
            stamped[:] = recs[np.repeat(keep, np.diff(starts))]
        n = len(stamped)
        first = self.next_seq
        epoch = self.epoch
        ts = time.time_ns()
        # Through the int64 view of the rows: numpy structured-field assignment is far slower.
        rows = np.frombuffer(out, np.int64, count=n * (RECORD_SIZE // 8), offset=HEADER_SIZE).reshape(n, -1)
        rows[:, 0] = np.arange(first, first + n, dtype=np.int64)
        rows[:, 1] = ts
        stamped["epoch"] = epoch
        _HEADER.pack_into(out, 0, MAGIC, PROTOCOL_VERSION, _STAMPED, 0, 0, epoch, n, first)
        _CHECKSUM.pack_into(out, 8, xxhash.xxh3_64_intdigest(memoryview(out)[16:]))
        assert self.journal is not None
        try:
            self.journal.append(out, first, n, epoch)
        except (OSError, ValueError) as exc:
            # ValueError: the journal refused the frame (a bug); never publish it either.
            self._journal_error(exc)
            return False
        self.next_seq = first + n
        self.hwm = first + n - 1
        try:
            self._publish.send(out, zmq.NOBLOCK, copy=len(out) < _ZERO_COPY_BYTES)
        except zmq.Again:
            pass  # subscribers recover the frame through replay
        if self._hwm_writer is not None:
            self._hwm_writer.write(epoch, self.hwm, ts)
        self.stats.add_records(stamped)
        seq = first
        pseq_col = stamped["producer_seq"]
        pos = 0
        dedup = self.dedup
        for f, c in zip(accepted, counts):
            producer = prods[f]
            p0 = p0s[f]
            if p1s[f] - p0 == c - 1:  # contiguous producer seqs: one run, no numpy
                dedup.add_run(producer, p0, seq, c, epoch)
            else:
                dedup.add(producer, pseq_col[pos:pos + c], seq, epoch)
            st = self._producer_stats(producer)
            st[0] += 1
            st[1] += c
            # The array form of IngestReply (array_like): encoded with the drain's other replies.
            replies[f] = (True, 0, "OK", p0, p1s[f], epoch, seq, seq + c - 1, False, -1, "")
            seq += c
            pos += c
        return True

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


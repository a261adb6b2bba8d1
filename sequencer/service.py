"""The sequencer service: ingest, validate, stamp, journal, publish, heartbeat, replay.

One thread: it drains the ingest ROUTER while frames are waiting and, only when ingest is
empty, blocks in one ``poll`` on the notification fds of the ingest and replay ROUTERs
(:meth:`Sequencer._serve`). Each drain takes up to ``max_batch_records`` worth of ingest
frames, validates them in one numba call,
stamps the accepted ones as one batch, appends that batch to the journal as ONE stamped
frame, publishes the same bytes, updates the HWM file and acknowledges every ingest frame
with its seq range: one reply message per producer per drain (an array of ``IngestReply``);
the drain itself is :class:`sequencer.service_ingest.IngestLoop`. Nothing is published
before :meth:`Journal.append` returned; after a
journal ``OSError`` the service stops acknowledging and publishing (and stops heartbeating,
so gates fail closed on a stale HWM) but keeps answering status and replay.
"""

from __future__ import annotations

import gc
import math
import select
import struct
import threading
import time
from pathlib import Path

import numpy as np
import zmq

from sequencer.acks import encode_acks
from sequencer.codes import ResultCode
from sequencer.config import SequencerConfig
from sequencer.dedup import DedupTable
from sequencer.hwm_file import HwmFileWriter
from sequencer.ingest import Masks, validate_drain
from sequencer.ingest_headers import gather_frames
from sequencer.journal import Journal
from sequencer.log import get_logger
from sequencer.messages import StatusReply
from sequencer.protocol import HEADER_SIZE, HEARTBEAT_MAGIC, PROTOCOL_VERSION, RECORD_SIZE
from sequencer.registry import Registry, default_registry
from sequencer.replay_server import ReplayServer
from sequencer.runs import frame_runs
from sequencer.service_ingest import IngestLoop
from sequencer.service_stats import ServiceStats
from sequencer.stamp import stamp_frame
from sequencer.stamp_one import validate_stamp_one
from sequencer.xxh3 import AVAILABLE as XXH3_IN_KERNELS

__all__ = ["Sequencer", "PUBLISH_SNDHWM", "REPLAY_CHECK_NS", "hwm_file_path"]

PUBLISH_SNDHWM = 10_000
# Same bytes as protocol.encode_heartbeat (checked by a test), without numpy per beat.
_HEARTBEAT = struct.Struct("<4sHHI4xqq")
_NOBLOCK = int(zmq.NOBLOCK)
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
# The Cython getsockopt, as in service_ingest.
_base_get = zmq.backend.Socket.get
# While ingest is busy, how often the replay socket is asked for requests.
REPLAY_CHECK_NS = 1_000_000


def hwm_file_path(config: SequencerConfig, journal_dir: Path) -> Path | None:
    """Where the HWM file goes: ``config.hwm_file``, ``<journal>/hwm`` by default, None if "off"."""
    if config.hwm_file.lower() in ("off", "none"):
        return None
    return Path(config.hwm_file) if config.hwm_file else journal_dir / "hwm"


class Sequencer(IngestLoop):
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
        # Scratch of the one-frame drain (IngestLoop._drain_one): no arrays allocated per drain.
        self._one_starts = np.zeros(2, np.int64)
        self._one_info = np.zeros((1, 6), np.int64)

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
        # The same array layouts as the loop's (info columns are strided), or numba compiles
        # another specialization on the first batch-path drain.
        starts = np.array([0, 1, 2], np.int64)
        info = validate_drain(bytearray(HEADER_SIZE + 2 * RECORD_SIZE), starts, 2, self._masks)
        frame_runs(info, starts)
        stamp_frame(bytearray(HEADER_SIZE + RECORD_SIZE), 1, 1, 0, 1, np.zeros(256, np.int64))
        encode_acks(np.zeros(2, np.int64), 1, info[:, 4], info[:, 5], starts[:-1], starts[1:] - 1, 1)
        if XXH3_IN_KERNELS:
            gather_frames(bytes(HEADER_SIZE + RECORD_SIZE), np.array([HEADER_SIZE + RECORD_SIZE], np.int64))
        validate_stamp_one(bytearray(HEADER_SIZE + RECORD_SIZE), 1, 0, 0, 1, 0, 1, self._masks,
                           np.zeros(256, np.int64), self._one_starts, self._one_info)
        # Everything loaded so far (numba, llvmlite, the registry) lives as long as the process:
        # out of the collector's sight, a full collection no longer walks it (a quarter of the
        # loop's CPU at 50k frames/s went to the collector before).
        gc.collect()
        gc.freeze()
        # A drain keeps one zmq.Frame (a tracked object) per message alive until it is answered:
        # with a first generation larger than a full drain, draining triggers no collection.
        gc.set_threshold(2 * cfg.max_batch_records + 1000)
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
        try:
            self._serve(stop)
        finally:
            self._shutdown()
        return 0

    def _serve(self, stop: threading.Event) -> None:
        """The loop: drain ingest while it holds frames; when it is empty, block in one
        ``poll`` syscall on the two sockets' notification fds.

        zmq_poll would ask both sockets' mailboxes before blocking and again after waking (a
        ``getpid`` and a ``poll`` syscall each): at one frame per drain, a large part of the
        sequencer's CPU. Here ingest is asked once per turn, after the drain's sends (a send
        may empty the mailbox, so the fd alone could miss a frame); a socket's fd is readable
        whenever it got a command since its mailbox was last emptied, so after a wake-up
        that it did not cause (a heartbeat, a request) ingest is not drained. When the last drain
        held one message, the first drain after blocking takes one without asking for more
        (at moderate rates there is no more; if there is, the next drain takes it all); after
        a larger drain it takes all that is waiting. The replay socket is
        asked at most every ``REPLAY_CHECK_NS``, and whenever its fd woke the loop: status
        and replay requests wait that long at most. Heartbeats are due by the clock.
        """
        ingest, replay_sock = self._ingest, self.replay.sock
        replay_fd = replay_sock.getsockopt(zmq.FD)
        fds = select.poll()
        fds.register(ingest.getsockopt(zmq.FD), select.POLLIN)
        fds.register(replay_fd, select.POLLIN)
        interval = int(self.config.heartbeat_ms * 1e6)
        next_hb = next_replay = 0
        drain = self._drain_ingest
        clock = time.monotonic_ns
        ready, one = True, False  # ingest may hold frames; the next drain takes one only
        taken = 0  # messages of the last drain (its size guesses the next one's)
        while not stop.is_set():
            if ready:
                taken = drain(one)
            now = clock()
            if now >= next_replay:
                if _base_get(replay_sock, _EVENTS) & _POLLIN:
                    self.replay.drain()
                    next_replay = 0  # more may wait: ask again next turn, do not block
                else:
                    next_replay = now + REPLAY_CHECK_NS
            if ready and _base_get(ingest, _EVENTS) & _POLLIN:
                one = False  # frames are waiting: the next drain takes them all
            else:
                if ready:
                    # Frames came one at a time before blocking: most likely one comes next.
                    one = taken <= 1
                    ready = False  # just asked: until its fd fires, ingest has nothing
                if next_replay:
                    # Idle: returns as soon as a frame (or a request) arrives; the timeout
                    # paces heartbeats and the replay check.
                    wake = min(next_hb, next_replay)
                    for fd, _ in fds.poll(max(0, math.ceil((wake - now) / 1e6))):
                        if fd == replay_fd:
                            next_replay = 0
                        else:
                            ready = True
                    now = clock()
            # After the data: a due heartbeat never delays a drain's publish.
            if now >= next_hb:
                self._heartbeat()
                next_hb = now + interval

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


"""Test helpers for consumers: a hashing test fold and an in-process fake sequencer.

``HashFold`` folds records into a running xxh3 hash (so any order or duplicate changes the
result) and checks the fold contract (contiguous, first seq == applied + 1).

``FakeSequencer`` binds the three sockets a consumer talks to (PUB, heartbeat PUB, replay
ROUTER) and serves them from an in-memory journal. It has no thread of its own unless
``start()`` is called: tests call :meth:`FakeSequencer.pump` to answer replay requests and send
a heartbeat, which makes fault injection deterministic. Knobs: ``drop_live`` (frames that are
journaled but not published), ``stall_data`` (heartbeats flow, data does not),
``answer_replays`` (requests are read but never answered), ``restart(lose_tail=...)`` (new
epoch, optionally losing the journal tail as after a power loss).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import xxhash
import zmq

from sequencer.hwm_file import HwmFileWriter
from sequencer.messages import (
    REPLAY_DATA,
    REPLAY_DONE,
    ConsumerReport,
    ReplayDone,
    ReplayRequest,
    decode_request,
    encode,
)
from sequencer.protocol import RECORD_DTYPE, Kind, encode_frame, encode_heartbeat


class HashFold:
    """A minimal fold: running hash of every applied record, contract checked on each batch."""

    def __init__(self, applied_seq: int = 0) -> None:
        self.applied_seq = applied_seq
        self._h = xxhash.xxh3_64()
        self.batches = 0
        self.epochs: list[np.ndarray] = []

    def apply(self, records: np.ndarray) -> None:
        seqs = records["seq"]
        first = int(seqs[0])
        if first != self.applied_seq + 1:
            raise AssertionError(f"fold got first seq {first}, applied_seq is {self.applied_seq}")
        if len(seqs) > 1 and not np.array_equal(np.diff(seqs), np.ones(len(seqs) - 1, dtype=seqs.dtype)):
            raise AssertionError("fold got non-contiguous records")
        self._h.update(np.ascontiguousarray(records).tobytes())
        self.epochs.append(np.array(records["epoch"], copy=True))
        self.applied_seq = int(seqs[-1])
        self.batches += 1

    def applied_epochs(self) -> np.ndarray:
        """Epoch of every applied record, index i = seq i + 1 - first applied seq."""
        return np.concatenate(self.epochs) if self.epochs else np.zeros(0, dtype=np.uint32)

    def state_hash(self) -> str:
        return self._h.hexdigest()


def one_pass_hash(records: np.ndarray) -> str:
    """The hash a :class:`HashFold` reaches by folding ``records`` in one batch."""
    fold = HashFold()
    if len(records):
        fold.apply(records)
    return fold.state_hash()


def make_records(first_seq: int, n: int, epoch: int, salt: int = 0) -> np.ndarray:
    """``n`` stamped price records ``first_seq..`` of ``epoch`` (content varies with seq and salt)."""
    recs = np.zeros(n, dtype=RECORD_DTYPE)
    seqs = np.arange(first_seq, first_seq + n, dtype=np.int64)
    recs["seq"] = seqs
    recs["epoch"] = epoch
    recs["ts_ns"] = seqs * 1000 + salt
    recs["kind"] = int(Kind.PRICE)
    recs["instrument"] = 1
    recs["price"] = 100_000 + (seqs * 7919 + salt) % 1000
    recs["producer"] = 1
    recs["producer_seq"] = seqs
    return recs


class FakeSequencer:
    """In-process stand-in for the sequencer's publish, heartbeat and replay sockets."""

    def __init__(self, base: Path | str, *, epoch: int = 1, max_replay_records: int = 4096, chunk_records: int = 512) -> None:
        base = Path(base)
        self.publish = f"ipc://{base / 'pub.sock'}"
        self.hwm = f"ipc://{base / 'hwm.sock'}"
        self.replay = f"ipc://{base / 'replay.sock'}"
        self.hwm_file = base / "hwm.bin"
        self.ctx = zmq.Context.instance()
        self.epoch = epoch
        self.max_replay_records = max_replay_records
        self.chunk_records = chunk_records
        self.frames: list[tuple[int, np.ndarray]] = []  # the journal: (epoch, records)
        self.last_seq = 0
        self.drop_live = 0
        self.stall_data = False
        self.answer_replays = True
        self.heartbeats = True
        self.requests: list[ReplayRequest] = []
        self.reports: list[ConsumerReport] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._writer = HwmFileWriter(self.hwm_file)
        self._bind()

    def _bind(self) -> None:
        self._pub = self.ctx.socket(zmq.PUB)
        self._pub.setsockopt(zmq.SNDHWM, 100_000)
        self._pub.bind(self.publish)
        self._hb = self.ctx.socket(zmq.PUB)
        self._hb.bind(self.hwm)
        self._router = self.ctx.socket(zmq.ROUTER)
        self._router.bind(self.replay)
        for s in (self._pub, self._hb, self._router):
            s.setsockopt(zmq.LINGER, 0)

    def _unbind(self) -> None:
        for s in (self._pub, self._hb, self._router):
            s.close(0)

    # ------------------------------------------------------------------ stream
    def publish_records(self, n: int, frame_records: int = 16) -> list[tuple[int, int]]:
        """Stamp ``n`` records in frames of ``frame_records``; journal and (maybe) publish them."""
        out = []
        with self._lock:
            left = n
            while left > 0:
                k = min(frame_records, left)
                recs = make_records(self.last_seq + 1, k, self.epoch)
                self.frames.append((self.epoch, recs))
                self.last_seq += k
                left -= k
                out.append((int(recs["seq"][0]), self.last_seq))
                if self.drop_live > 0:
                    self.drop_live -= 1
                elif not self.stall_data:
                    self._pub.send(encode_frame(recs, epoch=self.epoch))
                self._writer.write(self.epoch, self.last_seq, time.time_ns())
        return out

    def journal(self) -> np.ndarray:
        """Every journaled record in seq order."""
        with self._lock:
            if not self.frames:
                return np.zeros(0, dtype=RECORD_DTYPE)
            return np.concatenate([r for _, r in self.frames])

    def restart(self, *, lose_tail: int = 0, downtime_s: float = 0.0) -> None:
        """Close and rebind every socket in a new epoch; ``lose_tail`` drops the last frames."""
        with self._lock:
            self._unbind()
            if lose_tail:
                del self.frames[len(self.frames) - lose_tail :]
                self.last_seq = int(self.frames[-1][1]["seq"][-1]) if self.frames else 0
            self.epoch += 1
            if downtime_s:
                time.sleep(downtime_s)
            self._bind()
            self._writer.write(self.epoch, self.last_seq, time.time_ns())

    # ------------------------------------------------------------------ service
    def pump(self, timeout_ms: int = 0) -> int:
        """Send one heartbeat (and, like the sequencer, write the HWM file with the same
        timestamp), answer pending replay requests; returns requests handled."""
        with self._lock:
            if self.heartbeats:
                now = time.time_ns()
                self._hb.send(encode_heartbeat(self.epoch, self.last_seq, now))
                self._writer.write(self.epoch, self.last_seq, now)
            handled = 0
            if timeout_ms and not self._router.poll(timeout_ms):
                return 0
            while self._router.poll(0):
                ident, body = self._router.recv_multipart()
                msg = decode_request(body)
                handled += 1
                if isinstance(msg, ConsumerReport):
                    self.reports.append(msg)
                elif isinstance(msg, ReplayRequest):
                    self.requests.append(msg)
                    if self.answer_replays:
                        self._answer(ident, msg)
            return handled

    def _answer(self, ident: bytes, req: ReplayRequest) -> None:
        hwm = self.last_seq
        to = hwm if req.to_seq == 0 else min(req.to_seq, hwm)
        limit = min(req.max_records, self.max_replay_records)
        end = min(to, req.from_seq + limit - 1)
        last = req.from_seq - 1
        if req.from_seq <= end:
            for ep, recs in self.frames:
                f, l = int(recs["seq"][0]), int(recs["seq"][-1])
                if l < req.from_seq or f > end:
                    continue
                part = recs[max(0, req.from_seq - f) : end - f + 1]
                for i in range(0, len(part), self.chunk_records):
                    chunk = part[i : i + self.chunk_records]
                    rid = req.req_id.to_bytes(8, "little")
                    self._router.send_multipart([ident, REPLAY_DATA, rid, encode_frame(chunk, epoch=ep)])
                last = min(l, end)
        done = ReplayDone(req.req_id, req.from_seq, last, hwm, self.epoch, complete=last >= to)
        self._router.send_multipart([ident, REPLAY_DONE, encode(done)])

    def start(self, interval_s: float = 0.002) -> None:
        """Pump from a background thread (heartbeat every ``interval_s``)."""
        self._stop.clear()

        def loop() -> None:
            while not self._stop.is_set():
                self.pump()
                self._stop.wait(interval_s)

        self._thread = threading.Thread(target=loop, name="fake-sequencer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background pump, if running."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def close(self) -> None:
        self.stop()
        with self._lock:
            self._unbind()
            self._writer.close()

    def __enter__(self) -> FakeSequencer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Subscriber: does a consumer keep up with the published stream, and what does an idle poll cost.

Topology (two processes over ``ipc://``): a publisher child process (``python -m
benchmarks.bench_subscriber publisher ...``) that binds the three sockets a consumer talks to
(stamped-frame PUB, heartbeat PUB, replay ROUTER answering from a generator) and writes a
HWM file, and this process consuming. The child blasts stamped frames of 512 records as fast
as it can; the rate is measured at the receiver from the first to the last frame of a burst:

* ``subscriber_apply_batch512_ipc_throughput``: a ``consumers.Subscriber`` (decode, checksum,
  splice, a counting fold);
* ``raw_sub_recv_batch512_ipc_throughput``: a bare pyzmq SUB receiving the same bytes (the
  ceiling, same run, same publisher).

Both receivers stay connected with unlimited queues (nothing is dropped, the rate is what
the receiver sustains) and their bursts alternate, so each pair runs under the same load. Idle ``poll()`` cost (nothing pending, consumer current) is measured with and
without the HWM file, beside a bare ``getsockopt(EVENTS)`` on a SUB socket (the syscall the
no-file path cannot avoid).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import xxhash
import zmq

from benchmarks._measure import stats_of
from sequencer.protocol import HEADER_SIZE, MAGIC, PROTOCOL_VERSION, RECORD_DTYPE, FrameType, Kind, encode_heartbeat

__all__ = ["run"]

Row = dict[str, Any]
BATCH = 512
_HDR = struct.Struct("<4sHBBQIIq")
_REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------- child side
class _Frames:
    """Stamped frames of ``n`` records starting at any seq, from one reused buffer."""

    def __init__(self, n: int) -> None:
        self.buf = bytearray(HEADER_SIZE + n * RECORD_DTYPE.itemsize)
        self.recs = np.frombuffer(self.buf, RECORD_DTYPE, offset=HEADER_SIZE)
        self.recs["kind"] = Kind.PRICE
        self.recs["instrument"] = 1
        self.recs["price"] = 100
        self.recs["epoch"] = 1
        self.ar = np.arange(n, dtype=np.int64)
        self.n = n

    def frame(self, first: int, count: int | None = None) -> bytes:
        count = self.n if count is None else count
        self.recs["seq"][:count] = self.ar[:count] + first
        size = HEADER_SIZE + count * RECORD_DTYPE.itemsize
        view = memoryview(self.buf)[:size]
        _HDR.pack_into(self.buf, 0, MAGIC, PROTOCOL_VERSION, int(FrameType.STAMPED), 0, 0, 1, count, first)
        struct.pack_into("<Q", self.buf, 8, xxhash.xxh3_64_intdigest(view[16:]))
        return bytes(view)


def _child_publisher(data_ep: str, hb_ep: str, replay_ep: str, hwm_path: str) -> None:
    """stdin commands: ``prime`` (a 1-record frame every 5 ms), ``hold`` (stop priming, print
    the last seq), ``go FRAMES`` (blast, print ``sent LAST``), ``quit``."""
    from sequencer.hwm_file import HwmFileWriter
    from sequencer.messages import REPLAY_DATA, REPLAY_DONE, ReplayDone, ReplayRequest, decode_request, encode

    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, 0)
    pub.bind(data_ep)
    hb = ctx.socket(zmq.PUB)
    hb.bind(hb_ep)
    router = ctx.socket(zmq.ROUTER)
    router.bind(replay_ep)
    for s in (pub, hb, router):
        s.setsockopt(zmq.LINGER, 0)
    writer = HwmFileWriter(hwm_path)
    big, small = _Frames(BATCH), _Frames(4096)
    last = 0
    poller = zmq.Poller()
    poller.register(router, zmq.POLLIN)
    stdin = sys.stdin.fileno()
    poller.register(stdin, zmq.POLLIN)
    pending = b""
    priming = False
    print("ready", flush=True)

    def beat() -> None:
        ts = time.time_ns()
        hb.send(encode_heartbeat(1, last, ts))
        writer.write(1, last, ts)

    while True:
        events = dict(poller.poll(5))
        if router in events:
            while router.poll(0):
                ident, body = router.recv_multipart()
                req = decode_request(body)
                if not isinstance(req, ReplayRequest):
                    continue
                to = last if req.to_seq == 0 else min(req.to_seq, last)
                end = min(to, req.from_seq + req.max_records - 1)
                seq = req.from_seq
                while seq <= end:
                    k = min(4096, end - seq + 1)
                    router.send_multipart([ident, REPLAY_DATA, req.req_id.to_bytes(8, "little"), small.frame(seq, k)])
                    seq += k
                done = ReplayDone(req.req_id, req.from_seq, max(end, req.from_seq - 1), last, 1, end >= to)
                router.send_multipart([ident, REPLAY_DONE, encode(done)])
        if stdin in events:
            chunk = os.read(stdin, 4096)
            if not chunk:
                break
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                op, *args = line.decode().split()
                if op == "quit":
                    writer.close()
                    ctx.destroy(0)
                    return
                if op == "prime":
                    priming = True
                elif op == "hold":
                    priming = False
                    beat()
                    print(f"held {last}", flush=True)
                elif op == "go":
                    send = pub.send
                    for i in range(int(args[0])):
                        send(big.frame(last + 1), copy=False)
                        last += BATCH
                        writer.write(1, last, time.time_ns())
                        if i % 64 == 0:
                            hb.send(encode_heartbeat(1, last, time.time_ns()))
                    beat()
                    print(f"sent {last}", flush=True)
        if priming:
            pub.send(small.frame(last + 1, 1))
            last += 1
        beat()


# ---------------------------------------------------------------------------- parent side
class _CountFold:
    """The cheapest fold: counts records (the subscriber's own cost is what is measured).

    ``arm(target)`` starts timing at the next batch and stops when ``target`` is applied.
    """

    def __init__(self) -> None:
        self.applied_seq = 0
        self.target: int | None = None
        self.t_first = self.t_done = 0.0
        self.first_after = 0
        self.done = threading.Event()

    def arm(self, target: int) -> None:
        self.target = target
        self.t_first = 0.0
        self.done.clear()

    def apply(self, records: np.ndarray) -> None:
        self.applied_seq += len(records)
        if self.target is None:
            return
        if not self.t_first:
            self.t_first = time.perf_counter()
            self.first_after = self.applied_seq
        if self.applied_seq >= self.target:
            self.t_done = time.perf_counter()
            self.target = None
            self.done.set()


class _Child:
    def __init__(self, base: Path) -> None:
        self.data = f"ipc://{base}/data"
        self.hb = f"ipc://{base}/hb"
        self.replay = f"ipc://{base}/replay"
        self.hwm_file = base / "hwm"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO), env.get("PYTHONPATH", "")]))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.bench_subscriber", "publisher", self.data, self.hb, self.replay, str(self.hwm_file)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=str(_REPO),
        )
        self.expect("ready")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def expect(self, word: str) -> int:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if not line or line[0] != word:
            raise RuntimeError(f"publisher child said {line!r}, expected {word!r}")
        return int(line[1]) if len(line) > 1 else 0

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)


def _until(cond, timeout_s: float, step=None) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError("benchmark setup did not converge in time")
        if step is not None:
            step()
        else:
            time.sleep(0.001)


def _subscriber_burst(child: _Child, sub, fold: _CountFold, frames: int) -> float:
    """Records/s applied by ``sub.run()`` (a standalone consumer) from the first to the last
    frame of one burst; the main thread only waits."""
    stop = threading.Event()
    runner = threading.Thread(target=sub.run, args=(stop,), daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while not (fold.applied_seq >= sub.hwm and not sub.recovering):
            if time.monotonic() > deadline:
                raise RuntimeError(f"subscriber did not drain: {sub.counters()}")
            time.sleep(0.005)
        target = fold.applied_seq + frames * BATCH
        fold.arm(target)
        child.send(f"go {frames}")
        if not fold.done.wait(120):
            raise RuntimeError(f"burst not applied: {sub.counters()}")
        child.expect("sent")
    finally:
        stop.set()
        runner.join(10)
    if sub.error or sub.counters()["dropped_buffered"]:
        raise RuntimeError(f"subscriber did not keep up cleanly: {sub.counters()}")
    return (target - fold.first_after) / max(fold.t_done - fold.t_first, 1e-9)


def _raw_burst(child: _Child, sock: zmq.Socket, frames: int) -> float:
    child.send(f"go {frames}")
    recv = sock.recv
    recv(copy=False)
    t0 = time.perf_counter()
    for _ in range(frames - 1):
        recv(copy=False)
    t1 = time.perf_counter()
    child.expect("sent")
    return (frames - 1) * BATCH / max(t1 - t0, 1e-9)


def _drain_raw(sock: zmq.Socket, frames: int | None = None) -> None:
    """Receive ``frames`` frames (or whatever is queued) untimed."""
    if frames is None:
        while sock.poll(0):
            sock.recv()
        return
    for _ in range(frames):
        if not sock.poll(30_000):
            raise RuntimeError("raw SUB lost frames")
        sock.recv(copy=False)


def _idle_poll_ns(sub, n: int) -> float:
    poll = sub.poll
    t0 = time.perf_counter_ns()
    for _ in range(n):
        poll()
    return (time.perf_counter_ns() - t0) / n


def run(ctx) -> list[Row]:
    from consumers.subscriber import Subscriber

    frames = ctx.size(200, 4000)
    idle_n = ctx.size(20_000, 200_000)
    base = Path(tempfile.mkdtemp(prefix="sqb-"))
    child = _Child(base)
    zctx = zmq.Context.instance()
    rows: list[Row] = []
    try:
        fold = _CountFold()
        sub = Subscriber(child.data, child.hb, child.replay, fold, hwm_file=None, report_interval_s=None,
                         rcvhwm=0, max_buffered_frames=1 << 20, stall_s=5.0)
        raw = zctx.socket(zmq.SUB)
        raw.setsockopt(zmq.LINGER, 0)
        raw.setsockopt(zmq.RCVHWM, 0)
        raw.setsockopt(zmq.SUBSCRIBE, b"")
        raw.connect(child.data)
        child.send("prime")
        _until(lambda: fold.applied_seq > 0 and not sub.recovering and raw.poll(0) != 0, 30, lambda: sub.poll(512))
        child.send("hold")
        held = child.expect("held")
        _until(lambda: fold.applied_seq >= held and not sub.recovering, 30, lambda: sub.poll(512))
        time.sleep(0.05)
        _drain_raw(raw)
        # Both receivers stay connected; bursts alternate so each pair runs under the same
        # machine load. The other receiver's copy of a burst is drained untimed afterwards.
        applied_runs: list[float] = []
        raw_runs: list[float] = []
        for i in range(ctx.warmup + ctx.repeats):
            a = _subscriber_burst(child, sub, fold, frames)
            _drain_raw(raw, frames)
            r = _raw_burst(child, raw, frames)
            if i >= ctx.warmup:
                applied_runs.append(a)
                raw_runs.append(r)
        applied = stats_of(applied_runs, ctx.warmup)
        ceiling = stats_of(raw_runs, ctx.warmup)
        raw.close()
        _until(lambda: sub.hwm == fold.applied_seq, 10, lambda: sub.poll(512))
        idle = ctx.measure(lambda: _idle_poll_ns(sub, idle_n))
        events = ctx.measure(lambda: _idle_poll_ns_events(sub._sub, idle_n))
        sub.close()

        fold2 = _CountFold()
        fold2.applied_seq = fold.applied_seq
        sub2 = Subscriber(child.data, child.hb, child.replay, fold2, hwm_file=child.hwm_file, report_interval_s=None)
        _until(lambda: not sub2.recovering and sub2.hwm == fold2.applied_seq, 30, lambda: sub2.poll(512))
        idle_file = ctx.measure(lambda: _idle_poll_ns(sub2, idle_n))
        sub2.close()
    finally:
        child.close()
        shutil.rmtree(base, ignore_errors=True)

    raw_name = "raw_sub_recv_batch512_ipc_throughput"
    ev_name = "zmq_sub_getsockopt_events_ns"
    note = f"{frames} frames of {BATCH} records per run, publisher child process, unlimited queues"
    rows.append(ctx.result(raw_name, ceiling, "records/s", higher_is_better=True,
                           note="bare pyzmq SUB recv of the same frames (ceiling); " + note))
    rows.append(ctx.result("subscriber_apply_batch512_ipc_throughput", applied, "records/s", higher_is_better=True,
                           reference=raw_name, reference_value=ceiling.value, target=">= 2M events/s",
                           note="Subscriber.run() in a thread: decode + checksum + splice + counting fold; " + note))
    rows.append(ctx.result(ev_name, events, "ns", higher_is_better=False,
                           note="one getsockopt(ZMQ_EVENTS) on an idle SUB socket (a syscall on this machine)"))
    rows.append(ctx.result("subscriber_idle_poll_no_hwm_file_ns", idle, "ns", higher_is_better=False,
                           reference=ev_name, reference_value=events.value, target="cheap when nothing is pending",
                           note=f"poll() with nothing pending, consumer current, mean of {idle_n} calls"))
    rows.append(ctx.result("subscriber_idle_poll_hwm_file_ns", idle_file, "ns", higher_is_better=False,
                           reference=ev_name, reference_value=events.value, target="cheap when nothing is pending",
                           note=f"poll() with the HWM file saying nothing is new (no syscall), mean of {idle_n} calls"))
    return rows


def _idle_poll_ns_events(sock: zmq.Socket, n: int) -> float:
    get = sock.getsockopt
    ev = int(zmq.EVENTS)
    t0 = time.perf_counter_ns()
    for _ in range(n):
        get(ev) & 1
    return (time.perf_counter_ns() - t0) / n


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "publisher":
        _child_publisher(*sys.argv[2:])
    else:
        sys.exit("usage: python -m benchmarks.bench_subscriber publisher DATA_EP HB_EP REPLAY_EP HWM_FILE")

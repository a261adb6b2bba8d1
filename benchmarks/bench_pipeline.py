"""Sequencer pipeline: stamp + journal (``batch``) + publish, measured at a subscriber.

Topology (three processes over ``ipc://``): a load generator child process (a raw DEALER
sending pre-encoded ingest frames, so the producer's Python cost is not what is measured)
-> the sequencer process (``python -m sequencer.service_cli sequencer``, durability batch)
-> a SUB socket in this process. Throughput is records received per second at the SUB with 1
and 64 records per producer frame; latency is the sequencer's stamp (``ts_ns``) to the
moment this process has decoded and applied the frame (a vectorized position fold), with
the load paced at 10k/50k/100k events/s. References measured in the same run: raw pyzmq
PUB->SUB of the same bytes (``bench_ceilings``), raw DEALER->ROUTER with one reply per
message (this module), the same three-process topology with a raw relay in the middle
(DEALER->ROUTER, one PUB message and one reply array per drain, as the sequencer batches:
the honest ceiling of the pipeline rows; for latency it stamps each drain after its
receive, as the sequencer does, and the latency rows' reference is that relay at the same
rate), and the raw one-way PUB->SUB latency at the same rate.

``python -m benchmarks.bench_pipeline load EP`` / ``router EP`` / ``relay EP EP`` are the
child processes.
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import xxhash
import zmq

from sequencer.protocol import (HEADER_SIZE, MAGIC, PROTOCOL_VERSION, RECORD_DTYPE, FrameType, Kind, decode_frame,
                                decode_header, frame_checksum)

__all__ = ["run"]

Row = dict[str, Any]
_HDR = struct.Struct("<4sHBBQIIq")
_REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------- child side
def _ingest_frames(producer: int, first_pseq: int, frames: int, batch: int) -> list[bytes]:
    recs = np.zeros(frames * batch, RECORD_DTYPE)
    recs["kind"] = Kind.PRICE
    recs["instrument"] = 1
    recs["price"] = 100
    recs["producer"] = producer
    recs["producer_seq"] = np.arange(first_pseq, first_pseq + len(recs))
    raw = recs.tobytes()
    size = batch * RECORD_DTYPE.itemsize
    out = []
    for f in range(frames):
        buf = bytearray(HEADER_SIZE + size)
        _HDR.pack_into(buf, 0, MAGIC, PROTOCOL_VERSION, int(FrameType.INGEST), 0, 0, 0, batch, 0)
        buf[HEADER_SIZE:] = raw[f * size:(f + 1) * size]
        struct.pack_into("<Q", buf, 8, xxhash.xxh3_64_intdigest(memoryview(buf)[16:]))
        out.append(bytes(buf))
    return out


def _reply_count(raw: bytes) -> int:
    """How many IngestReply an ingest reply message holds, from its msgpack array header only
    (decoding every reply would take CPU from the sequencer on a 2-core machine)."""
    tag = raw[0]
    if 0x90 <= tag <= 0x9F:
        return tag & 0x0F
    if tag == 0xDC:
        return int.from_bytes(raw[1:3], "big")
    if tag == 0xDD:
        return int.from_bytes(raw[1:5], "big")
    raise ValueError(f"ingest reply is not a msgpack array (first byte {tag:#x})")


def _child_load(endpoint: str) -> None:
    """Commands on stdin: ``burst FRAMES BATCH`` or ``paced FRAMES RATE``; answers ``ok``."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    producer = (os.getpid() * 2654435761) % (2**32 - 1) + 1
    pseq = 1
    for line in sys.stdin:
        op, *args = line.split()
        if op == "quit":
            break
        frames, arg = int(args[0]), int(args[1])
        batch = arg if op == "burst" else 1
        data = _ingest_frames(producer, pseq, frames, batch)
        pseq += frames * batch
        print("ready", flush=True)
        sys.stdin.readline()  # "go"
        send = sock.send
        if op == "burst":
            for d in data:
                send(d)
        else:
            period = 1e9 / arg
            t0 = time.perf_counter_ns()
            for i, d in enumerate(data):
                due = t0 + i * period
                while time.perf_counter_ns() < due:
                    # Yield the core while waiting, as the raw one-way reference's sender does:
                    # 2-core machines run three processes here (time.sleep(0) does not yield).
                    os.sched_yield()
                send(d)
        acks = 0
        while acks < frames and sock.poll(10_000):
            acks += _reply_count(sock.recv())  # one message answers a drain's frames
        print(f"ok {acks}", flush=True)
    sock.close()
    ctx.term()


def _child_router(endpoint: str) -> None:
    """Raw ROUTER: one small reply per message, like the sequencer's ack; exits on b"quit"."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.bind(endpoint)
    ack = b"\x9b" + bytes(40)
    recv, send = sock.recv, sock.send
    noblock, sndmore = int(zmq.NOBLOCK), int(zmq.SNDMORE)
    while sock.poll(60_000):
        while True:  # drain without polling per message, as the sequencer does
            try:
                ident = recv(noblock)
            except zmq.Again:
                break
            msg = recv(noblock)
            if msg == b"quit":
                sock.close(linger=0)
                ctx.term()
                return
            send(ident, sndmore)
            send(ack)
    sock.close(linger=0)
    ctx.term()


def _child_relay(ingest: str, publish: str) -> None:
    """Raw ROUTER + PUB with the sequencer's topology and batching, nothing else: each drain of
    up to 4096 messages is published as ONE message (a 32-byte header with the first seq,
    then every message's records) and answered with ONE reply per drain (a msgpack array of
    a pre-encoded ack per message, as long as the sequencer's). No checks, no journal, and
    no stamp but ``time.time_ns()`` of the drain in the header's checksum field (the frame
    carries no checksum). SIGTERM stops it."""
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.RCVHWM, 100_000)
    router.setsockopt(zmq.SNDHWM, 100_000)
    router.bind(ingest)
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, 10_000)
    pub.bind(publish)
    ack = msgspec.msgpack.encode((True, 0, "OK", 1 << 20, 1 << 20, 1, 1 << 24, 1 << 24, False, -1, ""))
    recv, send, psend = router.recv, router.send, pub.send
    noblock, sndmore = int(zmq.NOBLOCK), int(zmq.SNDMORE)
    seq = 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while router.poll(60_000):
            counts: dict[bytes, int] = {}
            parts = [b""]
            nrec = 0
            while nrec < 4096:
                try:
                    ident = recv(noblock)
                except zmq.Again:
                    break
                msg = recv(noblock)
                counts[ident] = counts.get(ident, 0) + 1
                parts.append(msg[HEADER_SIZE:])
                nrec += (len(msg) - HEADER_SIZE) // RECORD_DTYPE.itemsize
            # The drain's stamp where the sequencer takes it (after the receive), in the
            # checksum field: the latency rows' ceiling reads it there.
            parts[0] = _HDR.pack(MAGIC, PROTOCOL_VERSION, int(FrameType.STAMPED), 0, time.time_ns(), 1, nrec, seq)
            seq += nrec
            psend(b"".join(parts))
            for ident, n in counts.items():
                send(ident, sndmore)
                send((b"\xdc" + n.to_bytes(2, "big") if n > 15 else bytes([0x90 | n])) + ack * n)
    finally:
        router.close(linger=0)
        pub.close(linger=0)
        ctx.term()


# ---------------------------------------------------------------------------- parent side
class _Proc:
    """A child process we started; ``stop()`` ends only it."""

    def __init__(self, args: list[str], **kw: Any) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO), env.get("PYTHONPATH", "")]))
        self.p = subprocess.Popen([sys.executable, *args], cwd=str(_REPO), env=env, **kw)

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(10)


class _Pipeline:
    """Sequencer (or, with ``relay``, the raw relay child) + load generator + SUB here."""

    def __init__(self, tmpdir: Path, relay: bool = False) -> None:
        self.sockdir = Path(tempfile.mkdtemp(prefix="sqbp-"))
        self.eps = {n: f"ipc://{self.sockdir}/{n}" for n in ("ingest", "publish", "hwm", "replay")}
        args = ["-m", "sequencer.service_cli", "--log-level", "WARNING", "sequencer",
                "--journal", str(tmpdir / f"journal-{time.monotonic_ns()}"), "--durability", "batch"]
        for n, ep in self.eps.items():
            args += [f"--{n}", ep]
        if relay:
            args = ["-m", "benchmarks.bench_pipeline", "relay", self.eps["ingest"], self.eps["publish"]]
        self.relay = relay
        self.seq = _Proc(args)
        self.zctx = zmq.Context()
        self.sub = self.zctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.RCVHWM, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(self.eps["publish"])
        self.load: _Proc | None = None
        if relay:
            time.sleep(1.0)  # the relay has no status socket to ask: let it start and bind
        else:
            self._wait_serving()
        self.load = _Proc(["-m", "benchmarks.bench_pipeline", "load", self.eps["ingest"]],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.hwm = 0

    def _wait_serving(self) -> None:
        from sequencer.status import request_status

        deadline = time.monotonic() + 60
        while True:
            try:
                request_status(self.eps["replay"], 0.5, self.zctx)
                return
            except Exception:  # noqa: BLE001 - StatusTimeout until the child serves
                if time.monotonic() > deadline or self.seq.p.poll() is not None:
                    raise RuntimeError("sequencer did not start") from None

    def _cmd(self, line: str) -> str:
        assert self.load is not None and self.load.p.stdin and self.load.p.stdout
        self.load.p.stdin.write(line + "\n")
        self.load.p.stdin.flush()
        return self.load.p.stdout.readline().strip()

    def burst(self, frames: int, batch: int) -> float:
        """Records/s at the SUB for ``frames`` frames of ``batch`` records."""
        total = frames * batch
        assert self._cmd(f"burst {frames} {batch}") == "ready"
        self._cmd_nowait("go")
        want = self.hwm + total
        got = 0
        t_first = t_last = 0.0
        first_count = 0
        while self.hwm < want:
            if not self.sub.poll(10_000):
                raise RuntimeError(f"subscriber stalled at seq {self.hwm} of {want}")
            buf = self.sub.recv(copy=False)
            now = time.perf_counter()
            n = (len(buf) - HEADER_SIZE) // RECORD_DTYPE.itemsize
            last = struct.unpack_from("<q", buf.buffer, 24)[0] + n - 1
            if not got:
                t_first, first_count = now, n
            got += n
            t_last = now
            self.hwm = last
        self._finish()
        return (got - first_count) / max(t_last - t_first, 1e-9)

    def paced(self, count: int, rate: int) -> np.ndarray:
        """Stamp-to-applied latency samples (ns) of ``count`` single-event frames at ``rate``/s
        (with the relay: its drain's stamp to applied)."""
        assert self._cmd(f"paced {count} {rate}") == "ready"
        self._cmd_nowait("go")
        want = self.hwm + count
        out = np.empty(count, np.int64)
        i = 0
        pos = np.zeros(8, np.int64)
        while self.hwm < want:
            if not self.sub.poll(10_000):
                raise RuntimeError(f"subscriber stalled at seq {self.hwm} of {want}")
            buf = self.sub.recv()
            if self.relay:
                # The relay's stamp is in the checksum field; the same decoding work as
                # decode_frame (header checks, xxh3 of the frame, the records view).
                header = decode_header(buf)
                ts = header.checksum
                frame_checksum(buf)
                recs = np.frombuffer(buf, RECORD_DTYPE, offset=HEADER_SIZE)
            else:
                header, recs = decode_frame(buf)
                ts = recs["ts_ns"]
            np.add.at(pos, recs["instrument"], recs["qty"])  # the fold being applied
            now = time.time_ns()
            n = len(recs)
            out[i:i + n] = now - ts
            i += n
            self.hwm = header.first_seq + n - 1
        self._finish()
        return out[:i]

    def _cmd_nowait(self, line: str) -> None:
        assert self.load is not None and self.load.p.stdin
        self.load.p.stdin.write(line + "\n")
        self.load.p.stdin.flush()

    def _finish(self) -> None:
        assert self.load is not None and self.load.p.stdout
        reply = self.load.p.stdout.readline().strip()
        if not reply.startswith("ok"):
            raise RuntimeError(f"load generator answered {reply!r}")

    def close(self) -> None:
        if self.load is not None:
            try:
                self._cmd_nowait("quit")
            except (BrokenPipeError, OSError):
                pass
            self.load.stop()
        self.seq.stop()
        self.sub.close(linger=0)
        self.zctx.term()
        shutil.rmtree(self.sockdir, ignore_errors=True)


def _raw_dealer_router(ctx: Any, batch: int, messages: int) -> Any:
    sockdir = Path(tempfile.mkdtemp(prefix="sqbr-"))
    ep = f"ipc://{sockdir}/r"
    router = _Proc(["-m", "benchmarks.bench_pipeline", "router", ep])
    zctx = zmq.Context()
    dealer = zctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.SNDHWM, 0)
    dealer.setsockopt(zmq.RCVHWM, 0)
    dealer.connect(ep)
    data = _ingest_frames(1, 1, messages, batch)
    try:
        def one() -> float:
            t0 = time.perf_counter()
            for d in data:
                dealer.send(d)
            for _ in range(messages):
                if not dealer.poll(10_000):
                    raise RuntimeError("raw ROUTER stopped answering")
                dealer.recv()
            return messages * batch / (time.perf_counter() - t0)

        return ctx.measure(one)
    finally:
        dealer.send(b"quit")
        time.sleep(0.05)
        router.stop()
        dealer.close(linger=0)
        zctx.term()
        shutil.rmtree(sockdir, ignore_errors=True)


def run(ctx: Any) -> list[Row]:
    """Throughput at 1 and 64 records per producer frame and latency at fixed rates."""
    from benchmarks import bench_ceilings as ceilings

    rows: list[Row] = [ceilings.timer_overhead(ctx)]
    targets = {1: ">= 250k events/s", 64: ">= 2M events/s"}
    for batch in (1, 64):
        frames = ctx.size(4_000, 200_000) if batch == 1 else ctx.size(200, 20_000)
        ref = ceilings.zmq_pubsub_throughput(ctx, batch)
        rows.append(ref)
        raw_dr = ctx.result(
            f"raw_pyzmq_dealer_router_ipc_batch{batch}_throughput", _raw_dealer_router(ctx, batch, frames),
            "records/s", higher_is_better=True,
            note=f"{frames} pre-encoded frames of {batch} record(s) DEALER -> child ROUTER, one 41 B reply each")
        rows.append(raw_dr)
        relay = _Pipeline(ctx.tmpdir, relay=True)
        try:
            relay_stats = ctx.measure(lambda: relay.burst(frames, batch))
        finally:
            relay.close()
        raw_relay = ctx.result(
            f"raw_pyzmq_dealer_router_pub_sub_ipc_batch{batch}_throughput", relay_stats, "records/s",
            higher_is_better=True,
            note=f"the pipeline's topology and batching with nothing in the middle: {frames} pre-encoded frames "
                 f"of {batch} record(s) from a child DEALER -> child ROUTER draining up to 4096 records, one "
                 "PUB message and one reply array per drain -> SUB here")
        rows.append(raw_relay)
        pipe = _Pipeline(ctx.tmpdir)
        try:
            stats = ctx.measure(lambda: pipe.burst(frames, batch))
        finally:
            pipe.close()
        rows.append(ctx.result(
            f"sequencer_one_producer_batch{batch}_ipc_throughput", stats, "records/s", higher_is_better=True,
            reference=ref, target=targets[batch],
            note=f"{frames} pre-encoded ingest frames of {batch} record(s) from a child DEALER; validate + "
                 f"stamp + journal(batch) + publish + ack in the sequencer; rate at a SUB here "
                 f"(raw DEALER->ROUTER of the same frames: {raw_dr['value']:.0f} records/s; raw DEALER->ROUTER->"
                 f"PUB->SUB batched per drain as here: {raw_relay['value']:.0f} records/s)"))
    rates = (50_000,) if ctx.quick else (10_000, 50_000, 100_000)
    counts = {rate: ctx.size(1_000, max(20_000, rate)) for rate in rates}
    ceiling = _paced_latency(ctx, counts, relay=True)
    measured = _paced_latency(ctx, counts, relay=False)
    for rate in rates:
        count = counts[rate]
        refs = ceilings.zmq_oneway_latency(ctx, rate)
        rows.extend(refs)
        rate_txt = f"{rate // 1000}k"
        oneway = {r["name"].rsplit("_", 1)[-1]: r for r in refs}
        relay_rows = ctx.latency_results(
            f"raw_pyzmq_dealer_router_pub_sub_ipc_stamp_to_applied_latency_{rate_txt}_per_s", ceiling[rate],
            unit="us", references=oneway,
            note=f"the ceiling of the row below, same topology and clocking with a raw relay in the middle: "
                 f"{count} single-event frames paced at {rate}/s by a child DEALER -> child ROUTER that stamps "
                 "time.time_ns() per drain after its receive, as the sequencer does, and publishes the drain as "
                 "one message (no checks, no journal) -> decoded (header, xxh3) and folded at a SUB here")
        rows.extend(relay_rows)
        rows.extend(ctx.latency_results(
            f"sequencer_stamp_to_applied_ipc_latency_{rate_txt}_per_s", measured[rate], unit="us",
            references={r["name"].rsplit("_", 1)[-1]: r for r in relay_rows},
            targets={"p50": "<= 35 us", "p99": "<= 150 us"} if rate == 50_000 else None,
            note=f"{count} single-event frames paced at {rate}/s by a child DEALER; record ts_ns "
                 "(sequencer stamp, time.time_ns) to decoded+folded at a SUB here; includes the "
                 "journal append (batch) and the publish"))
    return rows


def _paced_latency(ctx: Any, counts: dict[int, int], relay: bool) -> dict[int, list[np.ndarray]]:
    """Per rate, the stamp-to-applied samples of ``ctx.repeats`` paced runs (after warm-up)."""
    pipe = _Pipeline(ctx.tmpdir, relay=relay)
    try:
        out = {}
        for rate, count in counts.items():
            for _ in range(ctx.warmup):
                pipe.paced(min(count, 2_000), rate)
            out[rate] = [pipe.paced(count, rate) for _ in range(ctx.repeats)]
        return out
    finally:
        pipe.close()


if __name__ == "__main__":
    if sys.argv[1] == "load":
        _child_load(sys.argv[2])
    elif sys.argv[1] == "router":
        _child_router(sys.argv[2])
    elif sys.argv[1] == "relay":
        _child_relay(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(f"unknown child mode {sys.argv[1]!r}")

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

The child processes are :mod:`benchmarks._pipeline_peers`.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from benchmarks._children import Proc, start_sequencer
from benchmarks._pipeline_peers import ingest_frames
from sequencer.protocol import HEADER_SIZE, RECORD_DTYPE, decode_frame, decode_header, frame_checksum

__all__ = ["run"]

Row = dict[str, Any]


# ---------------------------------------------------------------------------- parent side
class _Pipeline:
    """Sequencer (or, with ``relay``, the raw relay child) + load generator + SUB here."""

    def __init__(self, tmpdir: Path, relay: bool = False) -> None:
        self.sockdir = Path(tempfile.mkdtemp(prefix="sqbp-"))
        self.eps = {n: f"ipc://{self.sockdir}/{n}" for n in ("ingest", "publish", "hwm", "replay")}
        self.relay = relay
        self.zctx = zmq.Context()
        if relay:
            self.seq = Proc(["-m", "benchmarks._pipeline_peers", "relay", self.eps["ingest"], self.eps["publish"]])
        else:
            self.seq = start_sequencer(tmpdir / f"journal-{time.monotonic_ns()}", self.eps, self.zctx)
        self.sub = self.zctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.RCVHWM, 0)
        self.sub.setsockopt(zmq.RCVTIMEO, 10_000)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(self.eps["publish"])
        self.load: Proc | None = None
        if relay:
            time.sleep(1.0)  # the relay has no status socket to ask: let it start and bind
        self.load = Proc(["-m", "benchmarks._pipeline_peers", "load", self.eps["ingest"]],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.hwm = 0

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
        recv = self.sub.recv
        while self.hwm < want:
            # Blocking in recv (RCVTIMEO) rather than poll then recv: one mailbox wait per
            # frame instead of zmq_poll's checks before and after blocking.
            try:
                buf = recv()
            except zmq.Again:
                raise RuntimeError(f"subscriber stalled at seq {self.hwm} of {want}") from None
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
    router = Proc(["-m", "benchmarks._pipeline_peers", "router", ep])
    zctx = zmq.Context()
    dealer = zctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.SNDHWM, 0)
    dealer.setsockopt(zmq.RCVHWM, 0)
    dealer.connect(ep)
    data = ingest_frames(1, 1, messages, batch)
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

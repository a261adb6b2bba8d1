"""Ceilings: raw references measured in the same run as the area benchmarks.

Each function measures one reference and returns result rows (the harness schema) named by
topology; area modules call them to get a reference right beside their own measurement::

    from benchmarks import bench_ceilings as ceilings
    ref = ceilings.raw_write_throughput(ctx, records_per_write=512, durability="none")
    rows.append(ctx.result("journal_append_batch512_none", stats, "records/s",
                           higher_is_better=True, reference=ref, target=">= 5M records/s"))

Results are cached in ``ctx.cache`` per parameter set, so one run measures each reference
once (pass ``fresh=True`` to measure again). Sizes follow ``ctx.quick``. Byte sizes are
those of the stream protocol: a frame is a 32-byte header plus 128-byte records, and rates
count records (one record is one event).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from sequencer.protocol import HEADER_SIZE, RECORD_SIZE

__all__ = [
    "run",
    "timer_overhead",
    "zmq_pubsub_throughput",
    "zmq_oneway_latency",
    "zmq_ping_latency",
    "raw_write_throughput",
    "raw_fromfile_throughput",
    "python_4limit_check_latency",
    "python_4limit_check",
    "fold_floor_throughput",
    "frame_bytes",
]

Row = dict[str, Any]
_DURABILITY = ("none", "batch", "always")


def frame_bytes(records: int) -> int:
    """Bytes of one frame of ``records`` records (header included)."""
    return HEADER_SIZE + records * RECORD_SIZE


def _cached(ctx: Any, key: tuple, fresh: bool, make: Callable[[], Any]) -> Any:
    store = ctx.cache.setdefault("ceilings", {})
    if fresh or key not in store:
        store[key] = make()
    return store[key]


def timer_overhead(ctx: Any) -> Row:
    """The cost of one ``perf_counter_ns()`` pair as per-call latency samples pay it."""
    return ctx.result(
        "timer_overhead_perf_counter_ns_pair", ctx.timer_overhead_ns(), "ns", higher_is_better=False,
        note="median of back-to-back pairs; included in every per-call latency sample",
    )


def zmq_pubsub_throughput(ctx: Any, records_per_msg: int = 1, *, messages: int | None = None,
                          fresh: bool = False) -> Row:
    """Raw pyzmq PUB (child process) -> SUB (this process) over ipc, one frame-sized
    message (``frame_bytes(records_per_msg)``) per send, in records/s at the subscriber."""
    size = frame_bytes(records_per_msg)
    if messages is None:
        budget = ctx.size(4 << 20, 80 << 20)  # bytes per run
        messages = max(200, min(ctx.size(20_000, 300_000), budget // size))

    def make() -> Row:
        from benchmarks._zmq_ref import PeerPublisher

        with PeerPublisher(ctx.tmpdir) as peer:
            stats = ctx.measure(lambda: messages * records_per_msg / peer.burst(size, messages))
        return ctx.result(
            f"raw_pyzmq_pubsub_ipc_batch{records_per_msg}_throughput", stats, "records/s",
            higher_is_better=True,
            note=f"{messages} msgs of {size} B per run ({records_per_msg} record(s) each), "
                 "PUB in a child process, SUB recv() here, no HWM drops",
        )

    return _cached(ctx, ("zmq_tput", records_per_msg, messages), fresh, make)


def zmq_oneway_latency(ctx: Any, rate: int = 50_000, *, records_per_msg: int = 1, count: int | None = None,
                       unit: str = "us", fresh: bool = False) -> list[Row]:
    """Raw pyzmq PUB -> SUB one-way latency over ipc at a fixed send rate (p50/p99/p99.9).

    The child stamps ``time.monotonic_ns()`` into each message just before ``send``; this
    process subtracts it right after ``recv`` (one system-wide clock, no clock skew).
    """
    size = frame_bytes(records_per_msg)
    if count is None:
        count = ctx.size(max(1_000, rate // 20), max(20_000, rate // 2))

    def make() -> list[Row]:
        from benchmarks._zmq_ref import PeerPublisher

        with PeerPublisher(ctx.tmpdir) as peer:
            for _ in range(ctx.warmup):
                peer.paced(size, count, rate)
            runs = [peer.paced(size, count, rate) for _ in range(ctx.repeats)]
        rate_txt = f"{rate // 1000}k" if rate % 1000 == 0 else str(rate)
        return ctx.latency_results(
            f"raw_pyzmq_pubsub_ipc_batch{records_per_msg}_oneway_latency_{rate_txt}_per_s", runs, unit=unit,
            note=f"{size} B msgs paced at {rate}/s (spin-wait) by a child PUB; send-to-recv",
        )

    return _cached(ctx, ("zmq_lat", rate, records_per_msg, count, unit), fresh, make)


def zmq_ping_latency(ctx: Any, *, records_per_msg: int = 1, count: int | None = None, unit: str = "us",
                     fresh: bool = False) -> list[Row]:
    """Raw pyzmq PUB -> SUB one-way latency over ipc of one message at a time (p50/p99/p99.9).

    The child sends the next message only after this process acknowledged the previous one,
    so nothing queues: the latency of one message through an idle path, wake-ups included.
    """
    size = frame_bytes(records_per_msg)
    count = count or ctx.size(500, 20_000)

    def make() -> list[Row]:
        from benchmarks._zmq_ref import PeerPublisher

        with PeerPublisher(ctx.tmpdir) as peer:
            for _ in range(ctx.warmup):
                peer.ping(size, count)
            runs = [peer.ping(size, count) for _ in range(ctx.repeats)]
        return ctx.latency_results(
            f"raw_pyzmq_pubsub_ipc_batch{records_per_msg}_ping_latency", runs, unit=unit,
            note=f"{size} B msgs one at a time, child PUB -> SUB here; send-to-recv",
        )

    return _cached(ctx, ("zmq_ping", records_per_msg, count, unit), fresh, make)


def _write_file(path: str, chunk: bytes, writes: int, durability: str, sync_s: float) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write = os.write
        last_sync = time.perf_counter()
        for _ in range(writes):
            write(fd, chunk)
            if durability == "always":
                os.fdatasync(fd)
            elif durability == "batch":
                now = time.perf_counter()
                if now - last_sync >= sync_s:
                    os.fdatasync(fd)
                    last_sync = now
        if durability != "none":
            os.fdatasync(fd)
    finally:
        os.close(fd)


def _chunk(records_per_write: int) -> bytes:
    return np.arange(frame_bytes(records_per_write), dtype=np.uint64).astype(np.uint8).tobytes()


def raw_write_throughput(ctx: Any, records_per_write: int = 512, *, durability: str = "none",
                         total_records: int | None = None, sync_ms: float = 2.0, fresh: bool = False) -> Row:
    """``os.write`` of frame-sized chunks to a new file in ``ctx.tmpdir``, records/s.

    ``durability`` mirrors the journal's: ``none`` never syncs (page cache), ``batch``
    fdatasyncs at most every ``sync_ms``, ``always`` fdatasyncs after every write; the
    synced variants also sync once at the end.
    """
    if durability not in _DURABILITY:
        raise ValueError(f"durability must be one of {_DURABILITY}, got {durability!r}")
    if total_records is None:
        if durability == "always":
            total_records = records_per_write * ctx.size(20, 200)
        else:
            total_records = ctx.size(1 << 17, 1 << 21)
    writes = max(1, total_records // records_per_write)
    chunk = _chunk(records_per_write)
    path = str(ctx.tmpdir / f"raw_write_{records_per_write}_{durability}.bin")

    def one() -> float:
        t0 = time.perf_counter()
        _write_file(path, chunk, writes, durability, sync_ms / 1000)
        elapsed = time.perf_counter() - t0
        os.unlink(path)  # unlinking drops the dirty pages: no write-back leaks into the next run
        return writes * records_per_write / elapsed

    def make() -> Row:
        stats = ctx.measure(one)
        return ctx.result(
            f"raw_os_write_batch{records_per_write}_{durability}_throughput", stats, "records/s",
            higher_is_better=True,
            note=f"{writes} writes of {len(chunk)} B per run into {ctx.tmpdir.parent}",
        )

    return _cached(ctx, ("write", records_per_write, durability, total_records, sync_ms), fresh, make)


def raw_fromfile_throughput(ctx: Any, *, total_records: int | None = None, records_per_frame: int = 512,
                            fresh: bool = False) -> Row:
    """``np.fromfile`` of a whole file of frames (page cache hot), records/s."""
    if total_records is None:
        total_records = ctx.size(1 << 17, 1 << 21)
    frames = max(1, total_records // records_per_frame)
    path = str(ctx.tmpdir / "raw_read.bin")

    def make() -> Row:
        _write_file(path, _chunk(records_per_frame), frames, "none", 0.0)
        expect = frames * frame_bytes(records_per_frame)
        try:
            def one() -> float:
                t0 = time.perf_counter()
                arr = np.fromfile(path, dtype=np.uint8)
                elapsed = time.perf_counter() - t0
                if arr.size != expect:
                    raise RuntimeError(f"read {arr.size} bytes, expected {expect}")
                return frames * records_per_frame / elapsed

            stats = ctx.measure(one)
        finally:
            os.unlink(path)
        return ctx.result(
            f"raw_np_fromfile_read_batch{records_per_frame}_throughput", stats, "records/s", higher_is_better=True,
            note=f"{expect} B file of {records_per_frame}-record frames, page cache hot (warm-up reads it)",
        )

    return _cached(ctx, ("fromfile", total_records, records_per_frame), fresh, make)


def fold_floor_throughput(ctx: Any, records: int | None = None, *, fresh: bool = False) -> Row:
    """The fold floor (:mod:`benchmarks._fold_floor`): net position per (account,
    instrument) from fill records by a numba kernel over strided field views, records/s."""
    from benchmarks._fold_floor import fold_positions, make_fills, positions_array

    n = records or ctx.size(1 << 17, 1 << 22)

    def make() -> Row:
        rec = make_fills(n)
        pos = positions_array(2, 3)
        stats = ctx.measure_rate(lambda: fold_positions(rec, pos), n)
        return ctx.result(
            "numba_position_fold_floor_throughput", stats, "records/s", higher_is_better=True,
            note=f"{n} fill records (128 B each) in one batch; warm-up run includes JIT/cache load",
        )

    return _cached(ctx, ("fold_floor", n), fresh, make)


def python_4limit_check() -> Callable[[int, int, int, int, int], bool]:
    """A minimal pure-Python pre-trade check: max order qty, max order notional, worst-case
    max position (position + same-side open + this order), max open orders; dict state."""
    max_qty = {1: 1_000_000}
    max_notional = {1: 10**15}
    max_pos = {(1, 1): 100_000}
    max_open = {1: 10_000}
    pos = {(1, 1): 500}
    open_buy = {(1, 1): 1_000}
    open_sell = {(1, 1): 800}
    open_orders = {1: 42}

    def check(account: int, instrument: int, side: int, qty: int, price: int) -> bool:
        if qty > max_qty[instrument]:
            return False
        if qty * price > max_notional[account]:
            return False
        key = (account, instrument)
        p = pos.get(key, 0)
        worst = p + open_buy.get(key, 0) + qty if side == 1 else -p + open_sell.get(key, 0) + qty
        if worst > max_pos[key]:
            return False
        return open_orders.get(account, 0) < max_open[account]

    return check


def python_4limit_check_latency(ctx: Any, n: int | None = None, *, unit: str = "us", fresh: bool = False) -> list[Row]:
    """Per-call latency (p50/p99/p99.9) of :func:`python_4limit_check`, the gate's floor,
    plus its mean per call in a plain loop (no timer inside)."""
    n = n or ctx.size(20_000, 200_000)
    check = python_4limit_check()
    args = (1, 1, 1, 10, 6_500_000)
    if not check(*args):
        raise RuntimeError("the floor check refused its benchmark order")

    def loop_ns() -> float:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            check(1, 1, 1, 10, 6_500_000)
        return (time.perf_counter_ns() - t0) / n

    def make() -> list[Row]:
        runs = []
        for i in range(ctx.warmup + ctx.repeats):
            samples = ctx.latency_samples(check, n, args)
            if i >= ctx.warmup:
                runs.append(samples)
        rows = ctx.latency_results("python_4limit_check_latency", runs, unit=unit,
                                   note=f"{n} timed calls per run, all checks pass")
        scale = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}[unit]
        loop = ctx.measure(lambda: loop_ns() / scale)
        rows.append(ctx.result("python_4limit_check_loop_mean", loop, unit, higher_is_better=False,
                               note=f"{n} calls in a plain loop, total / n (no per-call timer)"))
        return rows

    return _cached(ctx, ("floor", n, unit), fresh, make)


def run(ctx: Any) -> list[Row]:
    """Every ceiling at the sizes the area benchmarks compare with."""
    rows: list[Row] = [timer_overhead(ctx)]
    rows.append(zmq_pubsub_throughput(ctx, 1))
    rows.append(zmq_pubsub_throughput(ctx, 64))
    rows.extend(zmq_ping_latency(ctx))
    for rate in (50_000,) if ctx.quick else (10_000, 50_000, 100_000):
        rows.extend(zmq_oneway_latency(ctx, rate))
    for durability in _DURABILITY:
        rows.append(raw_write_throughput(ctx, 512, durability=durability))
    rows.append(raw_fromfile_throughput(ctx))
    rows.append(fold_floor_throughput(ctx))
    rows.extend(python_4limit_check_latency(ctx))
    return rows

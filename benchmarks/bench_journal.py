"""Journal benchmarks: append per durability policy and sequential read as numpy views.

* ``journal_append_batch512_{none,batch,always}``: ``Journal.append`` of stamped frames of
  512 records (64 KiB) into a fresh journal (16 MiB segments, so segments roll), ``close()``
  included (it syncs for ``batch``/``always``). Frames are encoded 8 at a time just before
  they are appended (untimed), so they are cache-hot as in the sequencer, which encodes a
  frame and appends it at once. Reference: raw ``os.write`` of a frame-sized chunk with the
  same sync policy (``bench_ceilings.raw_write_throughput``, same byte count).
* ``journal_append_batch512_none_cold``: the same frames all encoded beforehand (hundreds of
  MB), so every append reads its frame from RAM: memory bandwidth shows.
* ``journal_append_batch1_none``: one record per frame (per-append overhead).
* ``journal_read_batch512_views``: ``JournalReader(dir)`` + ``read()`` of every record with
  checksum verification (so every byte is read), page cache hot; reference ``np.fromfile``
  of a file of the same size. ``..._noverify`` trusts the index and only makes the views.
* ``journal_read_batch1_gather``: reading one-record frames, gathered into chunks.
"""

from __future__ import annotations

import shutil
import time
from typing import Any

import numpy as np

from benchmarks import bench_ceilings as ceilings
from sequencer.journal import Journal, JournalReader
from sequencer.protocol import RECORD_DTYPE, Kind, encode_frame

SEGMENT_BYTES = 16 << 20
EPOCH = 1


def _frames(records_per_frame: int, frames: int, start: int = 0) -> list[bytes]:
    """Stamped frames number ``start .. start + frames - 1`` (seqs from 1 for frame 0)."""
    out = []
    recs = np.zeros(records_per_frame, RECORD_DTYPE)
    recs["epoch"] = EPOCH
    recs["kind"] = Kind.FILL
    recs["qty"] = 3
    for i in range(start, start + frames):
        recs["seq"] = np.arange(i * records_per_frame + 1, (i + 1) * records_per_frame + 1)
        recs["ts_ns"] = recs["seq"] * 1000
        out.append(encode_frame(recs, epoch=EPOCH))
    return out


def _append_hot(path, per: int, frames: int, durability: str) -> float:
    """Seconds spent in append + close, encoding each group of frames (untimed) just before."""
    group = 8
    j = Journal.open(path, durability=durability, segment_bytes=SEGMENT_BYTES)
    spent = 0.0
    try:
        for start in range(0, frames, group):
            batch = _frames(per, min(group, frames - start), start)
            seq = start * per + 1
            t0 = time.perf_counter()
            for frame in batch:
                j.append(frame, seq, per, EPOCH)
                seq += per
            spent += time.perf_counter() - t0
    finally:
        t0 = time.perf_counter()
        j.close()
        spent += time.perf_counter() - t0
    return spent


def _append_all(path, frames: list[bytes], per: int, durability: str) -> None:
    j = Journal.open(path, durability=durability, segment_bytes=SEGMENT_BYTES)
    try:
        append = j.append
        seq = 1
        for frame in frames:
            append(frame, seq, per, EPOCH)
            seq += per
    finally:
        j.close()


def _append_rate(ctx: Any, per: int, durability: str, *, frames: int = 0, cold: list[bytes] | None = None) -> Any:
    root = ctx.tmpdir / f"append_{per}_{durability}"
    count = [0]

    def one() -> float:
        count[0] += 1
        path = root / str(count[0])
        if cold is None:
            n, elapsed = frames * per, _append_hot(path, per, frames, durability)
        else:
            t0 = time.perf_counter()
            _append_all(path, cold, per, durability)
            n, elapsed = len(cold) * per, time.perf_counter() - t0
        shutil.rmtree(path)  # drops the dirty pages: no write-back leaks into the next run
        return n / elapsed

    return ctx.measure(one)


def _read_rate(ctx: Any, path, n: int, verify: bool) -> Any:
    def one() -> float:
        t0 = time.perf_counter()
        got = 0
        with JournalReader(path) as r:
            for chunk in r.read(1, None, verify=verify):
                got += len(chunk)
        elapsed = time.perf_counter() - t0
        if got != n:
            raise RuntimeError(f"read {got} records, expected {n}")
        return n / elapsed

    return ctx.measure(one)


def run(ctx: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    per = 512
    n_frames = ctx.size(1 << 17, 1 << 21) // per
    n = n_frames * per
    where = f"into {ctx.tmpdir.parent}"

    for durability, target in (("none", ">= 5M records/s"), ("batch", None)):
        ref = ceilings.raw_write_throughput(ctx, per, durability=durability, total_records=n)
        stats = _append_rate(ctx, per, durability, frames=n_frames)
        rows.append(ctx.result(
            f"journal_append_batch{per}_{durability}", stats, "records/s", higher_is_better=True,
            reference=ref, target=target,
            note=f"{n_frames} cache-hot frames of {per} records, 16 MiB segments, close() included {where}"
            + ("; group commit every 2 ms" if durability == "batch" else ""),
        ))

    n_always = ctx.size(20, 200)
    ref = ceilings.raw_write_throughput(ctx, per, durability="always", total_records=n_always * per)
    stats = _append_rate(ctx, per, "always", frames=n_always)
    rows.append(ctx.result(
        f"journal_append_batch{per}_always", stats, "records/s", higher_is_better=True, reference=ref,
        note=f"{n_always} frames of {per} records, one fdatasync per append {where}",
    ))

    frames = _frames(per, n_frames)
    ref = ceilings.raw_write_throughput(ctx, per, durability="none", total_records=n)
    rows.append(ctx.result(
        f"journal_append_batch{per}_none_cold", _append_rate(ctx, per, "none", cold=frames), "records/s",
        higher_is_better=True, reference=ref,
        note=f"{n_frames} frames encoded beforehand ({n_frames * len(frames[0]) >> 20} MiB): each append reads its frame from RAM (checksum check + write)",
    ))

    small_total = ctx.size(1 << 13, 1 << 17)
    small = _frames(1, small_total)
    ref = ceilings.raw_write_throughput(ctx, 1, durability="none", total_records=small_total)
    rows.append(ctx.result(
        "journal_append_batch1_none", _append_rate(ctx, 1, "none", cold=small), "records/s",
        higher_is_better=True, reference=ref,
        note=f"{small_total} one-record frames (per-append cost: checks, checksum, write) {where}",
    ))

    path = ctx.tmpdir / "read512"
    _append_all(path, frames, per, "none")
    del frames
    ref = ceilings.raw_fromfile_throughput(ctx, total_records=n, records_per_frame=per)
    rows.append(ctx.result(
        f"journal_read_batch{per}_views_verified", _read_rate(ctx, path, n, True), "records/s",
        higher_is_better=True, reference=ref, target=">= 20M records/s",
        note=f"{n} records: JournalReader open + read() (the default, verify=True: every frame's checksum, so every byte is read), page cache hot",
    ))
    rows.append(ctx.result(
        f"journal_read_batch{per}_views", _read_rate(ctx, path, n, False), "records/s",
        higher_is_better=True, reference=ref, target=">= 20M records/s",
        note="open + read(verify=False): zero-copy views located by the index; record bytes not touched",
    ))
    shutil.rmtree(path)

    path = ctx.tmpdir / "read1"
    _append_all(path, small, 1, "none")
    ref = ceilings.raw_fromfile_throughput(ctx, total_records=small_total, records_per_frame=1)
    rows.append(ctx.result(
        "journal_read_batch1_gather", _read_rate(ctx, path, small_total, True), "records/s",
        higher_is_better=True, reference=ref,
        note=f"{small_total} one-record frames, verified, gathered into chunks of up to 4096 records",
    ))
    shutil.rmtree(path)
    return rows

"""Sequencer CPU per ingest frame, by stage, in one process (a diagnosis tool, not a row).

A :class:`~sequencer.service.Sequencer` runs in this process on ``ipc://`` sockets in a temp
dir (durability ``batch``); a DEALER here queues ``K`` pre-encoded ingest frames, waits until
the ROUTER holds them, then times one ``_drain_ingest`` with ``time.thread_time_ns`` (the
main thread's CPU only: zmq's I/O thread and the journal's sync thread are not counted).
Stages are timed by wrapping the service's stage functions with ``perf_counter_ns``.

    python -m benchmarks.seq_cpu [--batch 1] [--drains 1,4,16,64,256] [--rounds 50]
"""

from __future__ import annotations

import argparse

import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import msgspec
import zmq

import sequencer.service as service
from sequencer.config import SequencerConfig

__all__ = ["measure"]

try:  # the ingest drain's own module, where it has one
    import sequencer.service_ingest as _ingest_module
except ImportError:
    _ingest_module = service
_STAGES = tuple((name, _ingest_module, attr) for name, attr in (
    ("validate", "validate_drain"), ("gather", "gather_frames"), ("runs", "frame_runs"), ("stamp", "stamp_frame"), ("zmq_send", "_base_send"),
    ("reply_encode", "_reply_encoder"), ("acks_encode", "encode_acks"),
) if hasattr(_ingest_module, attr))
try:  # the one-frame drain's module, where it has one
    import sequencer.service_one as _one_module

    _STAGES += tuple((name, _one_module, attr) for name, attr in (
        ("validate_stamp", "validate_stamp_one"), ("zmq_send", "_base_send"), ("reply_encode", "_reply_encoder")))
except ImportError:
    pass


def _frames(producer: int, first: int, n: int, batch: int) -> list[bytes]:
    from benchmarks._pipeline_peers import ingest_frames

    return ingest_frames(producer, first, n, batch)


def _wrap(totals: dict[str, int], name: str, fn):
    clock = time.perf_counter_ns

    def timed(*a, **kw):
        t0 = clock()
        try:
            return fn(*a, **kw)
        finally:
            totals[name] += clock() - t0

    return timed


def measure(drain: int, batch: int, rounds: int) -> dict[str, float]:
    """ns of main-thread CPU per ingest frame (``total``) and wall ns per frame by stage."""
    tmp = Path(tempfile.mkdtemp(prefix="sqcpu-"))
    eps = {n: f"ipc://{tmp}/{n}" for n in ("ingest", "publish", "hwm", "replay")}
    cfg = SequencerConfig(ingest=eps["ingest"], publish=eps["publish"], hwm=eps["hwm"], replay=eps["replay"],
                          journal=str(tmp / "j"), durability="batch")
    ctx = zmq.Context()
    seq = service.Sequencer(cfg, context=ctx)
    totals: dict[str, int] = defaultdict(int)
    saved = []
    try:
        seq.start()
        for name, mod, attr in _STAGES:
            saved.append((mod, attr, getattr(mod, attr)))
            fn = getattr(mod, attr)
            if attr == "_reply_encoder":
                fn = type("_Enc", (), {"encode": staticmethod(_wrap(totals, name, fn.encode))})()
            else:
                fn = _wrap(totals, name, fn)
            setattr(mod, attr, fn)
        journal = seq.journal
        journal.append_stamped = _wrap(totals, "journal", journal.append_stamped)
        if seq._hwm_writer is not None:
            seq._hwm_writer.write = _wrap(totals, "hwm_file", seq._hwm_writer.write)
        for stage in ("_receive", "_sort", "_process", "_commit", "_acknowledge", "_commit_batch", "_commit_frames",
                      "_stamp_journal_publish", "_process_frames", "_drain_one", "_journal_publish"):
            if hasattr(seq, stage):
                setattr(seq, stage, _wrap(totals, stage.strip("_"), getattr(seq, stage)))
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.SNDHWM, 0)
        dealer.setsockopt(zmq.RCVHWM, 0)
        dealer.connect(eps["ingest"])
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.setsockopt(zmq.RCVHWM, 0)
        sub.connect(eps["publish"])
        time.sleep(0.2)
        # Everything is queued at the ROUTER first, then drained back to back, ``drain``
        # frames per call (``max_batch_records`` caps a drain), as under a sustained load.
        seq.config = msgspec.structs.replace(cfg, max_batch_records=drain * batch)
        warm = 5
        data = _frames(7, 1, drain * (rounds + warm), batch)
        for d in data:
            dealer.send(d)
        time.sleep(0.3 + len(data) * 5e-6)
        for _ in range(warm):
            seq._drain_ingest()
        totals.clear()
        t0, w0 = time.thread_time_ns(), time.perf_counter_ns()
        for _ in range(rounds):
            seq._drain_ingest()
        cpu = time.thread_time_ns() - t0
        wall = time.perf_counter_ns() - w0
        frames = rounds * drain
        out = {"total_cpu": cpu / frames, "total_wall": wall / frames}
        out.update({k: v / frames for k, v in totals.items()})
        if seq.hwm != len(data) * batch:
            raise RuntimeError(f"stamped {seq.hwm} of {len(data) * batch} records")
        return out
    finally:
        for mod, attr, fn in saved:
            setattr(mod, attr, fn)
        seq._shutdown()
        ctx.destroy(linger=0)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1, help="records per ingest frame")
    ap.add_argument("--drains", default="1,4,16,64,256", help="frames per drain, comma separated")
    ap.add_argument("--rounds", type=int, default=50)
    args = ap.parse_args()
    for k in (int(x) for x in args.drains.split(",")):
        best = None
        for _ in range(3):
            m = measure(k, args.batch, args.rounds)
            if best is None or m["total_cpu"] < best["total_cpu"]:
                best = m
        parts = " ".join(f"{n}={v / 1000:.2f}" for n, v in sorted(best.items()) if not n.startswith("total"))
        print(f"frames/drain={k:5d} batch={args.batch}: cpu/frame={best['total_cpu'] / 1000:.2f} us "
              f"wall/frame={best['total_wall'] / 1000:.2f} us | stage wall us/frame: {parts}")


if __name__ == "__main__":
    main()

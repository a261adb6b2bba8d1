"""The child processes of ``bench_pipeline``: the load generator, a raw ROUTER and the raw relay.

``python -m benchmarks._pipeline_peers load EP`` / ``router EP`` / ``relay EP EP``; see each
function. ``ingest_frames`` builds the pre-encoded ingest frames they send.
"""

from __future__ import annotations

import os
import signal
import struct
import sys
import time

import msgspec
import numpy as np
import xxhash
import zmq

from sequencer.protocol import HEADER_SIZE, MAGIC, PROTOCOL_VERSION, RECORD_DTYPE, FrameType, Kind

__all__ = ["ingest_frames", "HDR"]

HDR = struct.Struct("<4sHBBQIIq")


def ingest_frames(producer: int, first_pseq: int, frames: int, batch: int) -> list[bytes]:
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
        HDR.pack_into(buf, 0, MAGIC, PROTOCOL_VERSION, int(FrameType.INGEST), 0, 0, 0, batch, 0)
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
        data = ingest_frames(producer, pseq, frames, batch)
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
            parts[0] = HDR.pack(MAGIC, PROTOCOL_VERSION, int(FrameType.STAMPED), 0, time.time_ns(), 1, nrec, seq)
            seq += nrec
            psend(b"".join(parts))
            for ident, n in counts.items():
                send(ident, sndmore)
                send((b"\xdc" + n.to_bytes(2, "big") if n > 15 else bytes([0x90 | n])) + ack * n)
    finally:
        router.close(linger=0)
        pub.close(linger=0)
        ctx.term()


if __name__ == "__main__":
    if sys.argv[1] == "load":
        _child_load(sys.argv[2])
    elif sys.argv[1] == "router":
        _child_router(sys.argv[2])
    elif sys.argv[1] == "relay":
        _child_relay(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(f"unknown child mode {sys.argv[1]!r}")

"""The publishing side of the raw pyzmq ceilings, run as a child process.

``python -m benchmarks._zmq_peer DATA_EP CTL_EP``: connects a PUB socket to ``DATA_EP`` and a
PAIR socket to ``CTL_EP`` (both bound by the parent). It publishes one-byte hello messages
until the parent confirms on the control socket that it receives them (PUB/SUB drops
everything sent before the subscription is in place), sends a one-byte sync marker after
which every message is data, then obeys JSON commands on the control socket:

* ``{"op": "burst", "size": N, "count": C}``: send C messages of N bytes as fast as possible;
* ``{"op": "paced", "size": N, "count": C, "rate": R}``: send C messages of N bytes at R per
  second (spin-wait pacing that yields the CPU), each carrying its send time (``time.monotonic_ns()``, 8 bytes
  little-endian at offset 0) so the parent computes one-way latency;
* ``{"op": "ping", "size": N, "count": C}``: send C timestamped messages one at a time,
  each only after the parent acknowledged the previous one on the control socket (no
  backlog: the latency of one message through an idle path);
* ``{"op": "quit"}``.

It answers ``b"done"`` after each burst, paced or ping run and exits by itself when the parent is
silent for 60 s.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time

import zmq

HELLO = b"H"
SYNC = b"S"
_PARENT_SILENCE_MS = 60_000
_HANDSHAKE_S = 30.0


def _burst(pub: zmq.Socket, size: int, count: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    send = pub.send
    for _ in range(count):
        send(data)


def _paced(pub: zmq.Socket, size: int, count: int, rate: float) -> None:
    buf = bytearray(size)
    interval = 1e9 / rate
    clock = time.monotonic_ns
    pack = struct.pack_into
    send = pub.send
    start = clock() + 1_000_000
    for i in range(count):
        due = start + int(i * interval)
        now = clock()
        while now < due:
            # Yield while waiting: on a 2-core machine a pure spin starves this process's
            # own ZeroMQ I/O thread and turns microseconds into milliseconds.
            os.sched_yield()
            now = clock()
        pack("<q", buf, 0, now)
        send(buf)


def _ping(pub: zmq.Socket, ctl: zmq.Socket, size: int, count: int) -> bool:
    buf = bytearray(size)
    clock = time.monotonic_ns
    for _ in range(count):
        struct.pack_into("<q", buf, 0, clock())
        pub.send(buf)
        if not ctl.poll(_PARENT_SILENCE_MS):
            return False
        ctl.recv()
    return True


def main(argv: list[str]) -> int:
    """Run the peer; returns its exit status."""
    data_ep, ctl_ep = argv
    zctx = zmq.Context()
    pub = zctx.socket(zmq.PUB)
    ctl = zctx.socket(zmq.PAIR)
    try:
        pub.setsockopt(zmq.SNDHWM, 0)  # never drop: the parent counts every message
        pub.setsockopt(zmq.LINGER, 0)
        ctl.setsockopt(zmq.LINGER, 0)
        pub.connect(data_ep)
        ctl.connect(ctl_ep)
        deadline = time.monotonic() + _HANDSHAKE_S
        while not ctl.poll(1):
            if time.monotonic() > deadline:
                return 3
            pub.send(HELLO)
        ctl.recv()
        pub.send(SYNC)
        while True:
            if not ctl.poll(_PARENT_SILENCE_MS):
                return 4
            cmd = json.loads(ctl.recv())
            if cmd["op"] == "quit":
                return 0
            if cmd["op"] == "burst":
                _burst(pub, int(cmd["size"]), int(cmd["count"]))
            elif cmd["op"] == "paced":
                _paced(pub, int(cmd["size"]), int(cmd["count"]), float(cmd["rate"]))
            elif cmd["op"] == "ping":
                if not _ping(pub, ctl, int(cmd["size"]), int(cmd["count"])):
                    return 4
            else:
                return 5
            ctl.send(b"done")
    finally:
        pub.close()
        ctl.close()
        zctx.term()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

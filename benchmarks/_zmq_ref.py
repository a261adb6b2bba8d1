"""Parent side of the raw pyzmq ceilings: a SUB socket fed by a child PUB process.

:class:`PeerPublisher` starts ``python -m benchmarks._zmq_peer`` (see that module for the
protocol), binds SUB and PAIR sockets on ``ipc://`` paths, and always stops the child on
exit (quit, then SIGTERM, then SIGKILL), only that child.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

import numpy as np
import zmq

from benchmarks._zmq_peer import HELLO, SYNC

__all__ = ["PeerPublisher", "PeerError"]

_IPC_PATH_MAX = 100  # sun_path is 108 bytes on Linux
_RECV_TIMEOUT_MS = 10_000


class PeerError(RuntimeError):
    """The child publisher did not start, lost messages or stopped answering."""


class PeerPublisher:
    """A child process publishing raw messages to this process over ``ipc://``."""

    def __init__(self, workdir: Path) -> None:
        self._own_dir: str | None = None
        base = str(workdir)
        tag = uuid.uuid4().hex[:8]
        if len(base) + len(tag) + 8 > _IPC_PATH_MAX:
            self._own_dir = tempfile.mkdtemp(prefix="sqb-")
            base = self._own_dir
        self._paths = [Path(base, f"d{tag}.ipc"), Path(base, f"c{tag}.ipc")]
        self.data_ep = f"ipc://{self._paths[0]}"
        self.ctl_ep = f"ipc://{self._paths[1]}"
        self._zctx = zmq.Context()
        self.sub = self._zctx.socket(zmq.SUB)
        self.ctl = self._zctx.socket(zmq.PAIR)
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PeerPublisher:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _start(self) -> None:
        for s in (self.sub, self.ctl):
            s.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.RCVHWM, 0)
        self.sub.setsockopt(zmq.RCVTIMEO, _RECV_TIMEOUT_MS)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.ctl.setsockopt(zmq.RCVTIMEO, _RECV_TIMEOUT_MS)
        self.sub.bind(self.data_ep)
        self.ctl.bind(self.ctl_ep)
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._zmq_peer", self.data_ep, self.ctl_ep], env=env,
        )
        try:
            first = self.sub.recv()
        except zmq.Again:
            raise PeerError(f"the publisher child did not connect within {_RECV_TIMEOUT_MS} ms") from None
        if first != HELLO:
            raise PeerError(f"unexpected first message from the publisher child: {first[:16]!r}")
        self.ctl.send(b"sync")
        # Hellos still in flight precede the sync marker on the same connection (FIFO).
        deadline = time.monotonic() + _RECV_TIMEOUT_MS / 1000
        while self._recv() != SYNC:
            if time.monotonic() > deadline:
                raise PeerError("no sync marker from the publisher child")

    def _recv(self) -> bytes:
        try:
            return self.sub.recv()
        except zmq.Again:
            code = None if self.proc is None else self.proc.poll()
            raise PeerError(f"publisher child sent nothing for {_RECV_TIMEOUT_MS} ms (exit status {code})") from None

    def _done(self) -> None:
        try:
            reply = self.ctl.recv()
        except zmq.Again:
            raise PeerError("publisher child did not report done") from None
        if reply != b"done":
            raise PeerError(f"unexpected reply from the publisher child: {reply!r}")

    def burst(self, size: int, count: int) -> float:
        """Seconds from asking for ``count`` messages of ``size`` bytes to receiving the last."""
        recv = self.sub.recv
        self.ctl.send(json.dumps({"op": "burst", "size": size, "count": count}).encode())
        t0 = time.perf_counter()
        try:
            for _ in range(count):
                msg = recv()
        except zmq.Again:
            raise PeerError(f"messages lost or publisher child stalled during a burst of {count}") from None
        elapsed = time.perf_counter() - t0
        self._done()
        if len(msg) != size:
            raise PeerError(f"received {len(msg)} bytes, expected {size}")
        return elapsed

    def paced(self, size: int, count: int, rate: float) -> np.ndarray:
        """One-way latencies (ns) of ``count`` messages of ``size`` bytes sent at ``rate``/s."""
        if size < 8:
            raise ValueError("paced messages carry an 8-byte send time; size must be >= 8")
        out = np.empty(count, dtype=np.int64)
        recv = self.sub.recv
        clock = time.monotonic_ns
        self.ctl.send(json.dumps({"op": "paced", "size": size, "count": count, "rate": rate}).encode())
        try:
            for i in range(count):
                msg = recv()
                out[i] = clock() - int.from_bytes(msg[:8], "little")
        except zmq.Again:
            raise PeerError(f"messages lost or publisher child stalled during a paced run of {count}") from None
        self._done()
        return out

    def ping(self, size: int, count: int) -> np.ndarray:
        """One-way latencies (ns) of ``count`` messages sent one at a time (idle path)."""
        if size < 8:
            raise ValueError("ping messages carry an 8-byte send time; size must be >= 8")
        out = np.empty(count, dtype=np.int64)
        recv = self.sub.recv
        clock = time.monotonic_ns
        self.ctl.send(json.dumps({"op": "ping", "size": size, "count": count}).encode())
        try:
            for i in range(count):
                msg = recv()
                out[i] = clock() - int.from_bytes(msg[:8], "little")
                self.ctl.send(b"n")
        except zmq.Again:
            raise PeerError(f"publisher child stalled during a ping run of {count}") from None
        self._done()
        return out

    def close(self) -> None:
        """Stop the child (only it) and close the sockets; safe to call twice."""
        proc, self.proc = self.proc, None
        try:
            if proc is not None:
                if proc.poll() is None:
                    try:
                        self.ctl.send(json.dumps({"op": "quit"}).encode(), zmq.NOBLOCK)
                    except zmq.ZMQError:
                        pass
                    try:
                        proc.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        proc.terminate()
                        try:
                            proc.wait(timeout=2)
                        except subprocess.TimeoutExpired:
                            proc.kill()
                            proc.wait(timeout=5)
        finally:
            self.sub.close()
            self.ctl.close()
            self._zctx.term()
            for path in self._paths:
                path.unlink(missing_ok=True)
            if self._own_dir is not None:
                shutil.rmtree(self._own_dir, ignore_errors=True)
                self._own_dir = None

"""Where the demo's processes meet: endpoints under one run directory, and a status client."""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
import zmq

from sequencer.messages import STATUS_REPLY, StatusReply, StatusRequest, decode_status, encode

__all__ = ["Endpoints", "StatusClient"]

# sun_path holds 108 bytes; keep room for the longest socket name below.
_MAX_IPC_DIR = 90


@dataclass(frozen=True)
class Endpoints:
    """Every socket of one demo run (``ipc://`` paths in ``ipc_dir``)."""

    ipc_dir: Path
    ingest: str
    publish: str
    hwm: str
    replay: str
    gate_publish: str
    gate_replay: str
    stats: str
    hwm_file: Path
    owns_ipc_dir: bool

    @classmethod
    def under(cls, out_dir: Path) -> "Endpoints":
        """Endpoints in ``out_dir/ipc``, or in a fresh /tmp directory when that path is too long."""
        ipc = (out_dir / "ipc").resolve()
        owns = False
        if len(str(ipc)) > _MAX_IPC_DIR:
            ipc = Path(tempfile.mkdtemp(prefix="seqrisk-demo-"))
            owns = True
        else:
            if ipc.exists():
                shutil.rmtree(ipc)
            ipc.mkdir(parents=True)
        ep = {n: f"ipc://{ipc / n}.sock" for n in ("ingest", "publish", "hwm", "replay", "gate_publish", "gate_replay", "stats")}
        return cls(ipc_dir=ipc, hwm_file=out_dir.resolve() / "hwm.shm", owns_ipc_dir=owns, **ep)

    def cleanup(self) -> None:
        """Remove the socket files (and the /tmp directory if this run made it)."""
        if self.owns_ipc_dir:
            shutil.rmtree(self.ipc_dir, ignore_errors=True)
        else:
            for sock in self.ipc_dir.glob("*.sock"):
                sock.unlink(missing_ok=True)


class StatusClient:
    """Asks the sequencer for its status without ever blocking the caller.

    ``poll()`` returns a fresh :class:`StatusReply` when one arrived. A request unanswered
    for ``timeout_s`` marks the sequencer as unreachable and the socket is recreated, so a
    reply from before a restart is never mistaken for a current one.
    """

    def __init__(self, replay: str, every_s: float = 0.5, timeout_s: float = 1.0, ctx: zmq.Context | None = None) -> None:
        self.replay = replay
        self.every_s = every_s
        self.timeout_s = timeout_s
        self._ctx = ctx or zmq.Context.instance()
        self._sock: zmq.Socket | None = None
        self._sent_at = 0.0
        self._next = 0.0
        self.reachable = False

    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            self._sock = self._ctx.socket(zmq.DEALER)
            self._sock.setsockopt(zmq.LINGER, 0)
            self._sock.connect(self.replay)
        return self._sock

    def poll(self) -> StatusReply | None:
        """Send a request when due, return a reply if one is pending."""
        now = time.monotonic()
        sock = self._socket()
        reply = None
        while True:
            try:
                parts = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            if len(parts) == 2 and parts[0] == STATUS_REPLY:
                try:
                    reply = decode_status(parts[1])
                except (msgspec.DecodeError, msgspec.ValidationError):
                    continue
        if reply is not None:
            self.reachable = True
            self._sent_at = 0.0
        elif self._sent_at and now - self._sent_at > self.timeout_s:
            self.reachable = False
            self.close()
            self._sent_at = 0.0
            sock = self._socket()
        if not self._sent_at and now >= self._next:
            try:
                sock.send(encode(StatusRequest()), zmq.NOBLOCK)
                self._sent_at = now
                self._next = now + self.every_s
            except zmq.Again:
                pass
        return reply

    def wait(self, timeout_s: float) -> StatusReply | None:
        """Poll until a reply arrives or ``timeout_s`` passes (bounded)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.poll()
            if got is not None:
                return got
            time.sleep(0.02)
        return None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None

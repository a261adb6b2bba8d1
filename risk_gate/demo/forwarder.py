"""The gate's data path: a forwarder between the sequencer and the strategy's gate.

Two paths go through it, so that stopping it stalls everything the gate could catch up with:

* publish: SUB (connected to the sequencer's publish socket) -> PUB (bound for the gate);
* replay: ROUTER (bound for the gate) -> one DEALER per gate-side client, connected to the
  sequencer's replay socket (the sequencer expects ``[identity, request]``, so each client
  gets its own upstream socket rather than an extra envelope frame).

HWM heartbeats do **not** go through it: the gate connects to the sequencer's HWM socket
directly. The orchestrator stalls the data path by SIGSTOPping this process and lets it go
with SIGCONT; frames dropped meanwhile are recovered by the gate through replay.

``python -m risk_gate.demo.forwarder --upstream EP --downstream EP --replay-upstream EP --replay-downstream EP``
"""

from __future__ import annotations

import argparse
import sys

import zmq

from risk_gate.demo._child import StopFlag

__all__ = ["Forwarder", "main"]

_MAX_CLIENTS = 64


class Forwarder:
    """The sockets and one pump step (``step(timeout_ms)``); single-threaded."""

    def __init__(self, upstream: str, downstream: str, replay_upstream: str | None, replay_downstream: str | None,
                 ctx: zmq.Context | None = None) -> None:
        self.ctx = ctx or zmq.Context.instance()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.RCVHWM, 10_000)
        self.sub.connect(upstream)
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.setsockopt(zmq.SNDHWM, 10_000)
        self.pub.bind(downstream)
        self.replay_upstream = replay_upstream
        self.front = None
        if replay_upstream and replay_downstream:
            self.front = self.ctx.socket(zmq.ROUTER)
            self.front.setsockopt(zmq.LINGER, 0)
            self.front.bind(replay_downstream)
        self.backs: dict[bytes, zmq.Socket] = {}
        self.poller = zmq.Poller()
        self.poller.register(self.sub, zmq.POLLIN)
        if self.front is not None:
            self.poller.register(self.front, zmq.POLLIN)
        self.forwarded = 0
        self.requests = 0
        self.replies = 0

    def _back(self, client: bytes) -> zmq.Socket:
        sock = self.backs.get(client)
        if sock is None:
            if len(self.backs) >= _MAX_CLIENTS:
                # Clients that went away leave their sockets; drop the oldest.
                old_id, old = next(iter(self.backs.items()))
                self.poller.unregister(old)
                old.close(0)
                del self.backs[old_id]
            sock = self.ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(self.replay_upstream)
            self.backs[client] = sock
            self.poller.register(sock, zmq.POLLIN)
        return sock

    def step(self, timeout_ms: int = 100) -> int:
        """Move what is ready (bounded per socket); returns the messages moved."""
        moved = 0
        ready = dict(self.poller.poll(timeout_ms))
        if self.sub in ready:
            for _ in range(1024):
                try:
                    parts = self.sub.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                self.pub.send_multipart(parts, copy=False)
                self.forwarded += 1
                moved += 1
        if self.front is not None and self.front in ready:
            for _ in range(256):
                try:
                    client, *body = self.front.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._back(client).send_multipart(body)
                self.requests += 1
                moved += 1
        for client, sock in list(self.backs.items()):
            if sock in ready:
                for _ in range(1024):
                    try:
                        reply = sock.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    self.front.send_multipart([client, *reply], copy=False)  # type: ignore[union-attr]
                    self.replies += 1
                    moved += 1
        return moved

    def close(self) -> None:
        for sock in [self.sub, self.pub, self.front, *self.backs.values()]:
            if sock is not None:
                sock.close(0)
        self.backs.clear()


def main(argv: list[str] | None = None) -> int:
    """Forward until SIGTERM/SIGINT (or until the orchestrator is gone)."""
    p = argparse.ArgumentParser(prog="python -m risk_gate.demo.forwarder", description=__doc__)
    p.add_argument("--upstream", required=True, help="sequencer publish endpoint (connect)")
    p.add_argument("--downstream", required=True, help="publish endpoint the gate subscribes to (bind)")
    p.add_argument("--replay-upstream", help="sequencer replay endpoint (connect)")
    p.add_argument("--replay-downstream", help="replay endpoint the gate connects to (bind)")
    args = p.parse_args(argv)
    stop = StopFlag()
    fwd = Forwarder(args.upstream, args.downstream, args.replay_upstream, args.replay_downstream)
    try:
        while not stop.is_set():
            fwd.step(100)
    finally:
        fwd.close()
    print(f"forwarder: {fwd.forwarded} frames, {fwd.requests} replay requests, {fwd.replies} replies", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

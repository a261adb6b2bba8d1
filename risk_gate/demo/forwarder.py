"""A SUB -> PUB forwarder between the sequencer's publish socket and the strategy's gate.

The orchestrator stalls the gate's data path by SIGSTOPping this process (HWM heartbeats
still reach the gate directly) and lets it go with SIGCONT. Frames the sequencer drops
meanwhile are recovered by the gate's subscriber through the replay service.

``python -m risk_gate.demo.forwarder --upstream EP --downstream EP``
"""

from __future__ import annotations

import argparse
import sys

import zmq

from risk_gate.demo._child import StopFlag

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Forward every frame from ``--upstream`` (connect, SUB) to ``--downstream`` (bind, PUB)."""
    p = argparse.ArgumentParser(prog="python -m risk_gate.demo.forwarder", description=__doc__)
    p.add_argument("--upstream", required=True, help="sequencer publish endpoint (connect)")
    p.add_argument("--downstream", required=True, help="endpoint the gate subscribes to (bind)")
    args = p.parse_args(argv)
    stop = StopFlag()
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(args.upstream)
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(args.downstream)
    forwarded = 0
    try:
        while not stop.is_set():
            if not sub.poll(100):
                continue
            for _ in range(1024):
                try:
                    parts = sub.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                pub.send_multipart(parts, copy=False)
                forwarded += 1
    finally:
        sub.close(0)
        pub.close(0)
        ctx.term()
    print(f"forwarder: {forwarded} messages forwarded", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

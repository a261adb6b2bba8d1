"""Child processes the benchmarks start (and stop: only those): a sequencer service, peers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import zmq

__all__ = ["Proc", "start_sequencer"]

_REPO = Path(__file__).resolve().parent.parent


class Proc:
    """A child process we started; ``stop()`` ends only it."""

    def __init__(self, args: list[str], **kw: Any) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO), env.get("PYTHONPATH", "")]))
        self.p = subprocess.Popen([sys.executable, *args], cwd=str(_REPO), env=env, **kw)

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(10)


def start_sequencer(journal: Path, endpoints: dict[str, str], zctx: zmq.Context, timeout_s: float = 60.0) -> Proc:
    """``python -m sequencer.service_cli sequencer`` (durability batch, HWM file ``journal/hwm``)
    on ``endpoints`` (ingest, publish, hwm, replay), once it answers a status request."""
    from sequencer.status import StatusTimeout, request_status

    args = ["-m", "sequencer.service_cli", "--log-level", "WARNING", "sequencer", "--journal", str(journal), "--durability", "batch"]
    for name in ("ingest", "publish", "hwm", "replay"):
        args += [f"--{name}", endpoints[name]]
    proc = Proc(args)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            request_status(endpoints["replay"], 0.5, zctx)
            return proc
        except StatusTimeout:
            if time.monotonic() > deadline or proc.p.poll() is not None:
                proc.stop()
                raise RuntimeError("sequencer did not start") from None

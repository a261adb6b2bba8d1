"""Test helpers shared by every test file: a real sequencer process on ``ipc://`` endpoints.

    from support import running_sequencer   # tests/ is on sys.path under pytest

    def test_x(tmp_path):
        with running_sequencer(tmp_path) as seq:
            prod = Producer(seq.ingest, "p")
            ...

``running_sequencer(tmp_path, **opts)`` starts ``python -m sequencer.service_cli sequencer``
with endpoints derived from ``tmp_path`` (the same tmp_path gives the same endpoints, so a
restarted sequencer is reached by the same clients), waits until it answers a status
request, yields a :class:`SequencerProcess`, and on exit stops that process only (SIGTERM,
then SIGKILL). Options: ``journal`` (directory, default ``tmp_path/"journal"``),
``durability``, ``heartbeat_ms``, ``sync_ms``, ``hwm_file``, ``config`` (path),
``max_batch_records``, ``startup_timeout`` (s, default 60: the first start compiles numba
kernels into the cache), ``extra_args`` (list of more CLI arguments).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import zmq

__all__ = ["SequencerProcess", "running_sequencer", "sequencer_endpoints", "REPO_ROOT"]

REPO_ROOT = Path(__file__).resolve().parent.parent
_OPTION_FLAGS = {
    "durability": "--durability",
    "heartbeat_ms": "--heartbeat-ms",
    "sync_ms": "--sync-ms",
    "hwm_file": "--hwm-file",
    "config": "--config",
    "max_batch_records": "--max-batch-records",
}


def _socket_dir(tmp_path: Path) -> Path:
    # ipc:// paths are limited to ~107 bytes; pytest's tmp_path can be longer, so the
    # sockets live in a short directory named after a hash of tmp_path.
    digest = hashlib.blake2b(str(Path(tmp_path).resolve()).encode(), digest_size=6).hexdigest()
    d = Path(tempfile.gettempdir()) / f"sqr-{digest}"
    d.mkdir(mode=0o700, exist_ok=True)
    return d


def sequencer_endpoints(tmp_path: Path) -> dict[str, str]:
    """The ipc endpoints ``running_sequencer(tmp_path)`` binds (stable per tmp_path)."""
    d = _socket_dir(tmp_path)
    return {name: f"ipc://{d}/{name}" for name in ("ingest", "publish", "hwm", "replay")}


class SequencerProcess:
    """A running sequencer: endpoints, paths and the process handle."""

    def __init__(self, proc: subprocess.Popen, endpoints: dict[str, str], journal: Path,
                 hwm_file: Path | None, log_path: Path) -> None:
        self.proc = proc
        self.ingest = endpoints["ingest"]
        self.publish = endpoints["publish"]
        self.hwm = endpoints["hwm"]
        self.replay = endpoints["replay"]
        self.endpoints = endpoints
        self.journal = journal
        self.hwm_file = hwm_file
        self.log_path = log_path

    def log_text(self) -> str:
        """What the process wrote to stderr so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def status(self, timeout_s: float = 5.0):
        """The sequencer's :class:`~sequencer.messages.StatusReply`."""
        from sequencer.status import request_status

        return request_status(self.replay, timeout_s)

    def kill(self) -> None:
        """SIGKILL the process (a crash) and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM, wait; SIGKILL if it does not exit in time. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode


def _wait_serving(sp: SequencerProcess, timeout_s: float) -> None:
    from sequencer.status import StatusTimeout

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if sp.proc.poll() is not None:
            raise RuntimeError(f"sequencer exited with {sp.proc.returncode} before serving:\n{sp.log_text()}")
        try:
            sp.status(timeout_s=0.5)
            return
        except StatusTimeout:
            continue
    raise RuntimeError(f"sequencer did not answer status within {timeout_s} s:\n{sp.log_text()}")


@contextlib.contextmanager
def running_sequencer(tmp_path: Path, **opts: object) -> Iterator[SequencerProcess]:
    """Start a sequencer subprocess on ipc endpoints under tmp_path; stop it on exit."""
    tmp_path = Path(tmp_path)
    startup_timeout = float(opts.pop("startup_timeout", 60.0))  # type: ignore[arg-type]
    extra_args = [str(a) for a in opts.pop("extra_args", [])]  # type: ignore[union-attr]
    journal = Path(opts.pop("journal", tmp_path / "journal"))  # type: ignore[arg-type]
    endpoints = sequencer_endpoints(tmp_path)
    args = [sys.executable, "-m", "sequencer.service_cli", "sequencer", "--journal", str(journal)]
    for name, ep in endpoints.items():
        args += [f"--{name}", ep]
    for key, value in opts.items():
        if key not in _OPTION_FLAGS:
            raise TypeError(f"running_sequencer: unknown option {key!r}")
        args += [_OPTION_FLAGS[key], str(value)]
    hwm_opt = opts.get("hwm_file")
    if not hwm_opt:
        hwm_file: Path | None = journal / "hwm"
    else:
        hwm_file = None if str(hwm_opt).lower() in ("off", "none") else Path(str(hwm_opt))
    log_dir = tmp_path / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"sequencer-{time.monotonic_ns()}.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args + extra_args, stdout=log, stderr=subprocess.STDOUT, cwd=str(REPO_ROOT), env=env)
    sp = SequencerProcess(proc, endpoints, journal, hwm_file, log_path)
    try:
        _wait_serving(sp, startup_timeout)
        yield sp
    finally:
        sp.stop()


def recv_frames(sub: zmq.Socket, want_last_seq: int, timeout_s: float = 10.0) -> list:
    """Collect stamped record arrays from a SUB socket until seq ``want_last_seq`` arrived."""
    from sequencer.protocol import decode_frame

    out = []
    deadline = time.monotonic() + timeout_s
    last = 0
    while last < want_last_seq and time.monotonic() < deadline:
        if sub.poll(100, zmq.POLLIN):
            _, recs = decode_frame(sub.recv())
            out.append(recs)
            last = int(recs["seq"][-1])
    return out


def prices(n: int, start: int = 100, instrument: int = 1) -> np.ndarray:
    """``n`` unstamped reference-price records for ``instrument``, prices ``start``, ``start + 1``, ..."""
    from sequencer.protocol import RECORD_DTYPE, Kind

    recs = np.zeros(n, RECORD_DTYPE)
    recs["kind"] = Kind.PRICE
    recs["instrument"] = instrument
    recs["price"] = np.arange(start, start + n)
    return recs

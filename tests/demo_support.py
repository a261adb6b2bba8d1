"""Helpers of the demo tests: run ``seqrisk demo`` as a subprocess, read its PIDs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from risk_gate.demo.procs import wait_all_gone

__all__ = ["start_demo", "read_pids", "wait_for_file_text", "wait_for_output", "stop_demo", "assert_all_gone"]

ROOT = Path(__file__).resolve().parent.parent


def start_demo(out: Path, *args: str) -> subprocess.Popen[str]:
    """``seqrisk demo --no-ui --out OUT args`` in its own process group, output captured."""
    cmd = [sys.executable, "-m", "sequencer.cli", "demo", "--no-ui", "--out", str(out), *args]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def read_pids(out: Path) -> dict[str, list[int]]:
    """``name -> [pid, ...]`` of every process the demo started (restarts append)."""
    pids: dict[str, list[int]] = {}
    path = out / "pids.txt"
    if path.exists():
        for line in path.read_text().splitlines():
            name, _, pid = line.partition(" ")
            pids.setdefault(name, []).append(int(pid))
    return pids


def wait_for_file_text(path: Path, text: str, timeout_s: float) -> bool:
    """Poll ``path`` until it contains ``text`` (bounded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return True
        time.sleep(0.1)
    return False


def wait_for_output(proc: subprocess.Popen[str], text: str, timeout_s: float) -> str:
    """Read the demo's output until ``text`` appears (bounded); returns what was read."""
    import selectors

    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    seen = ""
    deadline = time.monotonic() + timeout_s
    try:
        while text not in seen and time.monotonic() < deadline:
            if sel.select(timeout=0.2):
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                seen += chunk.decode(errors="replace")
    finally:
        sel.close()
    assert text in seen, f"{text!r} not seen within {timeout_s} s:\n{seen}"
    return seen


def stop_demo(proc: subprocess.Popen[str], timeout_s: float) -> tuple[int, str]:
    """Wait for the demo to exit; kill its group if it overstays (then the test fails)."""
    try:
        out, _ = proc.communicate(timeout=timeout_s)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=10)
        raise AssertionError(f"demo did not exit within {timeout_s} s:\n{out}") from None


def assert_all_gone(out: Path, demo_pid: int | None = None) -> None:
    """No process the demo started is alive."""
    pids = [p for ps in read_pids(out).values() for p in ps]
    assert pids, "the demo recorded no PIDs"
    alive = wait_all_gone(pids + ([demo_pid] if demo_pid else []), 5.0)
    assert alive == [], f"still alive: {alive} of {read_pids(out)}"

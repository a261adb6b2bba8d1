"""Child processes of the demo: started in their own process group, stopped in bounded time.

Only processes this module started are ever signalled, and only through their own process
group id (each child is a session leader, so the group holds the child and whatever it
forks). On Linux each child also gets ``PR_SET_PDEATHSIG`` = SIGTERM, so it is told to stop
even if the orchestrator itself is killed with SIGKILL.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Sequence

__all__ = ["Child", "python_cmd", "seqrisk_cmd", "sequencer_cmd", "wait_all_gone"]

_PR_SET_PDEATHSIG = 1


def python_cmd(module: str, *args: str) -> list[str]:
    """Command line running ``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def seqrisk_cmd(*args: str) -> list[str]:
    """Command line running ``seqrisk args`` with this interpreter (no PATH lookup)."""
    return python_cmd("sequencer.cli", *args)


def sequencer_cmd(*args: str) -> list[str]:
    """Command line running the sequencer service CLI alone (imports only the sequencer)."""
    return python_cmd("sequencer.service_cli", *args)


def _child_setup() -> None:
    # Runs in the child between fork and exec: ask the kernel to SIGTERM us when the
    # orchestrator dies, so no child outlives it even after a SIGKILL of the parent.
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):
            pass


class Child:
    """One named child process; its output goes to ``log_path``."""

    def __init__(self, name: str, cmd: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.cmd = list(cmd)
        self.log_path = Path(log_path)
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False
        self.starts = 0
        self.expected_exit = False
        self._terminated = False
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """PID of the current incarnation (None before start)."""
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        """Start (or restart) the process in a new session, appending to its log."""
        if self.running():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self._close_log()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self._log.write(f"--- start {self.starts + 1}: {' '.join(self.cmd)}\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(
            self.cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
            preexec_fn=_child_setup,
        )
        self.starts += 1
        self.paused = False
        self.expected_exit = False
        self._terminated = False

    def running(self) -> bool:
        """True while the current incarnation has not exited."""
        return self.proc is not None and self.proc.poll() is None

    def returncode(self) -> int | None:
        """Exit status of the current incarnation (None while running or never started)."""
        return None if self.proc is None else self.proc.poll()

    def send_signal(self, sig: int) -> bool:
        """Send ``sig`` to this child's process group; False if it already exited."""
        if not self.running():
            return False
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            return False
        return True

    def pause(self) -> None:
        """SIGSTOP the child's process group (it keeps its sockets, reads nothing)."""
        if self.send_signal(signal.SIGSTOP):
            self.paused = True

    def resume(self) -> None:
        """SIGCONT the child's process group."""
        if self.send_signal(signal.SIGCONT):
            self.paused = False

    def kill(self) -> None:
        """SIGKILL now and reap (a planned crash: not reported as a failure)."""
        self.expected_exit = True
        self.send_signal(signal.SIGKILL)
        self._reap(5.0)

    def terminate(self, sig: int = signal.SIGTERM) -> None:
        """Ask the child to stop (once: a second SIGTERM arriving while Python finalizes,
        when its handlers are already reset, would kill it mid-exit)."""
        self.expected_exit = True
        if self.running() and not self._terminated:
            if self.paused:
                self.resume()
            self._terminated = self.send_signal(sig)

    def wait(self, timeout_s: float) -> int | None:
        """Wait up to ``timeout_s`` for the child to exit on its own; its status or None."""
        if self.proc is not None and self.running():
            self._reap(timeout_s)
        return self.returncode()

    def stop(self, timeout_s: float = 5.0, sig: int = signal.SIGTERM) -> int | None:
        """Ask the child to stop, wait at most ``timeout_s``, then SIGKILL its group.

        Returns the exit status (negative = killed by that signal).
        """
        self.terminate(sig)
        if self.running():
            if not self._reap(timeout_s):
                self.send_signal(signal.SIGKILL)
                self._reap(5.0)
        # Whatever the session leader forked and left behind goes with its group.
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._close_log()
        return self.returncode()

    def _reap(self, timeout_s: float) -> bool:
        assert self.proc is not None
        try:
            self.proc.wait(timeout=timeout_s)
            return True
        except subprocess.TimeoutExpired:
            return False

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def tail(self, lines: int = 15) -> str:
        """The last ``lines`` lines of this child's log (for failure reports)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def wait_all_gone(pids: Sequence[int], timeout_s: float) -> list[int]:
    """PIDs among ``pids`` still alive after ``timeout_s`` (bounded polling)."""
    deadline = time.monotonic() + timeout_s
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _alive(p)]
        if alive:
            time.sleep(0.05)
    return alive


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

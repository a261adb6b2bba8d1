"""`seqrisk demo` when it is interrupted, when a child dies, and when it is killed itself:
it always stops every process it started."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from demo_support import assert_all_gone, read_pids, start_demo, stop_demo, wait_for_output
from risk_gate.demo.procs import wait_all_gone

pytestmark = pytest.mark.slow

RUNNING = "] running |"


def test_demo_when_ctrl_c_then_exit_130_after_stopping_everything_and_auditing(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = start_demo(out, "--seconds", "120")
    seen = wait_for_output(proc, RUNNING, timeout_s=90)
    os.kill(proc.pid, signal.SIGINT)
    rc, rest = stop_demo(proc, timeout_s=90)
    text = seen + rest
    assert rc == 130, text
    assert "interrupted" in text
    assert_all_gone(out, proc.pid)
    assert (out / "audit" / "report.json").exists()


def test_demo_when_a_child_dies_then_exit_1_naming_it_and_nothing_survives(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = start_demo(out, "--seconds", "120")
    seen = wait_for_output(proc, RUNNING, timeout_s=90)
    venue = read_pids(out)["venue"][0]
    os.kill(venue, signal.SIGKILL)
    rc, rest = stop_demo(proc, timeout_s=60)
    text = seen + rest
    assert rc == 1, text
    assert "venue" in text and "exited unexpectedly" in text
    assert_all_gone(out, proc.pid)


def test_demo_when_the_demo_itself_is_killed_then_its_children_die_too(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = start_demo(out, "--seconds", "120")
    wait_for_output(proc, "seqrisk demo:", timeout_s=60)
    deadline = time.monotonic() + 30
    while len(read_pids(out)) < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    pids = [p for ps in read_pids(out).values() for p in ps]
    assert len(pids) >= 5
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.stdout is not None
    proc.stdout.close()
    # Each child was started with PR_SET_PDEATHSIG = SIGTERM (Linux), so it stops by itself.
    alive = wait_all_gone(pids, 20.0)
    for pid in alive:  # clean up before failing: only PIDs this test's demo started
        os.kill(pid, signal.SIGKILL)
    assert alive == []

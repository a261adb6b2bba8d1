"""`seqrisk demo --no-ui` end to end: exit 0, a journal that verifies, an audit with decisions,
the faults injected and survived, and no process left behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from demo_support import ROOT, assert_all_gone, start_demo, stop_demo

pytestmark = pytest.mark.slow


def test_demo_when_run_short_without_ui_then_exit_0_journal_verifies_audit_has_decisions_and_nothing_survives(
    tmp_path: Path,
) -> None:
    out = tmp_path / "demo"
    proc = start_demo(out, "--seconds", "8", "--seed", "3")
    rc, text = stop_demo(proc, timeout_s=150)
    assert rc == 0, text
    assert_all_gone(out, proc.pid)

    verify = subprocess.run(
        [sys.executable, "-m", "sequencer.cli", "journal", "verify", str(out / "journal")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr

    report = json.loads((out / "audit" / "report.json").read_text())
    decisions = report["decisions"]
    assert decisions["approved"] > 0
    assert decisions["refused"] > 0
    assert str(out / "audit" / "report.md") in text

    # Two epochs: the sequencer was killed and restarted on the same journal.
    assert len(report["epochs"]) >= 2
    # The operator's reduce-only and resume went through the sequencer like any event.
    assert report["events_by_kind"].get("reduce_only") == 1
    assert report["events_by_kind"].get("resume") == 1

    run = json.loads((out / "demo-run.json").read_text())
    assert run["failure"] is None and not run["interrupted"]
    # Every process stopped by itself on SIGTERM (none needed SIGKILL).
    assert all(rc == 0 for rc in run["exit_codes"].values()), run["exit_codes"]
    timeline = " ".join(text for _, text in run["timeline"])
    for fault in ("stall", "kill -9 the sequencer", "restart the sequencer", "reduce-only"):
        assert fault in timeline
    refused = run["decisions"]["refused"]
    # The gate refused while stale (stall or sequencer down) and for limits that were reached.
    assert set(refused) & {"STALE_SEQUENCE", "STALE_HWM", "RECOVERING"}
    assert set(refused) - {"STALE_SEQUENCE", "STALE_HWM", "RECOVERING", "STALE_PRICE"}
    # ... and approved again by itself after the last fault.
    assert run["approved_after_faults"] > 0

"""``seqrisk demo``: start every process, inject faults, show the view, stop, audit.

Lifecycle: prepare ``OUT`` (fresh ``journal``, ``audit``, ``logs``), start the sequencer and
wait for its status reply, start the forwarder, venue, OMS and strategy, wait until the
strategy's gate is current, then run the clock for ``--seconds`` while the fault plan
(:mod:`risk_gate.demo.plan`) fires. At the end (or on Ctrl-C/SIGTERM, or when a child dies)
every child is stopped in order with bounded waits, then killed; finally the audit runs.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from risk_gate.demo.config import DEFAULT_CONFIG, DemoConfig, load_demo_config
from risk_gate.demo.plan import FaultPlan, Step
from risk_gate.demo.procs import Child, python_cmd, seqrisk_cmd, sequencer_cmd, wait_all_gone
from risk_gate.demo.runtime import Endpoints, StatusClient
from risk_gate.demo.stats import StatsPuller
from risk_gate.demo.view import DemoView, ProcRow

__all__ = ["DemoOptions", "Demo", "run_demo"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class DemoOptions:
    """What ``seqrisk demo`` was asked to do."""

    seconds: float = 25.0
    out: Path = Path("seqrisk-demo")
    ui: bool = True
    config: Path | None = None
    seed: int = 1
    log_level: str = "INFO"
    log_json: bool = False
    startup_timeout_s: float = 120.0
    audit_timeout_s: float = 300.0


class DemoFailed(RuntimeError):
    """A child died or never became ready; the message says which and why."""


class Demo:
    """One run of the demo; :meth:`run` returns the exit code."""

    def __init__(self, opts: DemoOptions, out: TextIO | None = None) -> None:
        self.opts = opts
        self.out = out or sys.stdout
        self.dir = Path(opts.out)
        self.children: dict[str, Child] = {}
        self.pids: list[int] = []
        self.signals = 0
        self.failure: str | None = None
        self.view = DemoView(seconds=opts.seconds, out_dir=str(self.dir))
        self.ep: Endpoints | None = None
        self.cfg = DemoConfig()
        self.config_path = self.dir / "seqrisk.toml"
        self._noted: set[str] = set()
        self._approved_at_restart: int | None = None
        self._restarted_at: float | None = None

    def say(self, text: str) -> None:
        """A line for the operator (the UI is not up yet or is gone)."""
        print(text, file=self.out, flush=True)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signals += 1

    def run(self) -> int:
        """Run the whole demo; always stops every child before returning."""
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        stats = None
        try:
            self._prepare()
            assert self.ep is not None
            stats = StatsPuller(self.ep.stats)
            status = StatusClient(self.ep.replay)
            try:
                self._start_all(status, stats)
                if not self.signals:
                    self._run_clock(status, stats)
            except DemoFailed as exc:
                self.failure = str(exc)
            finally:
                status.close()
                self._stop_all()
            return self._finish()
        finally:
            if stats is not None:
                stats.close()
            if self.ep is not None:
                self.ep.cleanup()
            for s, h in old.items():
                signal.signal(s, h)

    def _prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        for sub in ("journal", "audit", "logs"):
            # The demo owns these: each run starts from an empty journal.
            shutil.rmtree(self.dir / sub, ignore_errors=True)
        for name in ("pids.txt", "demo-run.json"):
            (self.dir / name).unlink(missing_ok=True)
        (self.dir / "logs").mkdir()
        text = Path(self.opts.config).read_text(encoding="utf-8") if self.opts.config else DEFAULT_CONFIG
        self.config_path.write_text(text, encoding="utf-8")
        from sequencer.config import check_config, load_document

        check_config(self.config_path)
        self.cfg = load_demo_config(load_document(self.config_path))
        self.ep = Endpoints.under(self.dir)

    def _child(self, name: str, cmd: list[str]) -> Child:
        child = Child(name, cmd, self.dir / "logs" / f"{name}.log")
        self.children[name] = child
        return child

    def _start(self, child: Child) -> None:
        child.start()
        assert child.pid is not None
        self.pids.append(child.pid)
        # Written as they start, so an operator (or a test) can see every PID of the run.
        with open(self.dir / "pids.txt", "a", encoding="utf-8") as f:
            f.write(f"{child.name} {child.pid}\n")

    def _commands(self) -> dict[str, list[str]]:
        ep = self.ep
        assert ep is not None
        log = ["--log-level", self.opts.log_level] + (["--log-json"] if self.opts.log_json else [])
        cfg = ["--config", str(self.config_path)]
        conn = ["--publish", ep.publish, "--hwm", ep.hwm, "--replay", ep.replay]
        seed = str(self.opts.seed)
        return {
            "sequencer": sequencer_cmd(
                *log, "sequencer", "--journal", str(self.dir / "journal"), "--ingest", ep.ingest, *conn,
                "--hwm-file", str(ep.hwm_file), *cfg,
            ),
            "forwarder": python_cmd(
                "risk_gate.demo.forwarder", "--upstream", ep.publish, "--downstream", ep.gate_publish,
                "--replay-upstream", ep.replay, "--replay-downstream", ep.gate_replay,
            ),
            "venue": python_cmd(
                "risk_gate.demo.venue", "--ingest", ep.ingest, *conn, "--hwm-file", str(ep.hwm_file),
                "--stats", ep.stats, "--seed", seed, *cfg, *log,
            ),
            "oms": seqrisk_cmd(*log, "oms", *conn, "--hwm-file", str(ep.hwm_file), "--interval", "5", *cfg),
            "strategy": python_cmd(
                "risk_gate.demo.strategy", "--ingest", ep.ingest, "--publish", ep.gate_publish, "--hwm", ep.hwm,
                "--replay", ep.gate_replay, "--stats", ep.stats, "--seed", seed, *cfg, *log,
            ),
        }

    def _start_all(self, status: StatusClient, stats: StatsPuller) -> None:
        cmds = self._commands()
        for name in ("sequencer", "forwarder", "venue", "oms", "strategy"):
            self._child(name, cmds[name])
        self.say(f"seqrisk demo: {self.opts.seconds:g} s, output in {self.dir}/ (logs in {self.dir}/logs/)")
        # All at once: consumers and producers keep trying until the sequencer listens,
        # and starting Python processes is the slow part on a loaded machine.
        for name in ("sequencer", "forwarder", "venue", "oms", "strategy"):
            self._start(self.children[name])
        self.view.phase = "starting (loading kernels, joining the stream)"
        self._refresh_procs()
        deadline = time.monotonic() + self.opts.startup_timeout_s
        while not (self.view.gate and self.view.gate.ready and self.view.sequencer_up):
            self._check_children()
            if self.signals:
                return
            if time.monotonic() > deadline:
                who = "sequencer" if not self.view.sequencer_up else "strategy"
                raise DemoFailed(f"the {who} did not become ready in time\n" + self.children[who].tail())
            self._pump(status, stats)
            stats.wait(50)

    def _pump(self, status: StatusClient, stats: StatsPuller) -> None:
        for msg in stats.drain():
            self.view.update(msg)
        reply = status.poll()
        if reply is not None:
            consumers = {c.name: (c.epoch, c.applied_seq, c.hwm, c.lag) for c in reply.consumers}
            self.view.set_status(reply.epoch, reply.hwm, reply.counts, consumers)
        elif not status.reachable:
            self.view.sequencer_up = False

    def _run_clock(self, status: StatusClient, stats: StatsPuller) -> None:
        from risk_gate.demo.summary import PlainReporter

        plan = FaultPlan.build(self.opts.seconds, self.cfg)
        self.view.started = time.monotonic()
        self.view.phase = "running"
        if self.opts.ui:
            from risk_gate.demo.ui import LiveView

            display = LiveView()
        else:
            display = PlainReporter(self.out)
        end = self.opts.seconds
        last = self.view.started
        with display:
            while not self.signals:
                now = time.monotonic()
                t = now - self.view.started
                for step in plan.due(t):
                    self._do(step)
                self._check_children()
                self._pump(status, stats)
                if self._restarted_at is not None:
                    if self.view.sequencer_up:
                        self.view.note(f"sequencer back after {now - self._restarted_at:.1f}s (epoch {self.view.sequencer_epoch})")
                        self._restarted_at = None
                    else:
                        # The run's clock waits for the restart (a loaded machine can take
                        # seconds to start Python), so the recovery is part of every run.
                        plan.shift(now - last)
                        end += now - last
                        self.view.seconds = end
                        if now - self._restarted_at > self.opts.startup_timeout_s:
                            raise DemoFailed("the restarted sequencer did not answer in time\n" + self.children["sequencer"].tail())
                last = now
                self._refresh_procs()
                display.refresh(self.view, now)
                if t >= end:
                    break
                stats.wait(50)
            if self.signals:
                self.view.note("interrupted: stopping")
            self.view.phase = "stopping"
            display.refresh(self.view, float("inf"))

    def _do(self, step: Step) -> None:
        ep = self.ep
        assert ep is not None
        self.view.note(step.text)
        if step.action == "stall":
            self.children["forwarder"].pause()
            self.view.phase = "fault: gate data path stalled"
        elif step.action == "unstall":
            self.children["forwarder"].resume()
            self.view.phase = "running"
        elif step.action == "kill":
            self.children["sequencer"].kill()
            self.view.sequencer_up = False
            self.view.phase = "fault: sequencer killed"
        elif step.action == "restart":
            self._start(self.children["sequencer"])
            self._restarted_at = time.monotonic()
            self.view.sequencer_up = False
            self.view.phase = "running"
            self._approved_at_restart = self.view.gate.approved if self.view.gate else 0
        elif step.action in ("reduce-only", "resume"):
            name = f"operator-{step.action}"
            child = self._child(name, seqrisk_cmd(step.action, "--ingest", ep.ingest, *step.args, "--reason", step.text[:40]))
            child.expected_exit = True
            self._start(child)
            self.view.phase = "acct-2 reduce-only" if step.action == "reduce-only" else "running"

    def _check_children(self) -> None:
        for child in self.children.values():
            rc = child.returncode()
            if child.name.startswith("operator-"):
                if rc not in (None, 0) and child.name not in self._noted:
                    self._noted.add(child.name)
                    self.view.note(f"{child.name} exited {rc}: see {child.log_path}")
                continue
            if child.proc is not None and rc is not None and not child.expected_exit:
                raise DemoFailed(f"{child.name} (pid {child.pid}) exited unexpectedly with status {rc}\n{child.tail()}")

    def _refresh_procs(self) -> None:
        rows = []
        for c in self.children.values():
            if c.name.startswith("operator-"):
                continue
            if c.proc is None:
                state = "not started"
            elif c.running():
                state = "paused" if c.paused else "running"
            else:
                state = "killed" if c.expected_exit else f"exited {c.returncode()}"
            rows.append(ProcRow(c.name, c.pid, state, c.starts))
        self.view.procs = rows

    def _stop_all(self) -> None:
        """SIGTERM everything but the sequencer at once (their producers flush to it), then
        the sequencer; each gets a bounded wait, then SIGKILL of its process group."""
        # Operator commands still running get to finish first (they need the sequencer).
        for child in self.children.values():
            if child.name.startswith("operator-") and child.running():
                if child.wait(15.0) is None:
                    self.view.note(f"{child.name} did not finish; stopped")
        first = [c for n, c in self.children.items() if n != "sequencer" and c.running()]
        for child in first:
            child.terminate()
        order = first + [c for n, c in self.children.items() if n == "sequencer"]
        for child in order:
            rc = child.stop(timeout_s=8.0 if child.name == "sequencer" else 5.0)
            if rc not in (0, None, -signal.SIGTERM) and not self.failure and not child.name.startswith("operator-"):
                self.view.note(f"{child.name} stopped with status {rc}")
        for child in self.children.values():
            child.stop(timeout_s=1.0)
        alive = wait_all_gone(self.pids, 5.0)
        if alive:
            self.failure = self.failure or f"processes still alive after stop: {alive}"

    def _finish(self) -> int:
        from risk_gate.demo.summary import final_report

        self.say(final_report(self.view))
        summary = {
            "seconds": self.opts.seconds,
            "pids": self.pids,
            "exit_codes": {n: c.returncode() for n, c in self.children.items()},
            "failure": self.failure,
            "interrupted": bool(self.signals),
            "timeline": self.view.events,
            "decisions": {"approved": self.view.decisions()[0], "refused": dict(self.view.decisions()[2])},
            "approved_after_faults": (
                None if self._approved_at_restart is None else self.view.decisions()[0] - self._approved_at_restart
            ),
        }
        (self.dir / "demo-run.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
        if self.failure:
            self.say(f"demo FAILED: {self.failure}")
            self.say(f"logs: {self.dir / 'logs'}")
            return EXIT_FAILED
        rc = self._audit()
        if rc != 0:
            return EXIT_FAILED
        return EXIT_INTERRUPTED if self.signals else EXIT_OK

    def _audit(self) -> int:
        journal, audit = self.dir / "journal", self.dir / "audit"
        self.say(f"auditing the journal: seqrisk audit {journal} --out {audit}")
        cmd = seqrisk_cmd("audit", str(journal), "--out", str(audit), "--config", str(self.config_path))
        child = self._child("audit", cmd)
        self._start(child)
        deadline = time.monotonic() + self.opts.audit_timeout_s
        seen = self.signals
        # Bounded: the audit's own timeout, or one more Ctrl-C, ends the wait.
        while child.running() and time.monotonic() < deadline and self.signals == seen:
            time.sleep(0.1)
        rc = child.stop(timeout_s=2.0) if child.running() else child.returncode()
        if rc != 0:
            self.say(f"audit failed (status {rc}):\n{child.tail()}")
            return 1
        self.say(f"audit report: {audit / 'report.md'} (also report.json, lag.png)")
        return 0


def run_demo(opts: DemoOptions, out: TextIO | None = None) -> int:
    """Run the demo with ``opts``; returns the process exit code."""
    return Demo(opts, out).run()

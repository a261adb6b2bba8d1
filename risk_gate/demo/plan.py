"""The demo's fault and operator plan: what happens when, as fractions of the run."""

from __future__ import annotations

from dataclasses import dataclass, field

from risk_gate.demo.config import DemoConfig

__all__ = ["Step", "FaultPlan"]


@dataclass(frozen=True)
class Step:
    """One scheduled action at ``at`` seconds into the run."""

    at: float
    action: str  # stall | unstall | kill | restart | reduce-only | resume
    text: str
    args: tuple[str, ...] = ()


@dataclass
class FaultPlan:
    """Steps in time order; :meth:`due` hands each out once."""

    steps: list[Step]
    _next: int = field(default=0)

    @classmethod
    def build(cls, seconds: float, cfg: DemoConfig) -> "FaultPlan":
        """The plan for a run of ``seconds``: durations shrink with short runs so every fault
        ends (and the gate has time to recover) before the run does."""
        stall = min(cfg.stall_s, 0.2 * seconds)
        down = min(cfg.down_s, 0.12 * seconds)
        ro = min(cfg.reduce_only_s, 0.15 * seconds)
        steps: list[Step] = []
        if stall > 0:
            t = cfg.stall_at * seconds
            steps.append(Step(t, "stall", f"stall the gate's data path for {stall:.1f}s (forwarder SIGSTOP; HWM still flows)"))
            steps.append(Step(t + stall, "unstall", "data path back (forwarder SIGCONT): the gate catches up by itself"))
        if down > 0:
            t = cfg.kill_at * seconds
            steps.append(Step(t, "kill", "kill -9 the sequencer"))
            steps.append(Step(t + down, "restart", "restart the sequencer on the same journal (new epoch)"))
        if ro > 0:
            t = cfg.reduce_only_at * seconds
            steps.append(Step(t, "reduce-only", "operator: reduce-only acct-2", ("--account", "acct-2")))
            steps.append(Step(t + ro, "resume", "operator: resume acct-2", ("--account", "acct-2")))
        steps.sort(key=lambda s: s.at)
        return cls(steps)

    def shift(self, dt: float) -> None:
        """Postpone every step not handed out yet by ``dt`` seconds."""
        for n in range(self._next, len(self.steps)):
            s = self.steps[n]
            self.steps[n] = Step(s.at + dt, s.action, s.text, s.args)

    def due(self, t: float) -> list[Step]:
        """Steps whose time has come (each returned once)."""
        out = []
        while self._next < len(self.steps) and self.steps[self._next].at <= t:
            out.append(self.steps[self._next])
            self._next += 1
        return out

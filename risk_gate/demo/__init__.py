"""``seqrisk demo``: the sequencer, a simulated venue, an OMS and a gated strategy, with faults.

Modules: ``orchestrator`` (starts, steers and stops the processes), ``venue`` (simulated
venue), ``strategy`` (strategy process embedding the gate), ``forwarder`` (the stallable data
path), ``ui``/``summary`` (live and plain views); the OMS is ``seqrisk oms`` itself.
The public names are re-exported lazily so that ``seqrisk --help`` imports none of them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_CONFIG", "Demo", "DemoConfig", "DemoOptions", "load_demo_config", "run_demo"]

_WHERE = {
    "DEFAULT_CONFIG": "risk_gate.demo.config",
    "DemoConfig": "risk_gate.demo.config",
    "load_demo_config": "risk_gate.demo.config",
    "Demo": "risk_gate.demo.orchestrator",
    "DemoOptions": "risk_gate.demo.orchestrator",
    "run_demo": "risk_gate.demo.orchestrator",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'risk_gate.demo' has no attribute {name!r}")

"""``seqrisk demo``: the sequencer, a simulated venue, an OMS and a gated strategy, with faults.

Modules: ``orchestrator`` (starts, steers and stops the processes), ``venue`` (simulated
venue), ``strategy`` (strategy process embedding the gate), ``forwarder`` (the stallable data
path), ``oms_proc`` (OMS consumer reporting its stats), ``ui``/``summary`` (live and plain views).
"""

from risk_gate.demo.config import DEFAULT_CONFIG, DemoConfig, load_demo_config
from risk_gate.demo.orchestrator import Demo, DemoOptions, run_demo

__all__ = ["DEFAULT_CONFIG", "Demo", "DemoConfig", "DemoOptions", "load_demo_config", "run_demo"]

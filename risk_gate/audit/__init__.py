"""Replay and audit: rebuild any state from the journal and re-check every gate decision.

``run_audit`` folds the journal once and re-checks each approval with the gate's own pure
checks against the state at its seq - 1; ``encode_report`` writes the deterministic
``report.json``; ``gate_view`` is the gate's view at any seq (``seqrisk replay --component
gate``). See docs/audit.md. Names are imported lazily so that registering the CLI stays
cheap (the fold pulls in numba).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "AuditError",
    "AuditReport",
    "AuditResult",
    "NOT_RECHECKED",
    "PricePath",
    "PricesError",
    "TimeParseError",
    "decode_report",
    "encode_report",
    "gate_view",
    "iter_journal",
    "load_prices",
    "parse_horizons",
    "parse_iso_ns",
    "run_audit",
    "seq_at_time",
]

_WHERE = {
    "AuditError": "recheck", "AuditResult": "recheck", "NOT_RECHECKED": "recheck", "iter_journal": "recheck",
    "run_audit": "recheck", "AuditReport": "report", "decode_report": "report", "encode_report": "report",
    "PricePath": "prices", "PricesError": "prices", "load_prices": "prices", "TimeParseError": "times",
    "parse_horizons": "times", "parse_iso_ns": "times", "gate_view": "replay", "seq_at_time": "replay",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"risk_gate.audit.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'risk_gate.audit' has no attribute {name!r}")

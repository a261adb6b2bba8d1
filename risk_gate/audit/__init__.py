"""Replay and audit: rebuild any state from the journal and re-check every gate decision.

``run_audit`` folds the journal once and re-checks each approval with the gate's own pure
checks against the state at its seq - 1; ``encode_report`` writes the deterministic
``report.json``. See docs/audit.md.
"""

from __future__ import annotations

from risk_gate.audit.prices import PricePath, PricesError, load_prices
from risk_gate.audit.recheck import NOT_RECHECKED, AuditError, AuditResult, iter_journal, run_audit
from risk_gate.audit.report import AuditReport, decode_report, encode_report
from risk_gate.audit.times import TimeParseError, parse_horizons, parse_iso_ns

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
    "iter_journal",
    "load_prices",
    "parse_horizons",
    "parse_iso_ns",
    "run_audit",
]

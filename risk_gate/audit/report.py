"""The audit report (``report.json``) as msgspec Structs, and its deterministic encoding.

Nothing about the run itself (wall time, paths, host) goes in the report, so the same
journal (and the same options) always gives byte-identical bytes: keys sorted, floats
rounded to 4 decimals, lists in seq order.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "REPORT_VERSION",
    "Decisions",
    "StaleApproval",
    "LagBucket",
    "MarkoutCell",
    "MarkoutBucket",
    "Markout",
    "Recheck",
    "Verdict",
    "AuditReport",
    "encode_report",
    "decode_report",
    "make_verdict",
]

REPORT_VERSION = 1


class Decisions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Gate decisions on the stream: ``new_order`` records are approvals, ``refused`` refusals."""

    approved: int
    refused: int
    refused_by_reason: dict[str, int]


class StaleApproval(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An approval whose re-check against the state at ``seq - 1`` refuses."""

    order_id: int
    seq: int
    ts_ns: int
    account: str
    instrument: str
    applied_seq: int
    hwm: int
    observed_lag: int
    true_lag: int
    reason: str
    detail: str


class LagBucket(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Approvals whose lag is in ``[lo, hi]``: counted by observed and by true lag."""

    lo: int
    hi: int
    observed: int
    true: int


class MarkoutCell(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Mean markout (bps) of ``count`` approvals at one horizon; ``None`` when count is 0."""

    count: int
    mean_bps: float | None


class MarkoutBucket(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Markout of the approvals whose true lag is in this bucket, per horizon label."""

    bucket: str
    lo: int
    hi: int | None
    orders: int
    horizons: dict[str, MarkoutCell]


class Markout(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Markout by lag bucket; see docs/audit.md for the exact definition."""

    horizons: list[str]
    horizons_ns: list[int]
    priced_orders: int
    unpriced_orders: int
    buckets: list[MarkoutBucket]


class Recheck(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the re-check ran and found."""

    checked: int
    clean: int
    would_refuse: int
    would_refuse_by_reason: dict[str, int]
    reasons_not_rechecked: list[str]
    approvals_behind: int
    impossible_lags: int


class Verdict(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The falsification verdict: ``zero_divergence`` or ``exposure_window``."""

    kind: str
    text: str


class AuditReport(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Everything ``report.json`` holds."""

    version: int
    first_seq: int
    last_seq: int
    until: int | None
    events: int
    events_by_kind: dict[str, int]
    epochs: list[int]
    decisions: Decisions
    max_observed_lag: int
    max_true_lag: int
    stale_approvals: list[StaleApproval]
    recheck: Recheck
    lag_histogram: list[LagBucket]
    limit_changes: int
    anomalies: int
    verdict: Verdict
    markout_by_lag_bucket: Markout | None = None


def encode_report(report: AuditReport) -> bytes:
    """Deterministic JSON: sorted keys, 2-space indentation, trailing newline."""
    raw = msgspec.json.encode(report, order="sorted")
    return msgspec.json.format(raw, indent=2) + b"\n"


def decode_report(data: bytes) -> AuditReport:
    """Parse ``report.json`` back into an :class:`AuditReport` (for tests and tools)."""
    return msgspec.json.decode(data, type=AuditReport)


def make_verdict(approved: int, approvals_behind: int, max_true_lag: int, would_refuse: int) -> Verdict:
    """The verdict stated plainly: zero divergence, or the size of the exposure window."""
    if approvals_behind == 0 and would_refuse == 0:
        return Verdict(
            kind="zero_divergence",
            text=f"zero divergence: every approval was made at lag 0 and re-checks clean ({approved} approvals)",
        )
    return Verdict(
        kind="exposure_window",
        text=(
            f"exposure window: {approvals_behind} approvals made up to {max_true_lag} events behind; "
            f"{would_refuse} would have been refused"
        ),
    )

"""``report.md``: the audit report in readable form, verdict first."""

from __future__ import annotations

from risk_gate.audit.report import AuditReport

__all__ = ["render_markdown", "MAX_LISTED"]

# report.json lists every stale approval; the Markdown lists the first ones only.
MAX_LISTED = 50


def _row(cells: list[object]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def render_markdown(r: AuditReport) -> str:
    """The report as Markdown (deterministic, like report.json)."""
    out: list[str] = ["# seqrisk audit", ""]
    out += [f"**Verdict — {r.verdict.text}.**", ""]
    rng = f"seq {r.first_seq}..{r.last_seq}" if r.events else "empty journal"
    until = f" (stopped at --until {r.until})" if r.until is not None else ""
    out += [
        f"- Journal: {r.events} events, {rng}{until}, epochs {', '.join(map(str, r.epochs)) or '-'}",
        f"- Decisions: {r.decisions.approved} approved, {r.decisions.refused} refused",
        f"- Largest observed lag at approval (HWM seen - applied): {r.max_observed_lag} events",
        f"- Largest true lag at approval (order seq - 1 - applied): {r.max_true_lag} events",
        f"- Approvals made behind the stream (true lag > 0): {r.recheck.approvals_behind}",
        f"- Re-checked {r.recheck.checked} approvals against the state at seq - 1: "
        f"{r.recheck.clean} clean, {r.recheck.would_refuse} would have been refused",
        f"- Limit changes on the stream: {r.limit_changes}; fold anomalies: {r.anomalies}",
    ]
    if r.recheck.impossible_lags:
        out.append(f"- Decisions with impossible lag fields (applied > seq - 1 or HWM < applied): {r.recheck.impossible_lags}")
    out += ["", "Not re-checked (they depend on the gate's clock and transport at the time; the lag numbers stand "
            f"for them): {', '.join(r.recheck.reasons_not_rechecked)}.", ""]

    out += ["## Events by kind", "", _row(["kind", "events"]), _row(["---", "---:"])]
    out += [_row([k, v]) for k, v in sorted(r.events_by_kind.items())]
    out += ["", "## Refusals by reason", "", _row(["reason", "refused", "would refuse on re-check"]), _row(["---", "---:", "---:"])]
    for name, n in r.decisions.refused_by_reason.items():
        k = r.recheck.would_refuse_by_reason.get(name, 0)
        if n or k:
            out.append(_row([name, n, k]))
    out += ["", "## Lag at approval", "", _row(["lag (events)", "observed", "true"]), _row(["---", "---:", "---:"])]
    for b in r.lag_histogram:
        out.append(_row([str(b.lo) if b.lo == b.hi else f"{b.lo}-{b.hi}", b.observed, b.true]))
    out += ["", "![lag histogram](lag.png)", ""]

    out += ["## Stale approvals", ""]
    if not r.stale_approvals:
        out += ["None: every approval re-checks clean against the state at its seq - 1.", ""]
    else:
        out += [
            _row(["order id", "seq", "account", "instrument", "applied seq", "observed lag", "true lag", "would refuse", "detail"]),
            _row(["---:", "---:", "---", "---", "---:", "---:", "---:", "---", "---"]),
        ]
        for s in r.stale_approvals[:MAX_LISTED]:
            out.append(_row([s.order_id, s.seq, s.account, s.instrument, s.applied_seq, s.observed_lag, s.true_lag, s.reason, s.detail]))
        if len(r.stale_approvals) > MAX_LISTED:
            out.append(f"\n... and {len(r.stale_approvals) - MAX_LISTED} more in report.json.")
        out.append("")

    m = r.markout_by_lag_bucket
    if m is not None:
        out += ["## Markout by true lag bucket (mean bps, count)", ""]
        out += [
            f"{m.priced_orders} approvals have a price (average fill, else limit); {m.unpriced_orders} do not. "
            "Positive = the price moved in the order's favour.",
            "",
        ]
        out += [_row(["lag bucket", "orders", *m.horizons]), _row(["---", "---:", *["---:"] * len(m.horizons)])]
        for b in m.buckets:
            cells = [
                f"{c.mean_bps:+.2f} ({c.count})" if c.mean_bps is not None else f"- ({c.count})"
                for c in (b.horizons[h] for h in m.horizons)
            ]
            out.append(_row([b.bucket, b.orders, *cells]))
        out += ["", "![markout](markout.png)", ""]
    return "\n".join(out) + "\n"

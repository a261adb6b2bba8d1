"""``seqrisk audit``: re-check every gate decision of a journal and write the report.

Exit codes: 0 the report was written (whatever the verdict); 1 the audit could not finish
(corrupt journal, a record the registry cannot place); 2 bad input (config, prices file,
horizons, ``--until``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register", "audit_main", "DEFAULT_HORIZONS"]

DEFAULT_HORIZONS = "1s,5s,60s"


def register(sub: Any) -> None:
    """Add the ``audit`` subcommand."""
    p = sub.add_parser(
        "audit",
        help="re-check every gate decision in a journal; write report.json, report.md and plots",
        description=(
            "Fold the journal once, re-check every approval (new_order) with the gate's own checks against "
            "the state at its seq - 1 and the limits in force then, measure the gate's lag at each approval, "
            "and write OUTDIR/report.json, report.md, lag.png (and markout.png with --prices)."
        ),
    )
    p.add_argument("journal", metavar="DIR", help="journal directory")
    p.add_argument("--out", required=True, metavar="OUTDIR", help="directory for the report (created if missing)")
    p.add_argument("--prices", metavar="FILE.csv", help="mid prices (ts_ns or ISO time, instrument, mid) for markouts")
    p.add_argument(
        "--horizons", default=DEFAULT_HORIZONS, metavar="LIST",
        help=f"markout horizons, comma separated, units ns/us/ms/s/m/h (default {DEFAULT_HORIZONS})",
    )
    p.add_argument("--config", metavar="FILE", help="TOML config: registry and [gate] limits (default: built-in)")
    p.add_argument("--until", type=int, metavar="SEQ", help="stop after this seq")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (also off when stderr is not a terminal)")
    p.add_argument("--no-plots", action="store_true", help="skip lag.png and markout.png")
    p.set_defaults(func=audit_main)


def _err(msg: str) -> None:
    print(f"seqrisk audit: error: {msg}", file=sys.stderr)


def audit_main(args: argparse.Namespace) -> int:
    """Handler of ``seqrisk audit``."""
    from risk_gate.audit.markdown import render_markdown
    from risk_gate.audit.prices import PricesError, load_prices
    from risk_gate.audit.recheck import AuditError, iter_journal, run_audit
    from risk_gate.audit.report import encode_report
    from risk_gate.audit.times import TimeParseError, parse_horizons
    from risk_gate.limits import load_gate_config
    from sequencer.config import ConfigError, load_document, load_registry

    if args.until is not None and args.until < 1:
        _err(f"--until must be a seq >= 1, got {args.until}")
        return 2
    try:
        doc = load_document(args.config)
        registry = load_registry(doc)
        gate_config = load_gate_config(doc, registry)
        horizons = parse_horizons(args.horizons)
        prices = load_prices(args.prices, registry) if args.prices else None
    except (ConfigError, TimeParseError, PricesError) as exc:
        _err(str(exc))
        return 2
    out = Path(args.out)
    try:
        last, chunks = iter_journal(args.journal, args.until)
        with _progress(last, enabled=not args.no_progress and sys.stderr.isatty()) as advance:
            result = run_audit(
                chunks, registry, gate_config, until=args.until, prices=prices, horizons=horizons, progress=advance
            )
    except AuditError as exc:
        _err(str(exc))
        return 1
    report = result.report
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_bytes(encode_report(report))
        (out / "report.md").write_text(render_markdown(report), encoding="utf-8")
        if not args.no_plots:
            from risk_gate.audit.plots import plot_lag_histogram, plot_markout

            plot_lag_histogram(report.lag_histogram, out / "lag.png")
            if report.markout_by_lag_bucket is not None:
                plot_markout(report.markout_by_lag_bucket, out / "markout.png")
            else:
                # A markout.png of an earlier run with prices would not match this report.
                (out / "markout.png").unlink(missing_ok=True)
    except OSError as exc:
        _err(f"cannot write the report to {out}: {exc}")
        return 1
    print(f"{report.verdict.text}")
    print(
        f"{report.events} events, {report.decisions.approved} approved, {report.decisions.refused} refused; "
        f"max observed lag {report.max_observed_lag}, max true lag {report.max_true_lag}"
    )
    print(f"report: {out / 'report.md'} ({out / 'report.json'})")
    return 0


class _progress:
    """A rich progress bar over seqs on stderr, or nothing; yields ``advance(seq)``."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled and total > 0
        self._bar: Any = None

    def __enter__(self):  # type: ignore[no-untyped-def]
        if not self.enabled:
            return None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("audit"), BarColumn(), MofNCompleteColumn(), TextColumn("events"), TimeRemainingColumn(),
            console=Console(stderr=True), transient=True,
        )
        self._bar.__enter__()
        task = self._bar.add_task("audit", total=self.total)
        bar = self._bar

        def advance(seq: int) -> None:
            bar.update(task, completed=seq)

        return advance

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

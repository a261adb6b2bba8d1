"""The audit pass: fold the journal once, re-check every approval against the state at seq - 1.

One pass over the journal in seq order. Records are folded into a
:class:`~consumers.book.Book` (the numba kernel) in batches cut at every ``new_order``
record, so just before each approval with seq ``s`` the Book holds exactly the state at
``s - 1``. The approval is then re-run through the gate's own pure
:func:`~risk_gate.checks.check_order` with the limits in force at ``s - 1`` (the config plus
every ``limit`` event before ``s``), and the record is folded with the next batch.

What the re-check asks is "would the limits have refused this order against the state the
gate should have seen?":

* The staleness reasons (``STALE_SEQUENCE``, ``STALE_HWM``, ``RECOVERING``,
  ``STALE_PRICE``) depend on the gate's clock and transport at the time, which the journal
  does not hold; they are not re-checked. Staleness is reported as lag numbers instead:
  observed lag ``gate_hwm - gate_applied_seq`` and true lag ``seq - 1 - gate_applied_seq``.
  Every other reason is re-checked: limits, trading states, duplicates, validity, rates.
* The gate's own in-flight approvals: by ``s - 1`` every earlier approval is on the stream
  as an open (``pending_new``) order, which the Book counts in open quantity and open
  orders. The re-check therefore runs with an empty reservation set; adding reservations
  would count those orders twice.
* Rates: the per-account token buckets take one token per approval on the stream, on the
  clock of the records' ``ts_ns`` (the sequencer's stamp), whatever the re-check says (the
  order went out either way).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from consumers.book import Book, BookError
from risk_gate.audit.buckets import lag_histogram_counts
from risk_gate.audit.markout import compute_markouts
from risk_gate.audit.prices import PricePath
from risk_gate.audit.report import (
    REPORT_VERSION,
    AuditReport,
    Decisions,
    LagBucket,
    Recheck,
    StaleApproval,
    make_verdict,
)
from risk_gate.checks import BookView, FixedOrder, StreamView, check_order
from risk_gate.limits import GateConfig, LimitTable
from risk_gate.reasons import STALENESS_REASONS, RefuseReason, refuse_reason_name
from risk_gate.state import RateState, Reservations
from sequencer.protocol import KIND_NAMES, Kind
from sequencer.registry import Registry, RegistryError

__all__ = ["AuditError", "AuditResult", "NOT_RECHECKED", "run_audit", "iter_journal", "recheck_records"]

NOT_RECHECKED: tuple[RefuseReason, ...] = tuple(r for r in RefuseReason if r in STALENESS_REASONS)
_NEW = int(Kind.NEW_ORDER)
_REFUSED = int(Kind.REFUSED)
_LIMIT = int(Kind.LIMIT)
_N_KINDS = max(int(k) for k in Kind) + 1
# A clock far in the past: every price age and HWM age is negative, so no staleness reason
# can fire from the clock; rates run on their own clock (``_RecordClockRates``).
_NO_CLOCK = -(2**62)
Progress = Callable[[int], None]


class AuditError(Exception):
    """The audit cannot go on (corrupt journal, a record the registry cannot place)."""


class AuditResult(NamedTuple):
    """The report and what the plots and tests need beside it."""

    report: AuditReport
    book: Book


class _RecordClockRates(RateState):
    """Rate buckets driven by the records' ``ts_ns`` rather than the ``now_ns`` of the check."""

    def __init__(self, n_accounts: int) -> None:
        super().__init__(n_accounts)
        self.clock_ns = 0

    def available(self, account: int, now_ns: int, per_sec: float, per_min: float) -> tuple[float, float]:
        return super().available(account, self.clock_ns, per_sec, per_min)


def iter_journal(path: str | Path, until: int | None) -> tuple[int, Iterator[np.ndarray]]:
    """``(last seq to be read, record chunks from seq 1)`` of the journal in ``path``.

    Raises :class:`AuditError` naming segment, offset and seq of a corrupt frame at or
    before ``until`` (before or while reading); a corrupt frame after ``until`` is never
    reached.
    """
    from sequencer.journal import JournalCorrupt, JournalError, JournalReader

    try:
        source = JournalReader(path)
    except JournalCorrupt as exc:
        if until is None or until >= exc.seq:
            raise AuditError(f"journal {path}: {exc}") from None
        source = _frames_before_corruption(Path(path))
    except (JournalError, OSError) as exc:
        raise AuditError(f"journal {path}: {exc}") from None
    # For the progress bar only: the reader raises on its own when reading reaches a corrupt
    # frame, which its visible last seq may stop short of.
    last = source.last_seq if until is None else min(until, source.last_seq)

    def chunks() -> Iterator[np.ndarray]:
        try:
            if isinstance(source, JournalReader):
                yield from source.read(1, until)
            else:
                yield from source.iter_records(1, until, True)
        except (JournalError, OSError) as exc:
            raise AuditError(f"journal {path}: {exc}") from None
        finally:
            if isinstance(source, JournalReader):
                source.close()

    return last, chunks()


def _frames_before_corruption(path: Path):  # type: ignore[no-untyped-def]
    """The journal's frames up to its first corrupt one.

    ``JournalReader`` refuses to open a journal with mid-journal corruption; its segment
    walk has indexed every good frame before the bad one when it raises, which is all an
    audit stopping before the corruption (``--until``) needs.
    """
    from sequencer.journal import JournalCorrupt
    from sequencer.journal._segments import SegmentSet

    segs = SegmentSet(path)
    try:
        segs.refresh()
    except JournalCorrupt:
        pass
    return segs


class _Acc:
    """Per-approval columns gathered over the pass (concatenated at the end)."""

    def __init__(self) -> None:
        self.cols: dict[str, list[np.ndarray]] = {k: [] for k in ("seq", "ts_ns", "instrument", "side", "price", "aux1", "aux2")}

    def add(self, rows: np.ndarray) -> None:
        for k, lst in self.cols.items():
            lst.append(np.asarray(rows[k], dtype=np.int64))

    def get(self, k: str) -> np.ndarray:
        lst = self.cols[k]
        return np.concatenate(lst) if lst else np.zeros(0, dtype=np.int64)


class _Auditor:
    """State of one audit pass (the Book, limits, rates) and its counters."""

    def __init__(self, registry: Registry, config: GateConfig | None) -> None:
        self.registry = registry
        self.book = Book(registry, capacity=1 << 16, pnl=False)  # the gate's Book: no cost basis or PnL
        self.view = BookView.from_book(self.book, registry)
        self.table = LimitTable(config, registry)
        n_accounts = registry.max_account_id + 1
        self.res = Reservations(n_accounts, self.view.stride)
        self.rates = _RecordClockRates(n_accounts)
        self.kinds = np.zeros(_N_KINDS, dtype=np.int64)
        self.refused_codes: dict[int, int] = {}
        self.epochs: set[int] = set()
        self.first_seq = 0
        self.last_seq = 0
        self.acc = _Acc()
        self.stale: list[StaleApproval] = []
        self.would_refuse: dict[str, int] = {}
        self.checked = 0

    def feed(self, chunk: np.ndarray) -> None:
        """Fold one chunk, re-checking each approval in it at its seq - 1."""
        if not len(chunk):
            return
        if not self.first_seq:
            self.first_seq = int(chunk["seq"][0])
        self.last_seq = int(chunk["seq"][-1])
        kinds = chunk["kind"]
        self.kinds += np.bincount(kinds, minlength=_N_KINDS)[:_N_KINDS]
        self.epochs.update(np.unique(chunk["epoch"]).tolist())
        refused = chunk[kinds == _REFUSED]
        if len(refused):
            codes, counts = np.unique(refused["code"], return_counts=True)
            for c, n in zip(codes.tolist(), counts.tolist()):
                self.refused_codes[c] = self.refused_codes.get(c, 0) + n
        cuts = np.flatnonzero(kinds == _NEW)
        limits = np.flatnonzero(kinds == _LIMIT)
        if not len(cuts):
            self._fold(chunk, limits, 0, len(chunk))
            return
        orders = chunk[cuts]
        self.acc.add(orders)
        rows = zip(
            cuts.tolist(), orders["seq"].tolist(), orders["ts_ns"].tolist(), orders["account"].tolist(),
            orders["instrument"].tolist(), orders["venue"].tolist(), orders["side"].tolist(),
            orders["qty"].tolist(), orders["price"].tolist(), orders["order_id"].tolist(),
            orders["aux1"].tolist(), orders["aux2"].tolist(),
        )
        prev = 0
        for j, seq, ts, account, instrument, venue, side, qty, price, order_id, applied, hwm in rows:
            if j > prev:
                self._fold(chunk, limits, prev, j)
                prev = j
            self._recheck(FixedOrder(account, instrument, venue, side, qty, price, order_id), seq, ts, applied, hwm)
        self._fold(chunk, limits, prev, len(chunk))

    def _fold(self, chunk: np.ndarray, limits: np.ndarray, lo: int, hi: int) -> None:
        if hi <= lo:
            return
        part = chunk[lo:hi]
        try:
            self.book.apply(part)
        except BookError as exc:
            raise AuditError(f"cannot fold the journal (is --config the registry it was written with?): {exc}") from None
        if len(limits) and np.searchsorted(limits, lo) != np.searchsorted(limits, hi):
            self.table.apply(part)

    def _recheck(self, o: FixedOrder, seq: int, ts: int, applied: int, hwm: int) -> None:
        self.checked += 1
        self.rates.clock_ns = ts
        found: list[tuple[RefuseReason | None, str]] = []
        # Staleness cannot be re-evaluated from the journal: the stream view says "current".
        view = StreamView(applied_seq=seq - 1, hwm=seq - 1, hwm_ts_ns=_NO_CLOCK)
        check_order(o, self.view, self.table, self.res, self.rates, view, _NO_CLOCK, collect=found)
        reasons = [(r, d) for r, d in found if r is not None and r not in STALENESS_REASONS]
        if reasons:
            reason, detail = reasons[0]
            name = reason.name
            self.would_refuse[name] = self.would_refuse.get(name, 0) + 1
            self.stale.append(
                StaleApproval(
                    order_id=o.order_id, seq=seq, ts_ns=ts,
                    account=self._account(o.account), instrument=self._instrument(o.instrument),
                    applied_seq=applied, hwm=hwm, observed_lag=hwm - applied, true_lag=seq - 1 - applied,
                    reason=name, detail=detail,
                )
            )
        self._take_rate(o, ts)

    def _take_rate(self, o: FixedOrder, ts: int) -> None:
        try:
            r = self.table.resolved(o.account, o.instrument)
        except RegistryError:
            return
        if r.rate_per_sec >= 0 or r.rate_per_min >= 0:
            self.rates.clock_ns = ts
            self.rates.take(o.account, ts, r.rate_per_sec, r.rate_per_min)

    def _account(self, aid: int) -> str:
        try:
            return self.registry.account_name(aid)
        except RegistryError:
            return str(aid)

    def _instrument(self, iid: int) -> str:
        try:
            return self.registry.instrument(iid).symbol
        except RegistryError:
            return str(iid)


def recheck_records(chunks: Iterable[np.ndarray], registry: Registry, config: GateConfig | None = None) -> _Auditor:
    """Run the pass over in-memory chunks (for tests and benchmarks); returns the auditor state."""
    aud = _Auditor(registry, config)
    for chunk in chunks:
        aud.feed(chunk)
    return aud


def _fill_prices(book: Book, seq: np.ndarray, price_ticks: np.ndarray, instrument: np.ndarray, registry: Registry) -> np.ndarray:
    """Execution price of each approval in instrument units: average fill, else limit, else NaN."""
    orders = book.live_orders()
    out = np.full(len(seq), np.nan)
    if len(orders):
        # Rows are in creation order, which is seq order; an approval's row has its seq.
        idx = np.clip(np.searchsorted(orders["seq"], seq), 0, len(orders) - 1)
        row = orders[idx]
        mine = row["seq"] == seq
        filled = mine & (row["cum"] > 0)
        out[filled] = row["notional"][filled] / row["cum"][filled]
    limit = np.isnan(out) & (price_ticks > 0)
    out[limit] = price_ticks[limit]
    ticks = np.zeros(int(instrument.max(initial=0)) + 1)
    for inst in registry.instruments:
        if inst.id < len(ticks):
            ticks[inst.id] = float(inst.tick)
    return out * ticks[instrument]


def run_audit(
    chunks: Iterable[np.ndarray],
    registry: Registry,
    config: GateConfig | None = None,
    *,
    until: int | None = None,
    prices: dict[int, PricePath] | None = None,
    horizons: list[tuple[str, int]] | None = None,
    progress: Progress | None = None,
) -> AuditResult:
    """Audit the records of ``chunks`` (seq order from seq 1) and build the report."""
    aud = _Auditor(registry, config)
    for chunk in chunks:
        aud.feed(chunk)
        if progress is not None:
            progress(aud.last_seq)
    return AuditResult(_build_report(aud, until, prices, horizons), aud.book)


def _build_report(
    aud: _Auditor, until: int | None, prices: dict[int, PricePath] | None, horizons: list[tuple[str, int]] | None
) -> AuditReport:
    seq = aud.acc.get("seq")
    applied = aud.acc.get("aux1")
    hwm = aud.acc.get("aux2")
    observed = hwm - applied
    true = seq - 1 - applied
    impossible = int(((true < 0) | (observed < 0)).sum())
    approved = int(aud.kinds[_NEW])
    by_reason = {r.name: 0 for r in RefuseReason}
    for code, n in sorted(aud.refused_codes.items()):
        name = refuse_reason_name(code)
        by_reason[name] = by_reason.get(name, 0) + n
    would = {r.name: aud.would_refuse.get(r.name, 0) for r in RefuseReason if r not in STALENESS_REASONS}
    n_stale = len(aud.stale)
    behind = int((true > 0).sum())
    max_true = int(true.max(initial=0))
    markout = None
    if prices is not None and horizons:
        instrument = aud.acc.get("instrument")
        px = _fill_prices(aud.book, seq, aud.acc.get("price"), instrument, aud.registry)
        markout = compute_markouts(aud.acc.get("ts_ns"), instrument, aud.acc.get("side"), px, true, prices, horizons)
    return AuditReport(
        version=REPORT_VERSION,
        first_seq=aud.first_seq,
        last_seq=aud.last_seq,
        until=until,
        events=int(aud.kinds.sum()),
        events_by_kind={KIND_NAMES.get(k, f"unknown({k})"): int(n) for k, n in enumerate(aud.kinds.tolist()) if n},
        epochs=sorted(aud.epochs),
        decisions=Decisions(approved=approved, refused=int(aud.kinds[_REFUSED]), refused_by_reason=by_reason),
        max_observed_lag=int(observed.max(initial=0)),
        max_true_lag=max_true,
        stale_approvals=aud.stale,
        recheck=Recheck(
            checked=aud.checked,
            clean=aud.checked - n_stale,
            would_refuse=n_stale,
            would_refuse_by_reason=would,
            reasons_not_rechecked=[r.name for r in NOT_RECHECKED],
            approvals_behind=behind,
            impossible_lags=impossible,
        ),
        lag_histogram=[LagBucket(lo=lo, hi=hi, observed=o, true=t) for lo, hi, o, t in lag_histogram_counts(observed, true)],
        limit_changes=aud.table.changes,
        anomalies=aud.book.n_anomalies,
        verdict=make_verdict(approved, behind, max_true, n_stale),
        markout_by_lag_bucket=markout,
    )

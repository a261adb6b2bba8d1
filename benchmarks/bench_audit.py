"""Replay and audit benchmarks (issue: "Replay folds >= 5M events/s from disk; audit of a
10M-event journal with 1M decisions completes in under 60 s").

The journal is synthetic and written to ``ctx.tmpdir`` with durability ``none`` in frames of
4096 records: per order 10 events (an approval, an ack, two fills, six reference prices),
so one event in ten is a decision; approvals are made at true lag 0..3 and a limit set
(order qty, position, open orders, collar) is in force, so every re-check runs every check.

* ``replay_book_fold_from_disk``: ``JournalReader.read`` + ``Book.apply`` per chunk, events/s;
  reference ``journal_read_numpy_views``: the same read with nothing folded (the floor).
* ``audit_<n>_events_<m>_decisions``: wall seconds of the whole audit pass (read, fold in
  batches cut at every approval, re-check each approval, build the report; no plots);
  reference: the replay fold of the same journal, in seconds.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from sequencer.protocol import RECORD_DTYPE, Kind, encode_frame

PER_ORDER = 10
FRAME = 4096


def _block(first_order: int, n_orders: int) -> np.ndarray:
    """Records of ``n_orders`` orders (10 events each), seqs from ``first_order * 10 + 1``."""
    n = n_orders * PER_ORDER
    recs = np.zeros(n, RECORD_DTYPE)
    base = first_order * PER_ORDER
    recs["seq"] = np.arange(base + 1, base + n + 1)
    recs["ts_ns"] = 1_704_067_200_000_000_000 + recs["seq"] * 1_000
    recs["epoch"] = 1
    oid = np.repeat(np.arange(first_order + 1, first_order + n_orders + 1), PER_ORDER)
    step = np.tile(np.arange(PER_ORDER), n_orders)
    kinds = np.array([Kind.NEW_ORDER, Kind.ACK, Kind.FILL, Kind.FILL] + [Kind.PRICE] * 6)
    recs["kind"] = kinds[step]
    inst = 1 + oid % 2
    order_rows = step != 4
    order_rows &= step < 4
    recs["order_id"] = np.where(order_rows, oid, 0)
    recs["account"] = np.where(order_rows, 1 + (oid // 2) % 2, 0)
    recs["venue"] = np.where(order_rows, 1, 0)
    recs["side"] = np.where(order_rows, 1 + oid % 4 // 2, 0)
    recs["instrument"] = inst
    recs["qty"] = np.where(step == 0, 20, np.where((step == 2) | (step == 3), 10, 0))
    recs["price"] = np.where(step == 0, 10_000, np.where(step >= 2, 10_000 + step % 3, 0))
    seq = recs["seq"]
    lag = oid % 4
    recs["aux1"] = np.where(step == 0, seq - 1 - lag, np.where((step == 2) | (step == 3), oid * 2 + step, 0))
    recs["aux2"] = np.where(step == 0, seq - 1, 0)
    recs["producer"] = np.where(step == 0, 11, 22)
    recs["producer_seq"] = seq
    return recs


def write_journal(path: Any, n_orders: int) -> int:
    """Write the synthetic journal; returns its event count."""
    from sequencer.journal import Journal

    j = Journal.open(path, durability="none", segment_bytes=256 << 20)
    try:
        epoch = j.next_epoch()
        done = 0
        while done < n_orders:
            k = min(100_000, n_orders - done)
            recs = _block(done, k)
            recs["epoch"] = epoch
            for lo in range(0, len(recs), FRAME):
                part = recs[lo : lo + FRAME]
                j.append(encode_frame(part, epoch=epoch), int(part["seq"][0]), len(part), epoch)
            done += k
        j.sync()
    finally:
        j.close()
    return n_orders * PER_ORDER


def _config() -> Any:
    from risk_gate.limits import GateConfig

    return GateConfig(max_order_qty="1", max_position="1000000", max_open_orders=1_000_000, price_collar_bps=1000)


def run(ctx: Any) -> list[dict[str, Any]]:
    from consumers.book import Book
    from risk_gate.audit.recheck import iter_journal, run_audit
    from sequencer.journal import JournalReader
    from sequencer.registry import default_registry

    reg = default_registry()
    n_orders = ctx.size(20_000, 1_000_000)
    jdir = ctx.tmpdir / "journal"
    t0 = time.perf_counter()
    n = write_journal(jdir, n_orders)
    write_s = time.perf_counter() - t0

    def read_only() -> None:
        r = JournalReader(jdir)
        total = 0
        for chunk in r.read(1, None):
            total += len(chunk)
        r.close()
        assert total == n

    def fold() -> None:
        r = JournalReader(jdir)
        book = Book(reg, capacity=n_orders + 1)
        for chunk in r.read(1, None):
            book.apply(chunk)
        r.close()
        assert book.applied_seq == n

    # Compile the kernels before timing (numba cache may be cold).
    fold_small = Book(reg)
    fold_small.apply(_block(0, 10))
    repeats = ctx.repeats if ctx.quick else 3
    read_stats = ctx.measure_rate(read_only, n, repeats=repeats, warmup=1)
    fold_stats = ctx.measure_rate(fold, n, repeats=repeats, warmup=1 if ctx.quick else 0)
    read_row = ctx.result(
        "journal_read_numpy_views", read_stats, "events/s", higher_is_better=True,
        note=f"{n} events in frames of {FRAME}, page cache warm; JournalReader.read only",
    )
    fold_row = ctx.result(
        "replay_book_fold_from_disk", fold_stats, "events/s", higher_is_better=True, reference=read_row,
        target=">= 5M events/s",
        note=f"{n} events ({n // PER_ORDER} orders); JournalReader.read + Book.apply per chunk; journal written in {write_s:.1f} s",
    )

    def audit() -> None:
        _, chunks = iter_journal(jdir, None)
        rep = run_audit(chunks, reg, _config()).report
        assert rep.decisions.approved == n_orders

    audit_run = 1 if not ctx.quick else repeats
    audit_stats = ctx.measure(audit, repeats=audit_run, warmup=0)
    fold_s = n / fold_stats.value
    scale = "" if not ctx.quick else f"; QUICK MODE: scaled down to {n} events / {n_orders} decisions (target is for 10M / 1M)"
    audit_row = ctx.result(
        f"audit_{_short(n)}_events_{_short(n_orders)}_decisions", audit_stats, "s", higher_is_better=False,
        reference="replay_book_fold_seconds_same_journal", reference_value=fold_s, target="< 60 s",
        note=f"one pass, every approval re-checked with risk_gate.checks.check_order, no plots{scale}; "
        f"measured {audit_run} time(s)",
    )
    return [read_row, fold_row, audit_row]


def _short(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)

"""Fold benchmarks: the position kernel (the gate's Book), the OMS fold and Book snapshots.

The ``book_fold_*`` rows fold a ``BookFold(pnl=False)``: the shared position kernel as the
gate keeps it (positions, open quantities, orders, trade ids, prices, trading states; no
cost basis or realized PnL). The ``oms_fold_*`` rows fold the same streams through
``Oms.apply``, whose Book also keeps the average-cost basis and realized PnL.

* ``book_fold_fill_uniform_100k_live_batch4096``: fills (sequential trade ids) on orders drawn
  uniformly from 100k live orders: the worst case, every fill a cache miss on the order
  index and on the order row.
* ``book_fold_fill_recent_100k_live_batch4096``: the realistic topology: every 4th event is
  a new order (increasing ids), fills (sequential trade ids) hit one of the 1000 most
  recently created orders, 100k older orders stay live.
* ``book_fold_mix_batch4096`` / ``oms_fold_mix_100k_live_orders``: a realistic mix, per
  order: new, ack, a partial fill, then a cancel or the final fill (1/4 of events each),
  interleaved so that ~100k orders are live throughout.
* ``oms_fold_{fill_uniform,fill_recent}_100k_live_batch4096``: the two fill streams through
  ``Oms.apply``. The OMS fold is the Book fold with PnL (queries are not on the fold path).

Every Book row times ``fold.apply`` per batch: ``check_batch``, table growth and the kernel.
Folds start at the default capacity, and orders are never removed from the order table,
so in the mix the order table and index grow from 100k to 1.1M orders (4M events) inside
the timing. The default registry (2 accounts, 3 instruments, 2 venues) keeps the position
arrays in L1: the cost measured is the order lifecycle (order index, order rows, trade-id
set), not position lookups in a large account x instrument table.
* Reference (same run): ``position_only_fold_njit``, a trivial numba loop that only adds
  signed fill quantities to ``pos[account, instrument]`` over the same records: the floor
  of reading the records at all.
* ``book_snapshot_restore_1m_positions``: snapshot + restore of a Book with 1000 accounts x
  1000 instruments, beside raw ``ndarray.tofile`` + ``np.fromfile`` of the same bytes.
"""

from __future__ import annotations

from decimal import Decimal
from functools import partial
from typing import Any

import numpy as np
from numba import njit

from consumers.fold import BookFold
from oms.oms import Oms
from sequencer.protocol import RECORD_DTYPE, Kind
from sequencer.registry import Instrument, Registry

BATCH = 4096
LIVE = 100_000
_POSITION_KERNEL = partial(BookFold, pnl=False)
_KERNEL_NOTE = "BookFold(pnl=False), the gate's Book"


@njit(cache=True)
def _position_only(recs, pos):
    for r in range(len(recs)):
        rec = recs[r]
        if rec.kind == 5:
            pos[rec.account, rec.instrument] += rec.qty if rec.side == 1 else -rec.qty


def _orders(n: int, first_id: int, seq0: int) -> np.ndarray:
    recs = np.zeros(n, RECORD_DTYPE)
    ids = np.arange(first_id, first_id + n)
    recs["seq"] = np.arange(seq0, seq0 + n)
    recs["kind"] = Kind.NEW_ORDER
    recs["order_id"] = ids
    recs["account"] = 1 + ids % 2
    recs["instrument"] = 1 + ids % 3
    recs["venue"] = 1 + ids % 2
    recs["side"] = 1 + (ids // 7) % 2
    recs["qty"] = 1_000
    recs["price"] = 5_000_000
    return recs


def fill_uniform(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(prefill of LIVE new orders, n fills on random live orders with unique trade ids)."""
    rng = np.random.default_rng(seed)
    pre = _orders(LIVE, 1, 1)
    pre["qty"] = 10**9  # never completes
    recs = np.zeros(n, RECORD_DTYPE)
    oid = rng.integers(1, LIVE + 1, n)
    recs["seq"] = np.arange(LIVE + 1, LIVE + 1 + n)
    recs["kind"] = Kind.FILL
    recs["order_id"] = oid
    recs["account"] = 1 + oid % 2
    recs["instrument"] = 1 + oid % 3
    recs["venue"] = 1 + oid % 2
    recs["side"] = 1 + (oid // 7) % 2
    recs["qty"] = rng.integers(1, 10, n)
    recs["price"] = 5_000_000 + rng.integers(-500, 500, n)
    recs["aux1"] = np.arange(1, n + 1)
    return pre, recs


def fill_recent(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(prefill of LIVE new orders, n events: every 4th a new order, the rest fills on one of the 1000 newest orders)."""
    rng = np.random.default_rng(seed)
    pre = _orders(LIVE, 1, 1)
    pre["qty"] = 10**9
    stream = np.zeros(n, RECORD_DTYPE)
    new = _orders(len(stream[0::4]), LIVE + 1, 0)
    new["qty"] = 10**9
    stream[0::4] = new
    at = np.nonzero(np.arange(n) % 4 != 0)[0]
    oid = LIVE + at // 4 - rng.integers(0, 1000, len(at))
    fills = np.zeros(len(at), RECORD_DTYPE)
    fills["kind"] = Kind.FILL
    fills["order_id"] = oid
    fills["account"] = 1 + oid % 2
    fills["instrument"] = 1 + oid % 3
    fills["venue"] = 1 + oid % 2
    fills["side"] = 1 + (oid // 7) % 2
    fills["qty"] = rng.integers(1, 10, len(at))
    fills["price"] = 5_000_000 + rng.integers(-500, 500, len(at))
    fills["aux1"] = np.arange(1, len(at) + 1)
    stream[at] = fills
    stream["seq"] = np.arange(LIVE + 1, LIVE + 1 + n)
    return pre, stream


def mix(n_orders: int) -> tuple[np.ndarray, np.ndarray]:
    """(prefill, stream): per step t, new order t, ack t-1000, partial fill t-50k, cancel or final fill t-100k."""
    steps = n_orders
    lag_ack, lag_fill, lag_end = 1_000, LIVE // 2, LIVE
    pre = np.zeros(0, RECORD_DTYPE)
    # Prefill: LIVE orders already in flight, each already acked/partially filled as the lags say.
    warm = _orders(LIVE, 1, 1)
    stream = np.zeros(4 * steps, RECORD_DTYPE)
    t = np.arange(steps) + LIVE + 1  # new order ids
    new = _orders(steps, LIVE + 1, 0)
    stream[0::4] = new
    for k, (lag, kind) in enumerate(((lag_ack, Kind.ACK), (lag_fill, Kind.FILL), (lag_end, Kind.CANCEL)), start=1):
        oid = t - lag
        sl = stream[k::4]
        sl["kind"] = kind
        sl["order_id"] = oid
        sl["account"] = 1 + oid % 2
        sl["instrument"] = 1 + oid % 3
        sl["venue"] = 1 + oid % 2
        sl["side"] = 1 + (oid // 7) % 2
        if kind == Kind.FILL:
            sl["qty"] = 400
            sl["price"] = 5_000_000 + (oid % 101) - 50
            sl["aux1"] = oid
    # Every other order ends with its final fill instead of a cancel.
    final = stream[3::4]
    final_fill = (final["order_id"] % 2) == 0
    final["kind"] = np.where(final_fill, Kind.FILL, Kind.CANCEL)
    final["qty"] = np.where(final_fill, 600, 0)
    final["price"] = np.where(final_fill, 5_000_010, 0)
    final["aux1"] = np.where(final_fill, final["order_id"] + 10**12, 0)
    pre = warm
    stream["seq"] = np.arange(LIVE + 1, LIVE + 1 + len(stream))
    return pre, stream


def _fold_rate(ctx: Any, make, pre: np.ndarray, stream: np.ndarray):
    def one() -> float:
        import time

        fold = make()
        fold.apply(pre)
        t0 = time.perf_counter()
        for lo in range(0, len(stream), BATCH):
            fold.apply(stream[lo : lo + BATCH])
        return len(stream) / (time.perf_counter() - t0)

    return ctx.measure(one)


def _floor_rate(ctx: Any, stream: np.ndarray):
    pos = np.zeros((3, 4), np.int64)

    def one() -> float:
        import time

        t0 = time.perf_counter()
        for lo in range(0, len(stream), BATCH):
            _position_only(stream[lo : lo + BATCH], pos)
        return len(stream) / (time.perf_counter() - t0)

    return ctx.measure(one)


def _big_registry(n_acc: int, n_ins: int) -> Registry:
    instruments = tuple(Instrument(f"I{k}", k, Decimal("0.01"), Decimal("0.001")) for k in range(1, n_ins))
    return Registry(instruments, {f"a{k}": k for k in range(1, n_acc)}, {"v1": 1, "v2": 2})


def run(ctx: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    n = ctx.size(200_000, 4_000_000)
    for topology, make_stream, what in (
        ("fill_uniform", fill_uniform, f"fills (sequential trade ids) on orders drawn uniformly from {LIVE} live orders"),
        ("fill_recent", fill_recent, f"every 4th event a new order, the rest fills (sequential trade ids) on the 1000 newest orders; {LIVE} older orders live"),
    ):
        pre, events = make_stream(n)
        floor = ctx.result(f"position_only_fold_njit_{topology}", _floor_rate(ctx, events), "events/s", higher_is_better=True,
                           note="trivial numba loop adding signed fill qty to pos[a, i]: the floor of reading the records")
        rows.append(floor)
        note = f"{len(events)} events: {what}; batches of {BATCH}; includes check_batch and table growth"
        rows.append(ctx.result(
            f"book_fold_{topology}_100k_live_batch{BATCH}", _fold_rate(ctx, _POSITION_KERNEL, pre, events), "events/s",
            higher_is_better=True, reference=floor, target=">= 20M events/s", note=f"{_KERNEL_NOTE}; {note}",
        ))
        rows.append(ctx.result(
            f"oms_fold_{topology}_100k_live_batch{BATCH}", _fold_rate(ctx, Oms, pre, events), "events/s",
            higher_is_better=True, reference=floor, target=">= 2M events/s",
            note=f"through Oms.apply (average-cost basis and realized PnL too); {note}",
        ))
    pre, stream = mix(ctx.size(50_000, 1_000_000))
    floor = ctx.result("position_only_fold_njit_mix", _floor_rate(ctx, stream), "events/s", higher_is_better=True,
                       note="same trivial loop over the mix stream")
    rows.append(floor)
    note = (f"{len(stream)} events: new/ack/partial fill/cancel-or-final-fill, ~{LIVE} live orders, batches of {BATCH};"
            f" order table grows {LIVE} -> {LIVE + len(stream) // 4} orders inside the timing; includes check_batch")
    rows.append(ctx.result("book_fold_mix_batch4096", _fold_rate(ctx, _POSITION_KERNEL, pre, stream), "events/s",
                           higher_is_better=True, reference=floor, target=">= 20M events/s", note=f"{_KERNEL_NOTE}; {note}"))
    rows.append(ctx.result("oms_fold_mix_100k_live_orders", _fold_rate(ctx, Oms, pre, stream), "events/s", higher_is_better=True,
                           reference=floor, target=">= 2M events/s",
                           note=note + "; through Oms.apply (average-cost basis and realized PnL too)"))
    rows.extend(_snapshot_rows(ctx))
    return rows


def _snapshot_rows(ctx: Any) -> list[dict[str, Any]]:
    n_acc, n_ins = (101, 1001) if ctx.quick else (1001, 1001)
    reg = _big_registry(n_acc, n_ins)
    fold = BookFold(reg)
    rng = np.random.default_rng(2)
    b = fold.book
    b.vpos[:, 1, :] = rng.integers(-1000, 1000, b.pos.shape)
    b.pos[...] = b.vpos.sum(axis=1)
    b.cost[...] = b.pos * 5000
    path = ctx.tmpdir / "book.snap"
    positions = (n_acc - 1) * (n_ins - 1)

    def snap_restore() -> None:
        fold.snapshot(path)
        BookFold(reg).restore(path)

    raw = ctx.tmpdir / "raw.bin"
    arrays = list(fold.book.state_arrays().values())

    def raw_io() -> None:
        with open(raw, "wb") as fh:
            for a in arrays:
                a.tofile(fh)
        np.fromfile(raw, dtype=np.uint8)

    ref = ctx.result("raw_tofile_fromfile_same_bytes", ctx.measure(raw_io), "s", higher_is_better=False,
                     note="ndarray.tofile of the Book arrays + np.fromfile of the file")
    row = ctx.result("book_snapshot_restore_1m_positions" if not ctx.quick else "book_snapshot_restore_100k_positions",
                     ctx.measure(snap_restore), "s", higher_is_better=False, reference=ref, target="< 1 s",
                     note=f"{positions} positions ({n_acc}x{n_ins}x3 vpos); snapshot (npz + fsync + rename) then restore into a new BookFold")
    return [ref, row]


if __name__ == "__main__":  # pragma: no cover - manual run
    import json
    import tempfile
    from pathlib import Path

    from benchmarks.harness import Context

    with tempfile.TemporaryDirectory() as tmp:
        for r in run(Context(quick=False, tmpdir=Path(tmp), repeats=3)):
            print(json.dumps({k: r[k] for k in ("name", "value", "unit", "min", "max", "reference_value")}))

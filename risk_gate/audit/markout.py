"""Markout of approvals by lag bucket.

Definition (docs/audit.md): for an approved order of instrument ``i`` stamped at ``t``
(the ``new_order`` record's ``ts_ns``) with execution price ``p`` (its volume-weighted
average fill price over the replayed journal, or its limit price when it never filled;
unfilled market orders have no price and are left out), the markout at horizon ``h`` is::

    buy:   (mid_i(t + h) - p) / p * 10_000   bps
    sell:  (p - mid_i(t + h)) / p * 10_000   bps

where ``mid_i(x)`` is the last mid of ``i`` in the prices file at or before ``x``. An order
is left out of a horizon when the prices file has no row of ``i`` at or before ``t + h`` or
when ``t + h`` is after the last row of ``i`` (the path does not cover that instant).
Positive markout means the price moved in the order's favour.
"""

from __future__ import annotations

import numpy as np

from risk_gate.audit.buckets import MARKOUT_BUCKETS, markout_bucket
from risk_gate.audit.prices import PricePath
from risk_gate.audit.report import Markout, MarkoutBucket, MarkoutCell

__all__ = ["compute_markouts", "markout_bps"]


def markout_bps(side: np.ndarray, price: np.ndarray, mid: np.ndarray) -> np.ndarray:
    """Markout in bps of each order (side 1 buy, 2 sell) against ``mid``."""
    sign = np.where(np.asarray(side) == 2, -1.0, 1.0)
    return sign * (mid - price) / price * 1e4


def compute_markouts(
    ts_ns: np.ndarray,
    instrument: np.ndarray,
    side: np.ndarray,
    price: np.ndarray,
    true_lag: np.ndarray,
    prices: dict[int, PricePath],
    horizons: list[tuple[str, int]],
) -> Markout:
    """Mean markout per horizon per lag bucket; ``price`` is NaN for orders without one."""
    ts_ns = np.asarray(ts_ns, dtype=np.int64)
    instrument = np.asarray(instrument, dtype=np.int64)
    price = np.asarray(price, dtype=np.float64)
    priced = np.isfinite(price) & (price > 0)
    bucket = markout_bucket(true_lag)
    nb = len(MARKOUT_BUCKETS)
    sums = np.zeros((len(horizons), nb))
    counts = np.zeros((len(horizons), nb), dtype=np.int64)
    for hi, (_, h_ns) in enumerate(horizons):
        mk = np.full(len(ts_ns), np.nan)
        for iid, path in prices.items():
            sel = np.flatnonzero(priced & (instrument == iid))
            if not len(sel):
                continue
            mid, known = path.asof(ts_ns[sel] + h_ns)
            sel, mid = sel[known], mid[known]
            mk[sel] = markout_bps(side[sel], price[sel], mid)
        ok = np.isfinite(mk)
        # bincount adds in index order, so the sums are the same on every run.
        sums[hi] = np.bincount(bucket[ok], weights=mk[ok], minlength=nb)
        counts[hi] = np.bincount(bucket[ok], minlength=nb)
    orders = np.bincount(bucket[priced], minlength=nb)
    out = []
    for b, (name, lo, hi_) in enumerate(MARKOUT_BUCKETS):
        if not orders[b]:
            continue
        cells = {
            label: MarkoutCell(
                count=int(counts[h, b]),
                mean_bps=round(float(sums[h, b] / counts[h, b]), 4) if counts[h, b] else None,
            )
            for h, (label, _) in enumerate(horizons)
        }
        out.append(MarkoutBucket(bucket=name, lo=lo, hi=hi_, orders=int(orders[b]), horizons=cells))
    return Markout(
        horizons=[label for label, _ in horizons],
        horizons_ns=[ns for _, ns in horizons],
        priced_orders=int(priced.sum()),
        unpriced_orders=int((~priced).sum()),
        buckets=out,
    )

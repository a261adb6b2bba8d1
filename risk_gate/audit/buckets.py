"""Lag buckets: powers of two for the lag histogram, decades for markout by lag.

Histogram bucket ``k`` holds lags ``[2**(k-1), 2**k - 1]`` (bucket 0 holds lag 0 alone), so
one chart spans lag 1 to millions. Markout buckets are coarser (0, 1-9, 10-99, 100-999,
1000+) because each needs enough orders for a mean to mean something.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "histogram_bucket",
    "histogram_bounds",
    "lag_histogram_counts",
    "MARKOUT_BUCKETS",
    "markout_bucket",
]

MARKOUT_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0", 0, 0),
    ("1-9", 1, 9),
    ("10-99", 10, 99),
    ("100-999", 100, 999),
    ("1000+", 1000, None),
)


def histogram_bucket(lags: np.ndarray) -> np.ndarray:
    """Histogram bucket index of each lag (negative lags count as 0): its bit length."""
    lag = np.maximum(np.asarray(lags, dtype=np.int64), 0)
    out = np.zeros(len(lag), dtype=np.int64)
    pos = lag > 0
    # frexp gives the exact binary exponent of every int below 2**53: 2**(e-1) <= x < 2**e.
    out[pos] = np.frexp(lag[pos].astype(np.float64))[1]
    return out


def histogram_bounds(k: int) -> tuple[int, int]:
    """Inclusive ``(lo, hi)`` lags of histogram bucket ``k``."""
    if k == 0:
        return 0, 0
    return 1 << (k - 1), (1 << k) - 1


def lag_histogram_counts(observed: np.ndarray, true: np.ndarray) -> list[tuple[int, int, int, int]]:
    """``[(lo, hi, observed_count, true_count)]`` for every bucket from 0 to the largest used."""
    bo, bt = histogram_bucket(observed), histogram_bucket(true)
    n = int(max(bo.max(initial=0), bt.max(initial=0))) + 1 if len(bo) or len(bt) else 0
    co = np.bincount(bo, minlength=n)
    ct = np.bincount(bt, minlength=n)
    return [(*histogram_bounds(k), int(co[k]), int(ct[k])) for k in range(n)]


def markout_bucket(lags: np.ndarray) -> np.ndarray:
    """Index into :data:`MARKOUT_BUCKETS` of each lag (negative lags count as 0)."""
    lag = np.maximum(np.asarray(lags, dtype=np.int64), 0)
    edges = np.array([1, 10, 100, 1000], dtype=np.int64)
    return np.searchsorted(edges, lag, side="right")

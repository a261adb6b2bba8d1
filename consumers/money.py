"""Exact money for the Book kernel: average-cost position arithmetic in int64.

Position ``pos`` in lots, cost basis ``cost`` and realized PnL ``rpnl`` in ticks x lots,
average-cost method. When a position is reduced by ``q`` lots, the cost removed is
``floor(cost * q / |pos|)`` (:func:`muldiv_floor`, exact and without overflow); closing the
whole position removes the whole cost, so a round trip back to flat realizes exactly
``sum(sells) - sum(buys)``. Both functions are ``inline="always"``: the kernel
(``consumers.kernels``) compiles them into its loop.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["muldiv_floor", "moved"]

_EXACT_FLOAT = 2**53  # integers below this are exact doubles


@njit(cache=True, inline="always")
def muldiv_floor(c, q, d):
    """``floor(c * q / d)`` for ``q >= 0``, ``d > 0``.

    Exact when ``c * q`` fits in int64, or when ``q <= d`` and ``d * q < 2**63``.

    64-bit integer divisions cost 40-90 cycles each, so: closing all of ``d`` is ``c`` itself.
    When ``c * q`` surely fits in int64 (the float estimate, off by far less than its margin,
    is under 4e18 < 2**63) ``n = c * q`` is exact; if moreover ``d < 2**53`` (an exact
    double) and the quotient is under ~1e15, a float division: ``float(n) / d`` is within a
    relative 2**-52 of ``n / d``, i.e. within 0.25 of it, so its floor ``k`` is the true floor
    or one off either way, and the exact int64 remainder ``n - k * d`` says which. Otherwise
    one integer floor division, or, when ``c * q`` could overflow, the split form, which only
    forms ``c // d * q`` (at most ``|c|`` when ``q <= d``) and ``(c % d) * q < d * q``.
    """
    if q == d:
        return c
    est = abs(float(c)) * float(q)
    if est < 4.0e18:
        n = c * q
        if d < _EXACT_FLOAT and est < 1.0e15 * float(d):
            k = np.int64(np.floor(float(n) / float(d)))
            r = n - k * d
            if r < 0:
                return k - 1
            return k + 1 if r >= d else k
        return n // d
    return c // d * q + (c % d) * q // d


@njit(cache=True, inline="always")
def moved(p, c, dq, px):
    """``(cost, realized)`` after a signed fill of ``dq`` lots at ``px`` ticks on position ``p``
    with cost ``c`` (average-cost method): the new cost basis and the PnL it realizes."""
    if p == 0 or (p > 0) == (dq > 0):
        return c + px * dq, 0
    ap = abs(p)
    close = min(ap, abs(dq))
    removed = muldiv_floor(c, close, ap)
    realized = (px * close if p > 0 else -px * close) - removed
    if abs(dq) > ap:
        return px * (p + dq), realized
    return c - removed, realized

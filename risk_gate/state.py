"""The gate's own state beside the Book: local reservations and per-account rate buckets.

Both keep numpy arrays (indexed by ``account * stride + instrument`` or by account) that the
check kernel (:mod:`risk_gate.kernel`) reads and updates in place; the methods here are the
reference the kernel is tested against, and what the audit and the reference path use.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from sequencer.protocol import Side

__all__ = ["Reservation", "Reservations", "RateState"]

_BUY = int(Side.BUY)


class Reservation(NamedTuple):
    """One approval not yet seen back on the stream."""

    order_id: int
    account: int
    instrument: int
    side: int
    qty: int
    price: int


class Reservations:
    """Approvals of this gate that the stream has not yet shown back (worst-case exposure).

    ``by_id`` maps each reserved order id to its order, a tuple in
    :class:`~risk_gate.checks.FixedOrder`'s field order (the gate stores the FixedOrder it
    checked, so approving costs no tuple building). ``buy[k]``/``sell[k]`` are reserved lots
    per ``k = account * stride + instrument``, ``count[account]`` the number of reserved orders.
    An order leaves ``by_id`` through :meth:`release` (seen on the stream; counted in
    ``released``) or :meth:`withdraw` (its approval was taken back), so :attr:`total` counts
    every reservation ever made without a counter on the approval path.
    """

    def __init__(self, n_accounts: int, stride: int) -> None:
        self.stride = stride
        self.by_id: dict[int, tuple[int, int, int, int, int, int, int]] = {}
        self.buy = np.zeros(n_accounts * stride, dtype=np.int64)
        self.sell = np.zeros(n_accounts * stride, dtype=np.int64)
        self.count = np.zeros(n_accounts, dtype=np.int64)
        self.released = 0

    @property
    def total(self) -> int:
        """Reservations made and not withdrawn: those held now plus those released."""
        return len(self.by_id) + self.released

    def __len__(self) -> int:
        return len(self.by_id)

    def __contains__(self, order_id: int) -> bool:
        return order_id in self.by_id

    def add(self, order: tuple[int, int, int, int, int, int, int]) -> None:
        """Reserve an approved order (a FixedOrder: account, instrument, venue, side, qty, price, order_id)."""
        account, instrument, _venue, side, qty, _price, order_id = order
        self.by_id[order_id] = order
        k = account * self.stride + instrument
        if side == _BUY:
            self.buy[k] += qty
        else:
            self.sell[k] += qty
        self.count[account] += 1

    def release(self, order_id: int) -> Reservation | None:
        """Drop a reservation (its order is now in the Book); ``None`` if it was not reserved."""
        r = self.withdraw(order_id)
        if r is not None:
            self.released += 1
        return r

    def withdraw(self, order_id: int) -> Reservation | None:
        """Drop a reservation whose approval was taken back (not counted in ``total``); ``None`` if none."""
        t = self.by_id.pop(order_id, None)
        if t is None:
            return None
        account, instrument, _venue, side, qty, price, oid = t
        r = Reservation(oid, account, instrument, side, qty, price)
        k = account * self.stride + instrument
        if side == _BUY:
            self.buy[k] -= qty
        else:
            self.sell[k] -= qty
        self.count[account] -= 1
        return r


class RateState:
    """Token buckets per account: one per second and one per minute, full at start.

    A bucket holds at most its rate (orders per second / per minute) and refills
    continuously; a token is taken only when an order is approved.
    """

    def __init__(self, n_accounts: int) -> None:
        self.sec = np.full(n_accounts, -1.0)  # -1 = full (never used)
        self.min = np.full(n_accounts, -1.0)
        self.last_ns = np.zeros(n_accounts, dtype=np.int64)

    def available(self, account: int, now_ns: int, per_sec: float, per_min: float) -> tuple[float, float]:
        """Tokens in the two buckets at ``now_ns`` (without taking any)."""
        last = self.last_ns[account]
        dt = (now_ns - last) * 1e-9 if now_ns > last else 0.0
        return _refill(self.sec[account], dt * per_sec, per_sec), _refill(self.min[account], dt * per_min / 60.0, per_min)

    def take(self, account: int, now_ns: int, per_sec: float, per_min: float) -> None:
        """Take one token from each bucket that has a rate set (``< 0`` = no limit)."""
        s, m = self.available(account, now_ns, per_sec, per_min)
        if now_ns > self.last_ns[account]:
            self.last_ns[account] = now_ns
        self.sec[account] = s - 1.0 if per_sec >= 0 else -1.0
        self.min[account] = m - 1.0 if per_min >= 0 else -1.0


def _refill(tokens: float, gain: float, rate: float) -> float:
    """A bucket after refilling by ``gain`` tokens, capped at ``rate`` (``tokens < 0`` = never used: full)."""
    if tokens < 0:
        return rate
    tokens += gain
    return rate if tokens > rate else tokens

"""Orders as a strategy writes them, and their conversion to registry ids and fixed point."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from risk_gate.checks import FixedOrder
from sequencer.registry import Registry, RegistryError, to_decimal

__all__ = ["Order", "Decision", "to_fixed", "FixedConverter"]

_SIDES = {"buy": 1, "sell": 2, "BUY": 1, "SELL": 2, 1: 1, 2: 2}


class Order(msgspec.Struct, frozen=True, gc=False):
    """An order to check. Names (or registry ids) for account, instrument and venue; ``side``
    ``"buy"``/``"sell"``; ``qty`` and ``price`` as decimals (str, Decimal, int or float) in the
    instrument's units, ``price=None`` for a market order; ``order_id`` the client order id (> 0).
    """

    account: str | int
    instrument: str | int
    venue: str | int
    side: str | int
    qty: str | int | float | Decimal
    price: str | int | float | Decimal | None = None
    order_id: int = 0


class Decision(msgspec.Struct, frozen=True, gc=False):
    """The gate's answer: approved, or refused with a reason and detail, and how current it was.

    ``hwm`` is ``max(newest heartbeat HWM, applied_seq)`` (the heartbeat can lag the data path), so
    ``lag = hwm - applied_seq >= 0``; ``hwm_ts_ns`` the sequencer's timestamp of the newest HWM
    (0 when none was ever seen), ``checked_ns`` the gate's clock when it decided, and
    ``hwm_age_ms`` the age of that HWM then (``-1.0`` when none was ever seen).
    """

    approved: bool
    reason: object  # RefuseReason | None
    detail: str
    applied_seq: int
    hwm: int
    hwm_ts_ns: int
    checked_ns: int
    order_id: int = 0

    # lag and the age are derived when read: computing them costs check() about 90 ns (the age
    # is a big-int subtraction and a float division), which is most of the Decision's cost.
    @property
    def lag(self) -> int:
        """``hwm - applied_seq`` (never negative)."""
        return self.hwm - self.applied_seq

    @property
    def hwm_age_ms(self) -> float:
        """Age of the newest HWM when the gate decided, in ms (``-1.0`` when none was ever seen)."""
        return (self.checked_ns - self.hwm_ts_ns) / 1e6 if self.hwm_ts_ns else -1.0


def _id(kind: str, value: object, table: dict[str, int]) -> int:
    if isinstance(value, str):
        got = table.get(value)
        if got is None:
            raise RegistryError(f"{kind}: unknown {kind} {value!r}")
        return got
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise RegistryError(f"{kind}: expected a name or id, got {value!r}")


def to_fixed(order: Order, reg: Registry) -> tuple[FixedOrder, str | None]:
    """Convert ``order``; on a bad field returns a best-effort order and a detail naming the field."""
    account = instrument = venue = side = qty = price = 0
    try:
        account = _id("account", order.account, reg.accounts)
        try:
            inst = reg.instrument(order.instrument)
        except RegistryError:
            raise RegistryError(f"instrument: unknown instrument {order.instrument!r}") from None
        instrument = inst.id
        venue = _id("venue", order.venue, reg.venues)
        side = _SIDES.get(order.side, 0) if isinstance(order.side, (str, int)) else 0
        if not side:
            raise RegistryError(f"side: {order.side!r} is not buy or sell")
        q = to_decimal(order.qty, "qty")
        if q <= 0:
            raise RegistryError(f"qty: must be positive, got {order.qty}")
        qty = inst.to_lots(q, "qty")
        if order.price is not None:
            p = to_decimal(order.price, "price")
            if p <= 0:
                raise RegistryError(f"price: must be positive (None = market), got {order.price}")
            price = inst.to_ticks(p, "price")
        if not isinstance(order.order_id, int) or order.order_id <= 0:
            raise RegistryError(f"order_id: must be a positive integer, got {order.order_id!r}")
    except RegistryError as exc:
        oid = order.order_id if isinstance(order.order_id, int) else 0
        return FixedOrder(account, instrument, venue, side, qty, price, oid), str(exc)
    return FixedOrder(account, instrument, venue, side, qty, price, order.order_id), None


_CACHE_MAX = 1 << 16
_new_tuple = tuple.__new__


class FixedConverter:
    """:func:`to_fixed` with memoized conversions (the decimal path's hot cost).

    ``(account, instrument, venue, side, qty, price)`` -> their ids, lots and ticks is cached
    after a successful conversion; the order id is checked on every call. A bad field is
    re-parsed (and refused, with the same detail) every time. The type of each field is part
    of the key, so ``1``, ``1.0``, ``"1"`` and ``True`` never share an entry by equality.
    The cache is cleared when it reaches 65,536 entries.
    """

    __slots__ = ("registry", "_fields")

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._fields: dict[tuple, tuple[int, int, int, int, int, int]] = {}

    def __call__(self, order: Order) -> tuple[FixedOrder, str | None]:
        """Same result as ``to_fixed(order, registry)``."""
        a, i, v, sd, q, p, oid = order.account, order.instrument, order.venue, order.side, order.qty, order.price, order.order_id
        key = (type(a), a, type(i), i, type(v), v, type(sd), sd, type(q), q, type(p), p)
        try:
            got = self._fields.get(key)
        except TypeError:  # an unhashable field: no caching, to_fixed names the field
            return to_fixed(order, self.registry)
        if got is not None and type(oid) is int and oid > 0:
            # tuple.__new__ skips NamedTuple's Python-level __new__ (same object otherwise).
            return _new_tuple(FixedOrder, got + (oid,)), None
        fo, invalid = to_fixed(order, self.registry)
        if invalid is None:
            if len(self._fields) >= _CACHE_MAX:
                self._fields.clear()
            self._fields[key] = fo[:6]
        return fo, invalid

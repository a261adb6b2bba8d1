"""Orders as a strategy writes them, and their conversion to registry ids and fixed point."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from risk_gate.checks import FixedOrder
from sequencer.registry import Registry, RegistryError, to_decimal

__all__ = ["Order", "Decision", "to_fixed"]

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
    ``lag = hwm - applied_seq >= 0``; ``hwm_age_ms`` the age of the newest HWM
    (``-1.0`` when none was ever seen).
    """

    approved: bool
    reason: object  # RefuseReason | None
    detail: str
    applied_seq: int
    hwm: int
    lag: int
    hwm_age_ms: float
    order_id: int = 0


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

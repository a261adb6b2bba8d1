"""The order state machine as data: ``TRANSITIONS[(state, event)] -> next state``.

The Book kernel (``consumers.kernels``) folds every order through the compiled form
``NEXT[state, event]`` (``int8``, ``-1`` where the pair is not in the table); the
pure-Python reference kernel reads ``TRANSITIONS`` itself, so a test comparing the two
also checks the compilation. This module imports nothing but ``sequencer`` because the
consumers kernel imports it.

Orders are created by events, not transitions: ``new_order`` creates an order in
``PENDING_NEW``, ``refused`` (the gate's record) creates one in ``REFUSED`` that is never live.

A fill before the ack is allowed (an implicit ack: venues may report both in either order);
the late ack then leaves the state alone. Whether an ack is a duplicate is tracked with a
per-order flag (``ORDER_ACKED``), not by the state, because after an implicit ack the state
alone cannot tell a late first ack from a second one.
"""

from __future__ import annotations

import enum

import numpy as np

__all__ = [
    "OrderState",
    "OrderEvent",
    "TradingState",
    "TRANSITIONS",
    "NEXT",
    "LIVE_STATES",
    "STATE_NAMES",
    "STATE_BY_NAME",
    "TRADING_STATE_NAMES",
    "ORDER_ACKED",
    "compile_transitions",
]


class OrderState(enum.IntEnum):
    """Order states; ``NONE`` is the empty slot, never an order's state."""

    NONE = 0
    PENDING_NEW = 1
    NEW = 2
    PARTIALLY_FILLED = 3
    FILLED = 4
    CANCELED = 5
    REJECTED = 6
    REFUSED = 7


class OrderEvent(enum.IntEnum):
    """What happens to an existing order. ``FILL_FULL`` is a fill that brings cum qty to >= qty."""

    ACK = 0
    FILL_PARTIAL = 1
    FILL_FULL = 2
    CANCEL = 3
    REJECT = 4


class TradingState(enum.IntEnum):
    """Trading state of a scope (all, account, instrument), set by sequenced control events."""

    ACTIVE = 0
    REDUCE_ONLY = 1
    HALTED = 2


S, E = OrderState, OrderEvent

TRANSITIONS: dict[tuple[OrderState, OrderEvent], OrderState] = {
    (S.PENDING_NEW, E.ACK): S.NEW,
    (S.PENDING_NEW, E.FILL_PARTIAL): S.PARTIALLY_FILLED,  # fill before ack: implicit ack
    (S.PENDING_NEW, E.FILL_FULL): S.FILLED,
    (S.PENDING_NEW, E.CANCEL): S.CANCELED,
    (S.PENDING_NEW, E.REJECT): S.REJECTED,
    (S.NEW, E.FILL_PARTIAL): S.PARTIALLY_FILLED,
    (S.NEW, E.FILL_FULL): S.FILLED,
    (S.NEW, E.CANCEL): S.CANCELED,
    (S.NEW, E.REJECT): S.REJECTED,
    (S.PARTIALLY_FILLED, E.ACK): S.PARTIALLY_FILLED,  # the late ack after an implicit one
    (S.PARTIALLY_FILLED, E.FILL_PARTIAL): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, E.FILL_FULL): S.FILLED,
    (S.PARTIALLY_FILLED, E.CANCEL): S.CANCELED,
    (S.PARTIALLY_FILLED, E.REJECT): S.REJECTED,
    (S.FILLED, E.ACK): S.FILLED,  # the late ack of an order filled before it was acked
}

del S, E

LIVE_STATES = frozenset({OrderState.PENDING_NEW, OrderState.NEW, OrderState.PARTIALLY_FILLED})

STATE_NAMES: dict[int, str] = {
    OrderState.NONE: "none",
    OrderState.PENDING_NEW: "pending_new",
    OrderState.NEW: "new",
    OrderState.PARTIALLY_FILLED: "partially_filled",
    OrderState.FILLED: "filled",
    OrderState.CANCELED: "canceled",
    OrderState.REJECTED: "rejected",
    OrderState.REFUSED: "refused",
}
STATE_BY_NAME: dict[str, OrderState] = {name: OrderState(s) for s, name in STATE_NAMES.items()}

TRADING_STATE_NAMES: dict[int, str] = {
    TradingState.ACTIVE: "active",
    TradingState.REDUCE_ONLY: "reduce_only",
    TradingState.HALTED: "halted",
}

# Bit in the order table's ``flags`` column: the venue's ack has been seen.
ORDER_ACKED = 1


def compile_transitions(table: dict[tuple[OrderState, OrderEvent], OrderState]) -> np.ndarray:
    """``int8[len(OrderState), len(OrderEvent)]`` with the next state, ``-1`` where not in ``table``."""
    out = np.full((len(OrderState), len(OrderEvent)), -1, dtype=np.int8)
    for (state, event), nxt in table.items():
        out[int(state), int(event)] = int(nxt)
    return out


NEXT: np.ndarray = compile_transitions(TRANSITIONS)
NEXT.setflags(write=False)

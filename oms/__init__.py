"""The OMS: order lifecycle and positions folded from the sequenced stream.

``oms.states`` (the state machine table) is imported eagerly; the OMS fold itself is
re-exported lazily because ``consumers.kernels`` imports ``oms.states`` and an eager import
of ``oms.oms`` here would make that a circular import.
"""

from __future__ import annotations

from typing import Any

from oms.states import NEXT, TRANSITIONS, OrderEvent, OrderState, TradingState

__all__ = [
    "NEXT",
    "TRANSITIONS",
    "OrderEvent",
    "OrderState",
    "TradingState",
    "Oms",
    "OrderView",
    "PositionView",
    "AnomalyView",
]

_LAZY = {"Oms", "OrderView", "PositionView", "AnomalyView"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from oms import oms as _oms

        return getattr(_oms, name)
    raise AttributeError(f"module 'oms' has no attribute {name!r}")

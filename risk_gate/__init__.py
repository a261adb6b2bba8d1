"""The embeddable pre-trade risk gate that refuses against stale state.

``from risk_gate import Gate, Order``; ``gate = Gate.from_config(path)``;
``decision = gate.check(Order("acct-1", "BTC-USDT", "sim-1", "buy", "0.5", "64000.5", order_id=1))``.

Names are imported on first use: importing a ``risk_gate`` submodule (the CLI registers
several) must not pull in numba and the fold until something actually needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "BookView": "checks", "FixedOrder": "checks", "StreamView": "checks", "check_order": "checks",
    "GateFold": "fold", "Gate": "gate",
    "AccountLimits": "limits", "GateConfig": "limits", "LimitSet": "limits", "LimitTable": "limits",
    "Resolved": "limits", "load_gate_config": "limits",
    "Decision": "order", "FixedConverter": "order", "Order": "order",
    "PRECEDENCE": "reasons", "RefuseReason": "reasons",
    "RateState": "state", "Reservations": "state",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'risk_gate' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"risk_gate.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

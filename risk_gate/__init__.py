"""The embeddable pre-trade risk gate that refuses against stale state.

``from risk_gate import Gate, Order``; ``gate = Gate.from_config(path)``;
``decision = gate.check(Order("acct-1", "BTC-USDT", "sim-1", "buy", "0.5", "64000.5", order_id=1))``.
"""

from risk_gate.checks import BookView, FixedOrder, StreamView, check_order
from risk_gate.fold import GateFold
from risk_gate.gate import Gate
from risk_gate.limits import AccountLimits, GateConfig, LimitSet, LimitTable, Resolved, load_gate_config
from risk_gate.order import Decision, FixedConverter, Order
from risk_gate.reasons import PRECEDENCE, RefuseReason
from risk_gate.state import RateState, Reservations

__all__ = [
    "AccountLimits",
    "BookView",
    "Decision",
    "FixedConverter",
    "FixedOrder",
    "Gate",
    "GateConfig",
    "GateFold",
    "LimitSet",
    "LimitTable",
    "Order",
    "PRECEDENCE",
    "RateState",
    "RefuseReason",
    "Reservations",
    "Resolved",
    "StreamView",
    "check_order",
    "load_gate_config",
]

"""nautilus_trader's RiskEngine pre-trade check, the peer of the gate's ``check()``.

Only imported when ``nautilus_trader`` is importable (optional extra ``peers``). The engine
is built as nautilus' own tests build it (TestClock, MessageBus, Cache, Portfolio) with the
BTCUSDT Binance test instrument; one call is ``_check_order`` (price and quantity against the
instrument: precision, increments, min/max) followed by ``_check_orders_risk`` (notional and
balance checks; without a venue account nautilus skips the balance part), the two pre-trade
steps ``RiskEngine.execute(SubmitOrder)`` runs before throttling and routing.
"""

from __future__ import annotations

import time

import numpy as np

__all__ = ["nautilus_version", "pretrade_samples"]


def nautilus_version() -> str:
    import nautilus_trader

    return str(nautilus_trader.__version__)


def pretrade_samples(n: int, warmup: int = 500) -> np.ndarray:
    """``n`` per-call latencies (ns, timer included) of one limit order's pre-trade check."""
    from nautilus_trader.cache.cache import Cache
    from nautilus_trader.common.component import MessageBus, TestClock
    from nautilus_trader.common.factories import OrderFactory
    from nautilus_trader.model.enums import OrderSide
    from nautilus_trader.model.objects import Price, Quantity
    from nautilus_trader.portfolio.portfolio import Portfolio
    from nautilus_trader.risk.engine import RiskEngine
    from nautilus_trader.test_kit.providers import TestInstrumentProvider
    from nautilus_trader.test_kit.stubs.identifiers import TestIdStubs

    clock = TestClock()
    trader_id = TestIdStubs.trader_id()
    msgbus = MessageBus(trader_id=trader_id, clock=clock)
    cache = Cache()
    portfolio = Portfolio(msgbus, cache, clock)
    risk = RiskEngine(portfolio, msgbus, cache, clock)
    inst = TestInstrumentProvider.btcusdt_binance()
    cache.add_instrument(inst)
    factory = OrderFactory(trader_id=trader_id, strategy_id=TestIdStubs.strategy_id(), clock=clock)
    orders = [
        factory.limit(inst.id, OrderSide.BUY if k % 2 else OrderSide.SELL, Quantity.from_str("0.001000"), Price.from_str("50000.00"))
        for k in range(min(n, 1000))
    ]
    check = risk._check_order
    check_risk = risk._check_orders_risk
    if not (check(inst, orders[0]) and check_risk(inst, [orders[0]])):
        raise RuntimeError("nautilus RiskEngine denied the benchmark order")
    for k in range(warmup):
        o = orders[k % len(orders)]
        check(inst, o)
        check_risk(inst, [o])
    out = np.empty(n, dtype=np.int64)
    clk = time.perf_counter_ns
    m = len(orders)
    for k in range(n):
        o = orders[k % m]
        t0 = clk()
        check(inst, o)
        check_risk(inst, [o])
        out[k] = clk() - t0
    return out

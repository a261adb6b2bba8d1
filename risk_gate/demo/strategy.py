"""The demo's strategy: sends orders at a steady rate through an embedded :class:`Gate`.

Orders go across acct-1/acct-2 and every instrument, near the reference price the gate
folds from the stream. Each (account, instrument) leans one way for a while, so positions
run into ``max_position``; every few seconds one account bursts past its rate limit; a few
orders are oversized, off the collar, duplicates or off the tick grid. The gate decides
every one; approvals and refusals reach the journal through the gate's own producer.

``python -m risk_gate.demo.strategy --ingest EP --publish EP --hwm EP --replay EP [--config F]``
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections import Counter
from typing import Any

from risk_gate.demo._child import start_child
from risk_gate.demo.config import DemoConfig
from risk_gate.demo.stats import GateStats, PositionRow, StatsPusher
from sequencer.registry import Registry

__all__ = ["OrderFlow", "main"]

# Typical order size per symbol in instrument units (others: 1).
_SIZES = {"BTC-USDT": (0.1, 0.8), "ETH-USDT": (1.0, 8.0), "EUR-USD": (10_000.0, 60_000.0)}


class OrderFlow:
    """Decides the next order (as plain fields); the gate decides whether it may go."""

    def __init__(self, registry: Registry, cfg: DemoConfig, seed: int, accounts: list[str], venues: list[str]) -> None:
        self.registry = registry
        self.cfg = cfg
        self.rng = random.Random(seed)
        self.accounts = accounts
        self.venues = venues
        self.lean = {(a, i.symbol): self.rng.choice((1, -1)) for a in accounts for i in registry.instruments}
        self.next_id = 1
        self.recent: list[int] = []

    def order(self, ref_ticks: dict[str, int], account: str | None = None) -> dict[str, Any] | None:
        """The next order's fields (``None`` until a reference price is known)."""
        rng = self.rng
        inst = rng.choice(self.registry.instruments)
        ref = ref_ticks.get(inst.symbol, 0)
        if ref <= 0:
            return None
        acct = account or rng.choice(self.accounts)
        key = (acct, inst.symbol)
        if rng.random() < 0.04:
            self.lean[key] = -self.lean[key]
        buy = (self.lean[key] > 0) == (rng.random() < 0.85)
        lo, hi = _SIZES.get(inst.symbol, (1.0, 1.0))
        lots = max(1, int(rng.uniform(lo, hi) / float(inst.lot)))
        roll = rng.random()
        if roll < 0.02:
            lots *= 4  # oversized: MAX_ORDER_QTY / MAX_ORDER_NOTIONAL
        bps = rng.uniform(0.0, 5.0)
        if 0.02 <= roll < 0.05:
            bps = rng.uniform(80.0, 150.0)  # far from the reference: PRICE_COLLAR
        ticks = max(1, int(round(ref * (1 + (bps if buy else -bps) / 10_000.0))))
        price = inst.price_str(ticks)
        if 0.05 <= roll < 0.055:
            price = price + "3"  # one digit past the tick: INVALID_ORDER
        if 0.055 <= roll < 0.065 and self.recent:
            oid = rng.choice(self.recent)  # a reused client order id: DUPLICATE_ORDER_ID
        else:
            oid = self.next_id
            self.next_id += 1
            self.recent = (self.recent + [oid])[-50:]
        return {
            "account": acct, "instrument": inst.symbol, "venue": rng.choice(self.venues),
            "side": "buy" if buy else "sell", "qty": inst.qty_str(lots), "price": price, "order_id": oid,
        }


class _GateHandle:
    """The few things the strategy needs from the embedded gate, in one place."""

    def __init__(self, gate: Any, registry: Registry) -> None:
        self.gate = gate
        self.registry = registry
        self.fold = gate.fold
        self.sub = gate.subscriber

    def ref_ticks(self) -> dict[str, int]:
        px = self.fold.book.ref_px
        return {i.symbol: int(px[i.id]) for i in self.registry.instruments}

    def positions(self, accounts: list[str]) -> list[PositionRow]:
        book, table = self.fold.book, self.fold.table
        rows = []
        for name in accounts:
            a = self.registry.account_id(name)
            for inst in self.registry.instruments:
                lot = float(inst.lot)
                limit = table.resolved(a, inst.id).max_position_lots
                rows.append(PositionRow(
                    name, inst.symbol, int(book.pos[a, inst.id]) * lot, int(book.open_buy[a, inst.id]) * lot,
                    int(book.open_sell[a, inst.id]) * lot, limit * lot if limit >= 0 else -1.0,
                ))
        return rows


def _make_order(fields: dict[str, Any]) -> Any:
    from risk_gate import Order

    return Order(**fields)


def main(argv: list[str] | None = None) -> int:
    """Send orders through the gate until SIGTERM/SIGINT (or until the orchestrator is gone)."""
    args, log, stop, registry, cfg = start_child("risk_gate.demo.strategy", __doc__, "gate", "strategy", argv)

    from risk_gate import Gate

    accounts = sorted(registry.accounts, key=registry.accounts.get)
    venues = sorted(registry.venues, key=registry.venues.get)
    gate = Gate.from_config(
        args.config, ingest=args.ingest, publish=args.publish, hwm=args.hwm, replay=args.replay,
        hwm_file=args.hwm_file, name=args.name,
    )
    handle = _GateHandle(gate, registry)
    flow = OrderFlow(registry, cfg, args.seed + 1000, accounts, venues)
    stats = StatsPusher(args.stats)
    refused: Counter[str] = Counter()
    approved = checks = 0
    last_refusal = ""
    ready = False
    period = 1.0 / cfg.orders_per_s
    next_order = time.monotonic()
    next_burst = next_order + cfg.burst_every_s
    burst_account = 0
    log.info("strategy started: %.0f orders/s across %s", cfg.orders_per_s, ", ".join(accounts))
    try:
        while not stop.is_set():
            gate.poll()
            sub = handle.sub
            now = time.monotonic()
            refs = handle.ref_ticks()
            if not ready:
                ready = all(refs.values()) and not sub.recovering and sub.applied_seq > 0
                if ready:
                    next_order = next_burst = now
                    next_burst += cfg.burst_every_s
            if ready and now >= next_order:
                batch: list[dict[str, Any]] = []
                if now >= next_burst:
                    next_burst += cfg.burst_every_s
                    acct = accounts[burst_account % len(accounts)]
                    burst_account += 1
                    batch = [o for o in (flow.order(refs, acct) for _ in range(cfg.burst_orders)) if o]
                o = flow.order(refs)
                if o:
                    batch.append(o)
                for fields in batch:
                    d = gate.check(_make_order(fields))
                    checks += 1
                    if d.approved:
                        approved += 1
                    else:
                        name = d.reason.name if d.reason is not None else "UNKNOWN"
                        refused[name] += 1
                        last_refusal = name
                next_order = max(next_order + period, now - 1.0)
            if stats.due():
                age = sub.hwm_age_ns() / 1e6 if sub.hwm_ts_ns else -1.0
                stats.send(GateStats(
                    ts_ns=time.time_ns(), pid=os.getpid(), epoch=sub.epoch, applied_seq=sub.applied_seq, hwm=sub.hwm,
                    lag=sub.lag, hwm_age_ms=age, recovering=bool(sub.recovering), checks=checks, approved=approved,
                    refused=dict(refused), last_refusal=last_refusal, positions=handle.positions(accounts), ready=ready,
                    error=sub.error or "",
                ))
            time.sleep(min(0.002, max(0.0, next_order - time.monotonic())))
    finally:
        log.info("strategy stopping: %d checks, %d approved, %d refused", checks, approved, sum(refused.values()),
                 extra={"epoch": handle.sub.epoch, "seq": handle.sub.applied_seq})
        stats.close()
        gate.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

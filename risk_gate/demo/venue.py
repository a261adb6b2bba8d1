"""The simulated venue: folds new orders from the stream and answers them through ingest.

For every approved order (``new_order``) it schedules, with random latencies, an ack or a
reject, then fills in one to three parts, or a rest followed by a cancel of what is left.
It also publishes reference prices from a random-walk price path for every instrument of
the registry. It is an ordinary producer: everything it says goes through the sequencer.

``python -m risk_gate.demo.venue --ingest EP --publish EP --hwm EP --replay EP [--config F]``
"""

from __future__ import annotations

import heapq
import os
import random
import sys
import time
from typing import Any, NamedTuple

import numpy as np

from risk_gate.demo._child import start_child
from risk_gate.demo.config import DemoConfig
from risk_gate.demo.stats import StatsPusher, VenueStats
from sequencer.codes import ResultCode
from sequencer.protocol import Kind, empty_records
from sequencer.registry import Registry

__all__ = ["VenueFold", "VenueSim", "Action", "START_PRICES", "main"]

# Decimal start prices of the random walk (other instruments start at 100).
_NOT_INCREASING = int(ResultCode.PRODUCER_SEQ_NOT_INCREASING)
START_PRICES = {"BTC-USDT": "60000", "ETH-USDT": "3000", "EUR-USD": "1.085"}


class VenueFold:
    """A minimal fold: remembers the ``new_order`` records it has not handed out yet.

    Deterministic (no clock, no I/O): the same stream gives the same inbox.
    """

    def __init__(self) -> None:
        self.applied_seq = 0
        self.inbox: list[np.ndarray] = []
        self.orders_seen = 0

    def apply(self, records: np.ndarray) -> None:
        """Fold a contiguous batch (first seq == applied_seq + 1)."""
        if len(records) == 0:
            return
        new = records[records["kind"] == Kind.NEW_ORDER]
        if len(new):
            self.inbox.append(new.copy())
            self.orders_seen += len(new)
        self.applied_seq = int(records["seq"][-1])

    def take(self) -> np.ndarray:
        """The new orders folded since the last call, in seq order."""
        if not self.inbox:
            return empty_records(0)
        out = np.concatenate(self.inbox)
        self.inbox.clear()
        return out

    def state_hash(self) -> str:
        """Hash of what the fold reflects (the seq and the number of orders seen)."""
        return f"{self.applied_seq}:{self.orders_seen}"

    def snapshot(self, path: str) -> None:
        raise NotImplementedError("the venue fold is not snapshotted: it replays from seq 1")

    def restore(self, path: str) -> None:
        raise NotImplementedError("the venue fold is not snapshotted: it replays from seq 1")


class Action(NamedTuple):
    """A scheduled venue event: ``what`` is ack, reject, fill or cancel."""

    due: float
    order_id: int
    what: str
    qty: int = 0


class _Order:
    __slots__ = ("order_id", "account", "instrument", "venue", "side", "qty", "price", "leaves")

    def __init__(self, rec: np.void) -> None:
        self.order_id = int(rec["order_id"])
        self.account = int(rec["account"])
        self.instrument = int(rec["instrument"])
        self.venue = int(rec["venue"])
        self.side = int(rec["side"])
        self.qty = int(rec["qty"])
        self.price = int(rec["price"])
        self.leaves = self.qty


class VenueSim:
    """The venue's logic, clock-driven from outside (``now`` is passed in) so tests can step it."""

    def __init__(self, registry: Registry, cfg: DemoConfig, seed: int) -> None:
        self.registry = registry
        self.cfg = cfg
        self.rng = random.Random(seed)
        self.orders: dict[int, _Order] = {}
        self.heap: list[Action] = []
        self.trade_id = 0
        self.px = {i.id: i.to_ticks(START_PRICES.get(i.symbol, "100")) for i in registry.instruments}
        self.counts = {"orders": 0, "ack": 0, "fill": 0, "cancel": 0, "reject": 0, "price": 0}

    def _latency(self, median_ms: float) -> float:
        # Venue latencies are heavy-tailed: a lognormal around the median.
        return median_ms / 1000.0 * self.rng.lognormvariate(0.0, 0.6)

    def on_new_orders(self, records: np.ndarray, now: float) -> None:
        """Schedule the venue's answers to new orders."""
        for rec in records:
            o = _Order(rec)
            if o.order_id in self.orders:
                continue
            self.orders[o.order_id] = o
            self.counts["orders"] += 1
            t = now + self._latency(3.0)
            if self.rng.random() < self.cfg.reject_prob:
                heapq.heappush(self.heap, Action(t, o.order_id, "reject"))
                continue
            heapq.heappush(self.heap, Action(t, o.order_id, "ack"))
            parts = self._split(o.qty)
            if self.rng.random() < self.cfg.cancel_prob:
                # Rest for a while, maybe fill a part, then cancel what is left.
                parts = parts[:1] if len(parts) > 1 and self.rng.random() < 0.5 else []
                for q in parts:
                    t += self._latency(15.0)
                    heapq.heappush(self.heap, Action(t, o.order_id, "fill", q))
                t += self.cfg.rest_ms / 1000.0 * self.rng.uniform(0.3, 1.5)
                heapq.heappush(self.heap, Action(t, o.order_id, "cancel"))
            else:
                for q in parts:
                    t += self._latency(15.0)
                    heapq.heappush(self.heap, Action(t, o.order_id, "fill", q))

    def _split(self, qty: int) -> list[int]:
        n = min(qty, self.rng.choice((1, 2, 2, 3)))
        cuts = sorted(self.rng.sample(range(1, qty), n - 1)) if n > 1 else []
        edges = [0, *cuts, qty]
        return [b - a for a, b in zip(edges, edges[1:])]

    def due(self, now: float) -> np.ndarray:
        """Records for every action due by ``now``."""
        out: list[dict[str, Any]] = []
        while self.heap and self.heap[0].due <= now:
            act = heapq.heappop(self.heap)
            o = self.orders.get(act.order_id)
            if o is None:
                continue
            base = {"order_id": o.order_id, "account": o.account, "instrument": o.instrument, "venue": o.venue}
            if act.what == "ack":
                out.append({**base, "kind": Kind.ACK})
            elif act.what == "reject":
                out.append({**base, "kind": Kind.REJECT, "text": b"venue: insufficient liquidity"})
                del self.orders[o.order_id]
            elif act.what == "fill":
                q = min(act.qty, o.leaves)
                if q <= 0:
                    continue
                o.leaves -= q
                self.trade_id += 1
                price = o.price if o.price > 0 else self.px[o.instrument]
                out.append({**base, "kind": Kind.FILL, "side": o.side, "qty": q, "price": price, "aux1": self.trade_id})
                if o.leaves == 0:
                    del self.orders[o.order_id]
            elif act.what == "cancel":
                out.append({**base, "kind": Kind.CANCEL})
                del self.orders[o.order_id]
            self.counts[act.what] += 1
        return _records(out)

    def prices(self) -> np.ndarray:
        """One reference price per instrument: the next step of the random walk."""
        out = []
        for iid, px in self.px.items():
            step = px * self.cfg.price_vol_bps / 10_000.0 * self.rng.gauss(0.0, 1.0)
            px = max(1, px + int(round(step)))
            self.px[iid] = px
            out.append({"kind": Kind.PRICE, "instrument": iid, "price": px})
        self.counts["price"] += len(out)
        return _records(out)

    def last_prices(self) -> dict[str, str]:
        """Current walk prices as decimal strings by symbol."""
        return {self.registry.instrument(i).symbol: self.registry.instrument(i).price_str(p) for i, p in self.px.items()}


def _records(rows: list[dict[str, Any]]) -> np.ndarray:
    recs = empty_records(len(rows))
    for n, row in enumerate(rows):
        for k, v in row.items():
            recs[n][k] = v
    return recs


def main(argv: list[str] | None = None) -> int:
    """Run the venue until SIGTERM/SIGINT (or until the orchestrator is gone)."""
    args, log, stop, registry, cfg = start_child("risk_gate.demo.venue", __doc__, "sim-venue", "venue", argv)

    from consumers.subscriber import Subscriber
    from sequencer.producer import Producer

    sim = VenueSim(registry, cfg, args.seed)
    fold = VenueFold()
    sub = Subscriber(publish=args.publish, hwm=args.hwm, replay=args.replay, fold=fold, hwm_file=args.hwm_file, name=args.name)
    producer = Producer(ingest=args.ingest, name=args.name)
    stats = StatsPusher(args.stats)
    price_every = cfg.price_interval_ms / 1000.0
    next_price = time.monotonic()
    log.info("venue started", extra={"seq": 0})
    try:
        while not stop.is_set():
            sub.poll(256)
            now = time.monotonic()
            new = fold.take()
            if len(new):
                sim.on_new_orders(new, now)
            batches = [sim.due(now)]
            if now >= next_price:
                batches.append(sim.prices())
                next_price = max(next_price + price_every, now)
            out = np.concatenate(batches) if len(batches) > 1 else batches[0]
            if len(out):
                producer.submit(out)
            for reply in producer.poll(0):
                if reply.ok:
                    continue
                if reply.code == _NOT_INCREASING:
                    # A resend that raced its original in one sequencer batch: the original's
                    # ack stands (a frame lost in a crash is accepted late on resend).
                    continue
                log.error("ingest refused a venue frame: %s %s", reply.code_name, reply.message)
            if stats.due():
                stats.send(
                    VenueStats(
                        ts_ns=time.time_ns(), pid=os.getpid(), applied_seq=sub.applied_seq, hwm=sub.hwm,
                        lag=sub.lag, orders=sim.counts["orders"], acks=sim.counts["ack"], fills=sim.counts["fill"],
                        cancels=sim.counts["cancel"], rejects=sim.counts["reject"], prices=sim.counts["price"],
                        resting=len(sim.orders), last_prices=sim.last_prices(), ready=sub.applied_seq > 0,
                    )
                )
            time.sleep(0.002)
        producer.flush(2.0)
    finally:
        log.info("venue stopping", extra={"seq": sub.applied_seq})
        stats.close()
        producer.close()
        sub.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

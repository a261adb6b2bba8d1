"""The OMS fold: the Book plus a query API that speaks names and decimal strings.

``Oms`` folds the stream exactly like the gate (it *is* a :class:`~consumers.fold.BookFold`),
so comparing its ``applied_seq`` with the gate's measures their divergence. Queries:

* ``order(order_id)`` -> :class:`OrderView` or ``None``
* ``orders()`` / ``open_orders(account=None, instrument=None)`` -> ``list[OrderView]``
* ``positions()`` -> ``list[PositionView]`` (every (account, instrument) with a position,
  a per-venue position or realized PnL)
* ``anomalies()`` -> ``list[AnomalyView]`` in seq order
* ``trading_states()`` -> ``{"all": name, "accounts": {..}, "instruments": {..}}``
* ``applied_seq``; ``to_report()`` -> the ``seqrisk replay --json`` document.

Quantities and prices are decimal strings in the instrument's units. Average prices are
exact when they fall on the tick grid and otherwise rounded half-even to 6 more decimals
than the tick; ``None`` when there is nothing to average (no fills, flat position). Realized
PnL is exact (ticks x lots x tick x lot x multiplier).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

import msgspec
import numpy as np

from consumers.book import order_leaves
from consumers.fold import BookFold
from oms.states import LIVE_STATES, STATE_NAMES, TRADING_STATE_NAMES
from sequencer.codes import Anomaly
from sequencer.protocol import KIND_NAMES
from sequencer.registry import Instrument, Registry, RegistryError

__all__ = ["Oms", "OrderView", "PositionView", "AnomalyView", "UNATTRIBUTED"]

UNATTRIBUTED = "unattributed"
_SIDES = {1: "buy", 2: "sell"}
_AVG_EXTRA_PLACES = 6


class OrderView(msgspec.Struct, frozen=True):
    """One order as the OMS sees it at ``applied_seq``."""

    order_id: int
    account: str
    instrument: str
    venue: str
    side: str
    state: str
    qty: str
    cum_qty: str
    leaves_qty: str
    avg_price: str | None
    price: str
    seq: int


class PositionView(msgspec.Struct, frozen=True):
    """Net position of one account in one instrument; ``venues`` maps venue name -> qty."""

    account: str
    instrument: str
    qty: str
    avg_price: str | None
    realized_pnl: str
    venues: dict[str, str]


class AnomalyView(msgspec.Struct, frozen=True):
    """An anomaly the fold recorded instead of crashing."""

    seq: int
    kind: str
    order_id: int
    reason: str
    code: int


def _places(step: Decimal) -> int:
    return max(0, -step.normalize().as_tuple().exponent)  # type: ignore[operator]


def _ratio_price(inst: Instrument, num: int, den: int) -> str | None:
    """``num / den`` ticks as a price string: exact on the grid, else 6 more places."""
    if den == 0:
        return None
    if num % den == 0:
        return inst.price_str(num // den)
    with localcontext() as ctx:
        ctx.prec = 60
        value = Decimal(num) * inst.tick / Decimal(den)
        return str(value.quantize(Decimal(1).scaleb(-(_places(inst.tick) + _AVG_EXTRA_PLACES)), rounding=ROUND_HALF_EVEN))


def _money(inst: Instrument, ticks_lots: int) -> str:
    unit = inst.tick * inst.lot * inst.multiplier
    return f"{Decimal(int(ticks_lots)) * unit:.{_places(unit)}f}"


class Oms(BookFold):
    """The desk's view of orders and positions, folded from the sequenced stream."""

    def __init__(self, registry: Registry | None = None, *, capacity: int = 1024) -> None:
        super().__init__(registry, capacity=capacity)

    # -- names ---------------------------------------------------------------------------
    def _inst(self, iid: int) -> Instrument | None:
        try:
            return self.registry.instrument(int(iid))
        except RegistryError:
            return None

    def _account(self, aid: int) -> str:
        try:
            return self.registry.account_name(int(aid)) or str(int(aid))
        except RegistryError:
            return str(int(aid))

    def _venue(self, vid: int) -> str:
        if vid == 0:
            return UNATTRIBUTED
        try:
            return self.registry.venue_name(int(vid))
        except RegistryError:
            return str(int(vid))

    def _account_id(self, account: str | int) -> int:
        return account if isinstance(account, int) else self.registry.account_id(account)

    def _instrument_id(self, instrument: str | int) -> int:
        return instrument if isinstance(instrument, int) else self.registry.instrument(instrument).id

    # -- orders --------------------------------------------------------------------------
    def _order_view(self, row: np.void) -> OrderView:
        inst = self._inst(row["instrument"])
        qty = inst.qty_str if inst else str
        px = inst.price_str if inst else str
        avg = _ratio_price(inst, int(row["notional"]), int(row["cum"])) if inst else None
        return OrderView(
            order_id=int(row["order_id"]),
            account=self._account(row["account"]),
            instrument=inst.symbol if inst else str(int(row["instrument"])),
            venue=self._venue(int(row["venue"])),
            side=_SIDES.get(int(row["side"]), "none"),
            state=STATE_NAMES[int(row["state"])],
            qty=qty(int(row["qty"])),
            cum_qty=qty(int(row["cum"])),
            leaves_qty=qty(int(order_leaves(row))),
            avg_price=avg,
            price=px(int(row["price"])),
            seq=int(row["seq"]),
        )

    def order(self, order_id: int) -> OrderView | None:
        """The order with this id, or ``None`` if the OMS has not seen it."""
        slot = self.book.order_slot(order_id)
        return None if slot < 0 else self._order_view(self.book.orders[slot])

    def orders(self) -> list[OrderView]:
        """Every order (live or not) in creation order."""
        return [self._order_view(row) for row in self.book.live_orders()]

    def open_orders(self, account: str | int | None = None, instrument: str | int | None = None) -> list[OrderView]:
        """Live orders (pending_new, new, partially_filled), optionally of one account / instrument."""
        rows = self.book.live_orders()
        mask = np.isin(rows["state"], [int(s) for s in LIVE_STATES])
        if account is not None:
            mask &= rows["account"] == self._account_id(account)
        if instrument is not None:
            mask &= rows["instrument"] == self._instrument_id(instrument)
        return [self._order_view(row) for row in rows[mask]]

    # -- positions -----------------------------------------------------------------------
    def positions(self) -> list[PositionView]:
        """Positions with anything to show, ordered by (account id, instrument id)."""
        b = self.book
        active = (b.pos != 0) | (b.rpnl != 0) | (b.vpos != 0).any(axis=1)
        out = []
        for a, i in zip(*np.nonzero(active)):
            inst = self._inst(int(i))
            if inst is None:
                continue
            p = int(b.pos[a, i])
            venues = {self._venue(v): inst.qty_str(int(b.vpos[a, v, i])) for v in np.nonzero(b.vpos[a, :, i])[0]}
            out.append(
                PositionView(
                    account=self._account(a),
                    instrument=inst.symbol,
                    qty=inst.qty_str(p),
                    avg_price=_ratio_price(inst, int(b.cost[a, i]), p) if p else None,
                    realized_pnl=_money(inst, int(b.rpnl[a, i])),
                    venues=venues,
                )
            )
        return out

    # -- anomalies -----------------------------------------------------------------------
    def anomalies(self) -> list[AnomalyView]:
        """Every anomaly recorded, in seq order."""
        return [self._anomaly_view(row) for row in self.book.live_anomalies()]

    def _anomaly_view(self, row: np.void) -> AnomalyView:
        code = Anomaly(int(row["code"]))
        oid = int(row["order_id"])
        return AnomalyView(seq=int(row["seq"]), kind=code.name.lower(), order_id=oid, reason=self._reason(code, row), code=int(code))

    def _reason(self, code: Anomaly, row: np.void) -> str:
        kind = KIND_NAMES.get(int(row["kind"]), str(int(row["kind"])))
        state = STATE_NAMES.get(int(row["state"]), "none")
        detail = int(row["detail"])
        slot = self.book.order_slot(int(row["order_id"]))
        inst = self._inst(self.book.orders[slot]["instrument"]) if slot >= 0 else None
        lots = inst.qty_str(detail) if inst else str(detail)
        if code == Anomaly.UNKNOWN_ORDER_FILL:
            return f"fill (trade id {detail}) for an unknown order; position moved"
        if code == Anomaly.OVERFILL:
            return f"fill exceeds the open quantity by {lots} (state was {state}); position moved by the whole fill"
        if code == Anomaly.FILL_AFTER_CANCEL:
            return f"fill of {lots} after cancel confirmed; position moved, order stays canceled"
        if code == Anomaly.FILL_AFTER_REJECT:
            return f"fill of {lots} after reject; position moved, order stays rejected"
        if code == Anomaly.DUPLICATE_TRADE_ID:
            return f"venue trade id {detail} already applied; fill ignored"
        if code == Anomaly.DUPLICATE_ACK:
            return f"ack for an order already acked (state {state}); ignored"
        if code == Anomaly.ACK_FOR_REFUSED:
            return "ack for an order the gate refused; ignored"
        if code == Anomaly.UNKNOWN_ORDER_EVENT:
            return f"{kind} for an unknown order; ignored"
        if code == Anomaly.DUPLICATE_ORDER_ID:
            return f"{kind} reuses an existing order id; ignored"
        if kind == "fill":
            return f"fill of {lots} in state {state}; position moved, state unchanged"
        return f"{kind} not allowed in state {state}; ignored"

    # -- trading states and report --------------------------------------------------------
    def trading_states(self) -> dict[str, Any]:
        """Trading state names: global, per registered account and per registered instrument."""
        b = self.book
        return {
            "all": TRADING_STATE_NAMES[int(b.tstate_all[0])],
            "accounts": {name: TRADING_STATE_NAMES[int(b.tstate_acct[aid])] for name, aid in sorted(self.registry.accounts.items(), key=lambda kv: kv[1])},
            "instruments": {inst.symbol: TRADING_STATE_NAMES[int(b.tstate_instr[inst.id])] for inst in sorted(self.registry.instruments, key=lambda x: x.id)},
        }

    def to_report(self) -> dict[str, Any]:
        """The ``seqrisk replay --json`` document (see ``docs/oms.md``)."""
        return {
            "seq": self.applied_seq,
            "orders": msgspec.to_builtins(self.orders()),
            "positions": msgspec.to_builtins(self.positions()),
            "anomalies": msgspec.to_builtins(self.anomalies()),
            "trading_states": self.trading_states(),
        }

"""Pure pre-trade checks: the decision as a function of the order and the state it is made on.

No clock, socket or file here: every input is passed in (``now_ns`` included), so the audit
re-runs exactly these functions against replayed state. :func:`check_order` evaluates the
checks in :class:`~risk_gate.reasons.RefuseReason` declaration order and stops at the first
that applies, which is precedence by construction; with ``collect=[]`` it keeps going and
appends every reason that applies (tests use this to prove precedence).

Units are fixed point throughout: quantities in lots, prices in ticks, notionals in
``ticks x lots`` (one unit = tick x lot x multiplier of quote currency); only the
cross-instrument gross exposure is a float in quote currency.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from risk_gate.limits import LimitTable
from risk_gate.reasons import RefuseReason
from risk_gate.state import RateState, Reservations
from sequencer.registry import Registry

__all__ = ["FixedOrder", "StreamView", "BookView", "check_order", "Outcome", "reduces_position"]

_STALE_SEQUENCE = RefuseReason.STALE_SEQUENCE
_STALE_HWM = RefuseReason.STALE_HWM
_RECOVERING = RefuseReason.RECOVERING
_STALE_PRICE = RefuseReason.STALE_PRICE
_INVALID_ORDER = RefuseReason.INVALID_ORDER
_MAX_ORDER_QTY = RefuseReason.MAX_ORDER_QTY
_MAX_ORDER_NOTIONAL = RefuseReason.MAX_ORDER_NOTIONAL
_MAX_POSITION = RefuseReason.MAX_POSITION
_MAX_GROSS_EXPOSURE = RefuseReason.MAX_GROSS_EXPOSURE
_MAX_OPEN_ORDERS = RefuseReason.MAX_OPEN_ORDERS
_RATE_LIMIT = RefuseReason.RATE_LIMIT
_PRICE_COLLAR = RefuseReason.PRICE_COLLAR
_RESTRICTED = RefuseReason.RESTRICTED
_DUPLICATE_ORDER_ID = RefuseReason.DUPLICATE_ORDER_ID
_HALTED = RefuseReason.HALTED
_REDUCE_ONLY = RefuseReason.REDUCE_ONLY

_BUY = 1
_SELL = 2
_T_REDUCE_ONLY = 1
_T_HALTED = 2
_APPROVE: tuple[None, str] = (None, "")
_VALID_IDS_MAX = 1 << 16

Outcome = tuple[RefuseReason | None, str]


class FixedOrder(NamedTuple):
    """An order in registry ids and fixed point (``price`` 0 = market)."""

    account: int
    instrument: int
    venue: int
    side: int
    qty: int
    price: int
    order_id: int


class StreamView(NamedTuple):
    """How current the state is: what the subscriber knows (``hwm_ts_ns`` 0 = no HWM yet).

    ``hwm_ts_ns`` is the sequencer's clock in the newest heartbeat; ``now_ns`` passed to
    :func:`check_order` must be on the same clock (``time.time_ns()`` on the same host).
    """

    applied_seq: int
    hwm: int
    hwm_ts_ns: int
    recovering: bool = False
    error: str | None = None


def _flat(arr: Any) -> Any:
    a = np.asarray(arr)
    if a.ndim == 0:
        return a.item()
    return memoryview(np.ascontiguousarray(a).reshape(-1))


class BookView:
    """Element access to a Book for the checks: memoryviews, which index to Python ints.

    The Book updates its position, price and state arrays in place, so one view stays
    current across batches (``tstate_all`` is a one-element sequence). Tests may also fill
    the attributes with plain lists.

    ``valid_ids`` remembers ``(account, instrument, venue, side)`` combinations found valid
    (the validity lists do not change after construction; assign new lists = new view).
    """

    __slots__ = (
        "stride", "pos", "open_buy", "open_sell", "open_orders", "ref_px", "ref_ts",
        "tstate_all", "tstate_acct", "tstate_instr", "order_known", "instruments", "unit_notional",
        "accounts_valid", "instruments_valid", "venues_valid", "valid_ids",
    )
    _OPTIONAL = frozenset({"valid_ids"})

    def __init__(self, **fields: Any) -> None:
        for name in self.__slots__:
            if name in self._OPTIONAL:
                setattr(self, name, fields.get(name))
            else:
                setattr(self, name, fields[name])
        if self.valid_ids is None:
            self.valid_ids = set()  # (account, instrument, venue, side) found valid

    @classmethod
    def from_book(cls, book: Any, registry: Registry) -> "BookView":
        """A view of ``book`` (a :class:`consumers.book.Book`) interpreted with ``registry``."""
        acc, ins, ven = registry.valid_masks()
        units = registry.unit_notionals()

        def known(order_id: int, _slot: Any = book.order_slot) -> bool:
            return _slot(order_id) >= 0

        return cls(
            stride=int(np.asarray(book.pos).shape[1]),
            pos=_flat(book.pos),
            open_buy=_flat(book.open_buy),
            open_sell=_flat(book.open_sell),
            open_orders=_flat(book.open_orders),
            ref_px=_flat(book.ref_px),
            ref_ts=_flat(book.ref_ts),
            tstate_all=_flat(np.asarray(book.tstate_all).reshape(-1)),
            tstate_acct=_flat(book.tstate_acct),
            tstate_instr=_flat(book.tstate_instr),
            order_known=known,
            instruments=[i.id for i in registry.instruments],
            unit_notional=units.tolist(),
            accounts_valid=acc.tolist(),
            instruments_valid=ins.tolist(),
            venues_valid=ven.tolist(),
        )


def _known(valid: list[bool], ident: int) -> bool:
    return 0 < ident < len(valid) and valid[ident]


def validate_order(o: FixedOrder, book: BookView) -> str | None:
    """Why a fixed-point order is invalid (naming the field), or ``None``."""
    if not _known(book.accounts_valid, o.account):
        return f"account: unknown id {o.account}"
    if not _known(book.instruments_valid, o.instrument):
        return f"instrument: unknown id {o.instrument}"
    if not _known(book.venues_valid, o.venue):
        return f"venue: unknown id {o.venue}"
    if o.side != _BUY and o.side != _SELL:
        return f"side: {o.side} is not buy (1) or sell (2)"
    if o.qty <= 0:
        return f"qty: must be positive, got {o.qty}"
    if o.price < 0:
        return f"price: must be positive or market, got {o.price}"
    if o.order_id <= 0:
        return f"order_id: must be positive, got {o.order_id}"
    return None


def reduces_position(side: int, qty: int, pos: int, same_side_open: int) -> bool:
    """True when buying/selling ``qty`` (after ``same_side_open`` already working) cannot grow |pos|."""
    if side == _BUY:
        return pos < 0 and same_side_open + qty <= -pos
    return pos > 0 and same_side_open + qty <= pos


def _refuse(collect: list[Outcome] | None, reason: RefuseReason, detail: str) -> Outcome | None:
    out = (reason, detail)
    if collect is None:
        return out
    collect.append(out)
    return None


def check_order(
    o: FixedOrder,
    book: BookView,
    table: LimitTable,
    res: Reservations,
    rates: RateState,
    view: StreamView,
    now_ns: int,
    invalid: str | None = None,
    collect: list[Outcome] | None = None,
) -> Outcome:
    """Decide ``o``: ``(None, "")`` to approve, else ``(reason, detail)`` of the first refusal.

    Arithmetic is on Python ints (reservation array elements are converted), so no value
    wraps; :mod:`risk_gate.kernel` is the compiled form tested against this one.

    ``invalid`` carries a conversion error found before (decimal to fixed point); it is
    reported as ``INVALID_ORDER`` after the staleness reasons. With ``collect`` a list, every
    applicable reason is appended in precedence order and the first is returned.
    """
    account, instrument, venue, side, qty, price, order_id = o
    ids = (account, instrument, venue, side)
    valid_ids = book.valid_ids
    if ids in valid_ids:
        # Seen valid before (registry ids and side never change): one set lookup.
        acct_ok = ids_ok = True
        if invalid is None and not (qty > 0 and price >= 0 and order_id > 0):
            invalid = validate_order(o, book)
    else:
        av = book.accounts_valid
        iv = book.instruments_valid
        acct_ok = 0 < account < len(av) and av[account]
        ids_ok = acct_ok and 0 < instrument < len(iv) and iv[instrument]
        ids_valid = ids_ok and 0 < venue < len(book.venues_valid) and book.venues_valid[venue] and (side == _BUY or side == _SELL)
        if ids_valid and len(valid_ids) < _VALID_IDS_MAX:
            valid_ids.add(ids)
        if invalid is None and not (ids_valid and qty > 0 and price >= 0 and order_id > 0):
            invalid = validate_order(o, book)
    if ids_ok:
        # One cached lookup gives the budgets and every limit (locals beat attribute access).
        (max_lag, max_age_ns, price_ttl_ns, max_qty, max_notional, max_pos, max_gross, max_open,
         per_sec, per_min, collar, restricted) = table.resolved(account, instrument)
    else:
        max_lag, max_age_ns = table.budgets(account if acct_ok else 0)

    # -- staleness: how current is the state this decision is made on?
    applied, hwm, hwm_ts, recovering, error = view
    lag = hwm - applied
    if hwm_ts and lag > max_lag:
        out = _refuse(collect, _STALE_SEQUENCE, f"lag {lag} > budget {max_lag}")
        if out is not None:
            return out
    if not hwm_ts:
        out = _refuse(collect, _STALE_HWM, "no HWM seen yet")
        if out is not None:
            return out
    elif now_ns - hwm_ts > max_age_ns:
        out = _refuse(collect, _STALE_HWM, f"HWM age {(now_ns - hwm_ts) // 1_000_000}ms > {max_age_ns // 1_000_000}ms")
        if out is not None:
            return out
    if error is not None:
        out = _refuse(collect, _RECOVERING, f"subscriber: {error}")
        if out is not None:
            return out
    elif recovering and (not hwm_ts or lag < 0 or lag > max_lag):
        out = _refuse(collect, _RECOVERING, "gap fill in progress, lag unknown")
        if out is not None:
            return out
    if not ids_ok:
        out = _refuse(collect, _INVALID_ORDER, invalid or "ids")
        if out is not None:
            return out
        return collect[0] if collect else _APPROVE

    k = account * book.stride + instrument
    ref_px = book.ref_px
    ref_ts = book.ref_ts
    ref = ref_px[instrument]

    # -- the reference price, for market orders, the collar and the exposure
    gross = 0.0
    if price == 0 or collar >= 0 or max_gross >= 0:
        if ref <= 0:
            out = _refuse(collect, _STALE_PRICE, "no reference price")
            if out is not None:
                return out
        elif now_ns - ref_ts[instrument] > price_ttl_ns:
            out = _refuse(collect, _STALE_PRICE, f"price age {(now_ns - ref_ts[instrument]) // 1_000_000}ms > {price_ttl_ns // 1_000_000}ms")
            if out is not None:
                return out
        if max_gross >= 0 and invalid is None:
            gross, stale = _gross_exposure(book, table, res, account, instrument, side, qty, now_ns)
            if stale is not None:
                out = _refuse(collect, _STALE_PRICE, stale)
                if out is not None:
                    return out
    if invalid is not None:
        out = _refuse(collect, _INVALID_ORDER, invalid)
        if out is not None:
            return out
        return collect[0] if collect else _APPROVE

    # -- limits
    if 0 <= max_qty < qty:
        out = _refuse(collect, _MAX_ORDER_QTY, f"qty {qty} lots > {max_qty}")
        if out is not None:
            return out
    px = price if price else ref
    if max_notional >= 0 and px * qty > max_notional:
        out = _refuse(collect, _MAX_ORDER_NOTIONAL, f"notional {px * qty} > {max_notional} units")
        if out is not None:
            return out
    pos = book.pos[k]
    if side == _BUY:
        working = book.open_buy[k] + int(res.buy[k])
        worst = pos + working + qty
    else:
        working = book.open_sell[k] + int(res.sell[k])
        worst = working + qty - pos
    if 0 <= max_pos < worst:
        out = _refuse(collect, _MAX_POSITION, f"worst-case position {worst} lots > {max_pos}")
        if out is not None:
            return out
    if max_gross >= 0 and gross > max_gross:
        out = _refuse(collect, _MAX_GROSS_EXPOSURE, f"gross {gross:.2f} > {max_gross:.2f}")
        if out is not None:
            return out
    if max_open >= 0:
        n_open = book.open_orders[account] + int(res.count[account]) + 1
        if n_open > max_open:
            out = _refuse(collect, _MAX_OPEN_ORDERS, f"open orders {n_open} > {max_open}")
            if out is not None:
                return out
    if per_sec >= 0 or per_min >= 0:
        s, m = rates.available(account, now_ns, per_sec, per_min)
        if (per_sec >= 0 and s < 1.0) or (per_min >= 0 and m < 1.0):
            which = "second" if per_sec >= 0 and s < 1.0 else "minute"
            out = _refuse(collect, _RATE_LIMIT, f"rate per {which} exhausted")
            if out is not None:
                return out
    if price and collar >= 0 and ref > 0:
        if abs(price - ref) * 10_000_000_000 > collar * ref:
            out = _refuse(collect, _PRICE_COLLAR, f"price {price} vs ref {ref} > {collar / 1e6:g}bps")
            if out is not None:
                return out
    if restricted:
        out = _refuse(collect, _RESTRICTED, "instrument restricted")
        if out is not None:
            return out
    if order_id in res.by_id or book.order_known(order_id):
        out = _refuse(collect, _DUPLICATE_ORDER_ID, f"order id {order_id} already used")
        if out is not None:
            return out
    state = book.tstate_all[0]
    t = book.tstate_acct[account]
    if t > state:
        state = t
    t = book.tstate_instr[instrument]
    if t > state:
        state = t
    if state == _T_HALTED:
        out = _refuse(collect, _HALTED, "trading halted")
        if out is not None:
            return out
    elif state == _T_REDUCE_ONLY and not reduces_position(side, qty, pos, working):
        out = _refuse(collect, _REDUCE_ONLY, "reduce-only: order does not reduce")
        if out is not None:
            return out
    if collect:
        return collect[0]
    return _APPROVE


def _gross_exposure(
    book: BookView, table: LimitTable, res: Reservations, account: int, instrument: int, side: int, qty: int, now_ns: int
) -> tuple[float, str | None]:
    """Worst-case gross notional of ``account`` with the order added, and a stale-price note."""
    base = account * book.stride
    pos_a = book.pos
    ob = book.open_buy
    osell = book.open_sell
    rb = res.buy
    rs = res.sell
    ref_px = book.ref_px
    ref_ts = book.ref_ts
    units = book.unit_notional
    ttls = table.price_ttls(account)
    gross = 0.0
    for j in book.instruments:
        k = base + j
        p = pos_a[k]
        b = ob[k] + int(rb[k])
        s = osell[k] + int(rs[k])
        if j == instrument:
            if side == _BUY:
                b += qty
            else:
                s += qty
        if p == 0 and b == 0 and s == 0:
            continue
        ref = ref_px[j]
        if j != instrument:
            if ref <= 0:
                return gross, f"no reference price for instrument {j}"
            ttl = ttls[j]
            if now_ns - ref_ts[j] > ttl:
                return gross, f"price of instrument {j} older than {ttl // 1_000_000}ms"
        w = p + b
        if w < 0:
            w = -w
        w2 = s - p
        if w2 < 0:
            w2 = -w2
        gross += (w if w > w2 else w2) * ref * units[j]
    return gross, None

"""The gate's decision as one numba kernel: :func:`risk_gate.checks.check_order`'s verdict on arrays.

:func:`decide` returns what ``check_order`` would decide for a well-formed order (0 to
approve, else the :class:`~risk_gate.reasons.RefuseReason` value) and, on approval, takes the
rate tokens and adds the reservation's quantities, all in one call. ``check_order`` stays the
reference: tests compare the two on random states, the gate asks it for the refusal's detail
text, and the audit re-checks with it.

Negative results hand the order back to the reference path: :data:`FALLBACK` for anything
the kernel does not decide itself (ids or fields not valid, values where int64 arithmetic
could overflow, limits that do not fit int64) and :data:`NEED_LIMITS` when the limit rows
of the account are not loaded yet (:class:`risk_gate.fastpath.KernelCheck` loads them).

The state is a :class:`GateArrays` jitclass holding the Book's arrays (flattened views, so the
Book's in-place updates are seen), the reservations', the rate buckets' and the loaded limit
rows: one argument, which costs far less to pass from Python than a dozen arrays.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba.experimental import jitclass

__all__ = [
    "GateArrays",
    "decide",
    "FALLBACK",
    "NEED_LIMITS",
    "L_MAX_LAG",
    "L_MAX_AGE_NS",
    "L_PRICE_TTL_NS",
    "L_MAX_QTY",
    "L_MAX_NOTIONAL",
    "L_MAX_POS",
    "L_MAX_OPEN",
    "L_COLLAR",
    "L_RESTRICTED",
    "L_COLUMNS",
    "F_MAX_GROSS",
    "F_PER_SEC",
    "F_PER_MIN",
    "F_COLUMNS",
    "FLAG_RECOVERING",
    "FLAG_ERROR",
    "FLAG_DUPLICATE",
]

FALLBACK = -1
NEED_LIMITS = -2

# Columns of GateArrays.lim (int64) and GateArrays.limf (float64): one row per (account, instrument).
L_MAX_LAG, L_MAX_AGE_NS, L_PRICE_TTL_NS, L_MAX_QTY, L_MAX_NOTIONAL, L_MAX_POS, L_MAX_OPEN, L_COLLAR, L_RESTRICTED = range(9)
L_COLUMNS = 9
F_MAX_GROSS, F_PER_SEC, F_PER_MIN = range(3)
F_COLUMNS = 3

FLAG_RECOVERING = 1
FLAG_ERROR = 2
FLAG_DUPLICATE = 4

# RefuseReason values (sequencer.codes), as plain ints for the kernel.
_STALE_SEQUENCE = 400
_STALE_HWM = 401
_RECOVERING = 402
_STALE_PRICE = 403
_MAX_ORDER_QTY = 406
_MAX_ORDER_NOTIONAL = 407
_MAX_POSITION = 408
_MAX_GROSS_EXPOSURE = 409
_MAX_OPEN_ORDERS = 410
_RATE_LIMIT = 411
_PRICE_COLLAR = 412
_RESTRICTED = 413
_DUPLICATE_ORDER_ID = 414
_HALTED = 415
_REDUCE_ONLY = 416

_BUY = 1
_SELL = 2
_T_REDUCE_ONLY = 1
_T_HALTED = 2
_I64_MAX = np.iinfo(np.int64).max
# Inputs at or above this go to the reference path: sums of a few such values cannot overflow int64.
_SMALL = 1 << 60
_COLLAR_SCALE = 10_000_000_000
_MAX_COLLAR_DIFF = _I64_MAX // _COLLAR_SCALE

_SPEC = [
    ("stride", nb.int64),
    ("pos", nb.int64[::1]),
    ("open_buy", nb.int64[::1]),
    ("open_sell", nb.int64[::1]),
    ("open_orders", nb.int64[::1]),
    ("ref_px", nb.int64[::1]),
    ("ref_ts", nb.int64[::1]),
    ("tstate_all", nb.int8[::1]),
    ("tstate_acct", nb.int8[::1]),
    ("tstate_instr", nb.int8[::1]),
    ("accounts_valid", nb.uint8[::1]),
    ("instruments_valid", nb.uint8[::1]),
    ("venues_valid", nb.uint8[::1]),
    ("instruments", nb.int64[::1]),
    ("unit_notional", nb.float64[::1]),
    ("res_buy", nb.int64[::1]),
    ("res_sell", nb.int64[::1]),
    ("res_count", nb.int64[::1]),
    ("res_account_version", nb.int64[::1]),
    ("res_key_version", nb.int64[::1]),
    ("rate_sec", nb.float64[::1]),
    ("rate_min", nb.float64[::1]),
    ("rate_last_ns", nb.int64[::1]),
    ("lim_slot", nb.int64[::1]),
    ("lim", nb.int64[:, ::1]),
    ("limf", nb.float64[:, ::1]),
]


@jitclass(_SPEC)
class GateArrays:
    """Every array :func:`decide` reads or writes (see :class:`risk_gate.fastpath.KernelCheck`)."""

    def __init__(self, stride, pos, open_buy, open_sell, open_orders, ref_px, ref_ts, tstate_all, tstate_acct, tstate_instr,
                 accounts_valid, instruments_valid, venues_valid, instruments, unit_notional, res_buy, res_sell, res_count,
                 res_account_version, res_key_version, rate_sec, rate_min, rate_last_ns, lim_slot, lim, limf):
        self.stride = stride
        self.pos = pos
        self.open_buy = open_buy
        self.open_sell = open_sell
        self.open_orders = open_orders
        self.ref_px = ref_px
        self.ref_ts = ref_ts
        self.tstate_all = tstate_all
        self.tstate_acct = tstate_acct
        self.tstate_instr = tstate_instr
        self.accounts_valid = accounts_valid
        self.instruments_valid = instruments_valid
        self.venues_valid = venues_valid
        self.instruments = instruments
        self.unit_notional = unit_notional
        self.res_buy = res_buy
        self.res_sell = res_sell
        self.res_count = res_count
        self.res_account_version = res_account_version
        self.res_key_version = res_key_version
        self.rate_sec = rate_sec
        self.rate_min = rate_min
        self.rate_last_ns = rate_last_ns
        self.lim_slot = lim_slot
        self.lim = lim
        self.limf = limf


@nb.njit(cache=False, nogil=True)
def _well_formed(g, account, instrument, venue, side, qty, price, order_id):
    """Ids known, side buy or sell, fields in range for int64 arithmetic: else the reference decides."""
    if not (0 < account < len(g.accounts_valid) and g.accounts_valid[account]):
        return False
    if not (0 < instrument < len(g.instruments_valid) and g.instruments_valid[instrument]):
        return False
    if not (0 < venue < len(g.venues_valid) and g.venues_valid[venue]):
        return False
    if side != _BUY and side != _SELL:
        return False
    return 0 < qty < _SMALL and 0 <= price < _SMALL and order_id > 0


@nb.njit(cache=False, nogil=True)
def _gross(g, account, instrument, side, qty, now_ns):
    """Worst-case gross notional with the order added (``checks._gross_exposure``, same float
    operations in the same order); ``(gross, code)`` with code 0, STALE_PRICE, FALLBACK or NEED_LIMITS."""
    base = account * g.stride
    gross = 0.0
    for idx in range(len(g.instruments)):
        j = g.instruments[idx]
        k = base + j
        p = g.pos[k]
        b = g.open_buy[k] + g.res_buy[k]
        s = g.open_sell[k] + g.res_sell[k]
        if j == instrument:
            if side == _BUY:
                b += qty
            else:
                s += qty
        if p == 0 and b == 0 and s == 0:
            continue
        ref = g.ref_px[j]
        if j != instrument:
            if ref <= 0:
                return gross, _STALE_PRICE
            slot = g.lim_slot[k]
            if slot < 0:
                return gross, NEED_LIMITS
            if now_ns - g.ref_ts[j] > g.lim[slot, L_PRICE_TTL_NS]:
                return gross, _STALE_PRICE
        w = abs(p + b)
        w2 = abs(s - p)
        m = w if w > w2 else w2
        if m > _I64_MAX // ref:
            return gross, FALLBACK  # Python multiplies exact big ints; int64 would wrap
        gross += (m * ref) * g.unit_notional[j]
    return gross, 0


@nb.njit(cache=False, nogil=True)
def _rate_ok(g, account, now_ns, per_sec, per_min):
    """``RateState.available`` then the RATE_LIMIT test of ``check_order``."""
    last = g.rate_last_ns[account]
    dt = (now_ns - last) * 1e-9 if now_ns > last else 0.0
    s = g.rate_sec[account]
    m = g.rate_min[account]
    if s < 0:
        s = per_sec
    else:
        s += dt * per_sec
        if s > per_sec:
            s = per_sec
    if m < 0:
        m = per_min
    else:
        m += dt * per_min / 60.0
        if m > per_min:
            m = per_min
    return not ((per_sec >= 0 and s < 1.0) or (per_min >= 0 and m < 1.0))


@nb.njit(cache=False, nogil=True)
def _take(g, account, now_ns, per_sec, per_min):
    """``RateState.take``: one token from each bucket that has a rate set."""
    last = g.rate_last_ns[account]
    if now_ns > last:
        dt = (now_ns - last) * 1e-9
        g.rate_last_ns[account] = now_ns
    else:
        dt = 0.0
    if per_sec >= 0:
        s = g.rate_sec[account]
        if s < 0:
            s = per_sec
        else:
            s += dt * per_sec
            if s > per_sec:
                s = per_sec
        g.rate_sec[account] = s - 1.0
    else:
        g.rate_sec[account] = -1.0
    if per_min >= 0:
        m = g.rate_min[account]
        if m < 0:
            m = per_min
        else:
            m += dt * per_min / 60.0
            if m > per_min:
                m = per_min
        g.rate_min[account] = m - 1.0
    else:
        g.rate_min[account] = -1.0


@nb.njit(cache=False, nogil=True)
def _reserve(g, account, k, side, qty):
    """``Reservations.add`` for the arrays (the gate keeps the order id itself)."""
    if side == _BUY:
        g.res_buy[k] += qty
    else:
        g.res_sell[k] += qty
    g.res_count[account] += 1
    g.res_account_version[account] += 1
    g.res_key_version[k] += 1


@nb.njit(cache=False, nogil=True)
def _staleness(lim_row, applied, hwm, hwm_ts, now_ns, flags):
    """The staleness reasons of ``check_order``, in its order (0 = current enough)."""
    lag = hwm - applied
    max_lag = lim_row[L_MAX_LAG]
    if hwm_ts != 0 and lag > max_lag:
        return _STALE_SEQUENCE
    if hwm_ts == 0 or now_ns - hwm_ts > lim_row[L_MAX_AGE_NS]:
        return _STALE_HWM
    if flags & FLAG_ERROR:
        return _RECOVERING
    if flags & FLAG_RECOVERING and (lag < 0 or lag > max_lag):
        return _RECOVERING
    return 0


@nb.njit(cache=False, nogil=True)
def decide(g, account, instrument, venue, side, qty, price, order_id, now_ns, applied, hwm, hwm_ts, flags):
    """0 = approved (rate tokens taken, quantities reserved), > 0 a RefuseReason value, < 0 use the reference."""
    if not _well_formed(g, account, instrument, venue, side, qty, price, order_id):
        return FALLBACK
    k = account * g.stride + instrument
    slot = g.lim_slot[k]
    if slot < 0:
        return NEED_LIMITS
    lim = g.lim[slot]
    code = _staleness(lim, applied, hwm, hwm_ts, now_ns, flags)
    if code:
        return code
    max_gross = g.limf[slot, F_MAX_GROSS]
    collar = lim[L_COLLAR]
    ref = g.ref_px[instrument]
    gross = 0.0
    if price == 0 or collar >= 0 or max_gross >= 0:
        if ref <= 0 or now_ns - g.ref_ts[instrument] > lim[L_PRICE_TTL_NS]:
            return _STALE_PRICE
        if max_gross >= 0:
            gross, code = _gross(g, account, instrument, side, qty, now_ns)
            if code:
                return code
    max_qty = lim[L_MAX_QTY]
    if 0 <= max_qty < qty:
        return _MAX_ORDER_QTY
    px = price if price else ref
    max_notional = lim[L_MAX_NOTIONAL]
    if max_notional >= 0:
        if px > 0 and qty > _I64_MAX // px:
            return FALLBACK
        if px * qty > max_notional:
            return _MAX_ORDER_NOTIONAL
    pos = g.pos[k]
    if side == _BUY:
        working = g.open_buy[k] + g.res_buy[k]
        worst = pos + working + qty
    else:
        working = g.open_sell[k] + g.res_sell[k]
        worst = working + qty - pos
    max_pos = lim[L_MAX_POS]
    if 0 <= max_pos < worst:
        return _MAX_POSITION
    if max_gross >= 0 and gross > max_gross:
        return _MAX_GROSS_EXPOSURE
    max_open = lim[L_MAX_OPEN]
    if max_open >= 0 and g.open_orders[account] + g.res_count[account] + 1 > max_open:
        return _MAX_OPEN_ORDERS
    per_sec = g.limf[slot, F_PER_SEC]
    per_min = g.limf[slot, F_PER_MIN]
    rated = per_sec >= 0 or per_min >= 0
    if rated and not _rate_ok(g, account, now_ns, per_sec, per_min):
        return _RATE_LIMIT
    if price and collar >= 0 and ref > 0:
        diff = abs(price - ref)
        if diff > _MAX_COLLAR_DIFF or collar > _I64_MAX // ref:
            return FALLBACK
        if diff * _COLLAR_SCALE > collar * ref:
            return _PRICE_COLLAR
    if lim[L_RESTRICTED]:
        return _RESTRICTED
    if flags & FLAG_DUPLICATE:
        return _DUPLICATE_ORDER_ID
    state = max(g.tstate_all[0], g.tstate_acct[account], g.tstate_instr[instrument])
    if state == _T_HALTED:
        return _HALTED
    if state == _T_REDUCE_ONLY:
        if side == _BUY:
            reduces = pos < 0 and working + qty <= -pos
        else:
            reduces = pos > 0 and working + qty <= pos
        if not reduces:
            return _REDUCE_ONLY
    if rated:
        _take(g, account, now_ns, per_sec, per_min)
    _reserve(g, account, k, side, qty)
    return 0

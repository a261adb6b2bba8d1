"""The gate's decision as one numba kernel: :func:`risk_gate.checks.check_order`'s verdict on arrays.

:func:`decide` returns what ``check_order`` would decide for a well-formed order (0 to
approve, else the :class:`~risk_gate.reasons.RefuseReason` value) and, on approval, takes the
rate tokens, adds the reservation's quantities and adds the order id to the taken ids
(:mod:`risk_gate.idset`, which it also reads for the duplicate-id check), all in one call. ``check_order`` stays the
reference: tests compare the two on random states, the gate asks it for the refusal's detail
text, and the audit re-checks with it.

:func:`decide_quiet` is the call for a gate that has not polled its subscriber: it checks the
subscriber's quiet state (:func:`consumers.quiet.is_quiet`, its address at ``meta[M_QUIET]``,
on the wall clock the kernel reads itself), returns :data:`NEED_POLL` unless ``poll()`` would
have done nothing, and reads the stream values from that state and the Book.

Negative results hand the order back to the reference path: :data:`FALLBACK` for anything
the kernel does not decide itself (ids or fields not valid, values where int64 arithmetic
could overflow, limits that do not fit int64, a taken-id set that is full) and :data:`NEED_LIMITS` when the limit rows
of the account are not loaded yet (:class:`risk_gate.fastpath.KernelCheck` loads them).

The state is one int64 array, ``meta``, passed by address: the extents and the addresses of the Book's arrays,
the reservations', the rate buckets', the taken ids' and the loaded limit rows (layout ``M_*`` in
:mod:`risk_gate.kernel_layout`;
:class:`risk_gate.fastpath.KernelCheck` fills it and keeps the arrays alive). The kernel views
that memory in place (``numba.carray``), so the Book's in-place updates are seen and its own
writes land in the reservation and rate arrays. One int argument costs far less to pass
from Python than two dozen arrays (~0.1 us each), and unlike a jitclass it lets numba cache
the compiled kernel on disk.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from risk_gate.idset import probe
from risk_gate.kernel_args import as_fields, as_int, order_fields, strict_int64
from consumers.quiet import Q_HWM, Q_HWM_TS, Q_LENGTH, Q_STREAM, STREAM_ERROR, STREAM_RECOVERING, is_quiet
from risk_gate.kernel_clock import realtime_ns
from risk_gate.kernel_layout import (  # noqa: F401 - the layout names are part of this module's API
    ARRAY_FIELDS, BOOK_APPLIED, BOOK_COUNTS, F_COLUMNS, F_MAX_GROSS, F_PER_MIN, F_PER_SEC, L_COLLAR, L_COLUMNS, L_MAX_AGE_NS, L_MAX_LAG,
    L_MAX_NOTIONAL, L_MAX_OPEN, L_MAX_POS, L_MAX_QTY, L_PRICE_TTL_NS, L_RESTRICTED, M_ACCOUNTS, M_ARRAYS,
    M_INSTRUMENTS, M_LENGTH, M_LISTED, M_QUIET, M_ROWS, M_SET_CAP, M_SET_SHIFT, M_STRIDE, M_VENUES, _address,
    _arrays,
)

__all__ = [
    "ARRAY_FIELDS",
    "M_STRIDE",
    "M_ACCOUNTS",
    "M_INSTRUMENTS",
    "M_VENUES",
    "M_LISTED",
    "M_ROWS",
    "M_SET_SHIFT",
    "M_SET_CAP",
    "M_QUIET",
    "M_ARRAYS",
    "BOOK_COUNTS",
    "BOOK_APPLIED",
    "M_LENGTH",
    "decide",
    "DECIDE_SIGNATURE",
    "decide_quiet",
    "DECIDE_QUIET_SIGNATURE",
    "subscriber_quiet",
    "QUIET_SIGNATURE",
    "FALLBACK",
    "NEED_LIMITS",
    "NEED_POLL",
    "LAST_CODE",
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
NEED_POLL = -3
"""From :func:`decide_quiet`: the subscriber is not quiet; poll it and call :func:`decide`."""
LAST_CODE = 999
"""Results above this are approvals at that wall-clock time (``now_ns == 0``: the kernel read it)."""


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
# Two non-negative values below 2**31 multiply within int64: the overflow tests divide (a
# 64-bit division costs ~40-90 cycles, several per check) only when one is not that small.
_HALF_BITS = 31

# decide(meta_address, order, now_ns, applied, hwm, hwm_ts, flags) as the gate calls it.
DECIDE_SIGNATURE = (strict_int64, order_fields) + (strict_int64,) * 5
# decide_quiet(meta_address, order, now_ns) as the gate calls it.
DECIDE_QUIET_SIGNATURE = (strict_int64, order_fields, strict_int64)


@nb.njit(cache=True, inline="always")
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


@nb.njit(cache=True, inline="always")
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
        if (m | ref) >> _HALF_BITS and m > _I64_MAX // ref:
            return gross, FALLBACK  # Python multiplies exact big ints; int64 would wrap
        gross += (m * ref) * g.unit_notional[j]
    return gross, 0


@nb.njit(cache=True, inline="always")
def _refill(tokens, gain, rate):
    """A bucket after refilling by ``gain`` tokens, capped at ``rate`` (``tokens < 0`` = never used: full)."""
    if tokens < 0:
        return rate
    tokens += gain
    return rate if tokens > rate else tokens


@nb.njit(cache=True, inline="always")
def _buckets(g, account, now_ns, per_sec, per_min):
    """``RateState.available``: the tokens in both buckets at ``now_ns`` (same float operations)."""
    last = g.rate_last_ns[account]
    dt = (now_ns - last) * 1e-9 if now_ns > last else 0.0
    return _refill(g.rate_sec[account], dt * per_sec, per_sec), _refill(g.rate_min[account], dt * per_min / 60.0, per_min)


@nb.njit(cache=True, inline="always")
def _rate_ok(g, account, now_ns, per_sec, per_min):
    """The RATE_LIMIT test of ``check_order``."""
    s, m = _buckets(g, account, now_ns, per_sec, per_min)
    return not ((per_sec >= 0 and s < 1.0) or (per_min >= 0 and m < 1.0))


@nb.njit(cache=True, inline="always")
def _take(g, account, now_ns, per_sec, per_min):
    """``RateState.take``: one token from each bucket that has a rate set."""
    s, m = _buckets(g, account, now_ns, per_sec, per_min)
    if now_ns > g.rate_last_ns[account]:
        g.rate_last_ns[account] = now_ns
    g.rate_sec[account] = s - 1.0 if per_sec >= 0 else -1.0
    g.rate_min[account] = m - 1.0 if per_min >= 0 else -1.0


@nb.njit(cache=True, inline="always")
def _reserve(g, account, k, side, qty):
    """``Reservations.add`` for the arrays (the gate keeps the order id itself)."""
    if side == _BUY:
        g.res_buy[k] += qty
    else:
        g.res_sell[k] += qty
    g.res_count[account] += 1


@nb.njit(cache=True, inline="always")
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


@nb.njit(cache=True, inline="always")
def _clock(now_ns):
    """``(now_ns, read_clock)``: ``now_ns`` as given, or for 0 the wall clock read here (0 if that
    read failed)."""
    if now_ns != 0:
        return now_ns, False
    now = realtime_ns()
    return (now if now > LAST_CODE else 0), True


# Not nogil: releasing and taking back the GIL around a ~100 ns call costs ~800 instructions,
# and the gate's state is single-threaded anyway (nothing else may run beside a check).
@nb.njit(cache=True)
def decide(meta_address, order, now_ns, applied, hwm, hwm_ts, flags):
    """0 = approved (rate tokens taken, quantities reserved), > 0 a RefuseReason value, < 0 use the reference.

    ``meta_address`` is the address of the ``meta`` array (an int costs less to pass than an
    array), ``order`` a FixedOrder; the gate calls the entry point compiled for
    :data:`DECIDE_SIGNATURE` (:mod:`risk_gate.kernel_args`: only Python ints are accepted).
    ``now_ns == 0`` asks the kernel to read the wall clock itself (:mod:`risk_gate.kernel_clock`);
    an approval then returns that time (> :data:`LAST_CODE`) instead of 0.
    """
    account, instrument, venue, side, qty, price, order_id = as_fields(order)
    meta = nb.carray(_address(as_int(meta_address)), M_LENGTH, np.int64)
    now_ns, read_clock = _clock(as_int(now_ns))
    if now_ns == 0:
        return FALLBACK  # no usable clock: Python reads its own
    return _verdict(meta, account, instrument, venue, side, qty, price, order_id, now_ns, read_clock,
                    as_int(applied), as_int(hwm), as_int(hwm_ts), as_int(flags))


@nb.njit(cache=True)
def decide_quiet(meta_address, order, now_ns):
    """:func:`decide` with the stream values the gate would pass read here instead: the applied
    seq from the Book, the HWM, its timestamp and the recovering/error state from the
    subscriber's quiet state (``meta[M_QUIET]``, :mod:`consumers.quiet`). :data:`NEED_POLL`
    unless that subscriber is quiet at ``now_ns`` (0 = read the wall clock, as in :func:`decide`):
    then ``poll()`` would have changed nothing, so these are the current values. The HWM is
    raised to the applied seq and the flags are set as ``Gate.check`` does.
    """
    account, instrument, venue, side, qty, price, order_id = as_fields(order)
    meta = nb.carray(_address(as_int(meta_address)), M_LENGTH, np.int64)
    now_ns, read_clock = _clock(as_int(now_ns))
    if now_ns == 0:
        return FALLBACK  # no usable clock: Python reads its own
    quiet = meta[M_QUIET]
    if not is_quiet(quiet, now_ns):
        return NEED_POLL
    stream = nb.carray(_address(quiet), Q_LENGTH, np.int64)
    applied = _arrays(meta).book_counts[BOOK_APPLIED]
    hwm = stream[Q_HWM]
    hwm_ts = stream[Q_HWM_TS]
    if hwm < applied:
        hwm = applied
    flags = FLAG_ERROR if stream[Q_STREAM] & STREAM_ERROR else 0
    if (hwm > applied or hwm_ts == 0) and stream[Q_STREAM] & STREAM_RECOVERING:
        flags |= FLAG_RECOVERING
    return _verdict(meta, account, instrument, venue, side, qty, price, order_id, now_ns, read_clock, applied, hwm, hwm_ts, flags)


@nb.njit(cache=True, inline="always")
def _verdict(meta, account, instrument, venue, side, qty, price, order_id, now_ns, read_clock, applied, hwm, hwm_ts, flags):
    """The decision proper (see :func:`decide`), on ``meta`` at ``now_ns``."""
    g = _arrays(meta)
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
        if (px | qty) >> _HALF_BITS and px > 0 and qty > _I64_MAX // px:
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
        if diff > _MAX_COLLAR_DIFF or ((collar | ref) >> _HALF_BITS and collar > _I64_MAX // ref):
            return FALLBACK
        if diff * _COLLAR_SCALE > collar * ref:
            return _PRICE_COLLAR
    if lim[L_RESTRICTED]:
        return _RESTRICTED
    # Where the id goes on approval: nothing below changes the set.
    id_slot = probe(g.ids, meta[M_SET_SHIFT], order_id)
    if flags & FLAG_DUPLICATE or id_slot >= 0:
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
    if 2 * (g.ids_count[0] + 1) > len(g.ids):
        return FALLBACK  # the set is full: the reference path decides, and Python grows it
    if rated:
        _take(g, account, now_ns, per_sec, per_min)
    _reserve(g, account, k, side, qty)
    g.ids[~id_slot] = order_id
    g.ids_count[0] += 1
    return now_ns if read_clock else 0


# subscriber_quiet(state_address) as the gate calls it.
QUIET_SIGNATURE = (strict_int64,)


@nb.njit(cache=True)
def subscriber_quiet(state_address):
    """Whether ``poll()`` of the subscriber whose quiet state is at ``state_address`` would do
    nothing now (:func:`consumers.quiet.is_quiet` at the wall clock read here): the full path's
    way to skip the poll that :func:`decide_quiet` skips on the fast path."""
    now_ns = realtime_ns()
    return now_ns > LAST_CODE and is_quiet(as_int(state_address), now_ns)

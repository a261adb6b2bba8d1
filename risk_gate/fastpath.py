"""The gate's side of :mod:`risk_gate.kernel`: addresses its arrays, loads limit rows, calls it cheaply.

A :class:`KernelCheck` puts the addresses of the Book's arrays, the reservations' and the rate
buckets' arrays, the taken order ids (:class:`~risk_gate.idset.OrderIdSet`) and its own limit
rows in one int64 ``meta`` array, with the subscriber's quiet state when it has one
(:meth:`KernelCheck.watch_quiet`) (no copies: the kernel reads
and writes the same memory), passes the kernel that array's address, and keeps every one of
those arrays referenced, so the addresses stay valid. The Book, :class:`~risk_gate.state.Reservations` and
:class:`~risk_gate.state.RateState` update these arrays in place and never replace them; the
limit rows are replaced only here, and the id set's arrays only when it grows (its ``on_grow``
hook): both rewrite the addresses. Rows are loaded per
account on first use and all dropped when a limit changes (the table calls
:meth:`KernelCheck.drop_rows` from its ``on_change`` hooks, so a check needs no "changed?" test).

``decide`` is the compiled kernel's entry point for its one signature (numba's disk cache
makes that a load after the first build): calling it skips numba's per-call type dispatch,
which costs more than the check itself.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from consumers.quiet import Q_LENGTH
from risk_gate import kernel as _k
from risk_gate.idset import OrderIdSet
from risk_gate.limits import LimitTable
from risk_gate.state import RateState, Reservations
from sequencer.registry import Registry

__all__ = ["KernelCheck", "compiled_decide", "compiled_decide_quiet", "compiled_quiet"]

_I64_MIN = int(np.iinfo(np.int64).min)
_I64_MAX = int(np.iinfo(np.int64).max)
@functools.cache
def _compiled(dispatcher: Any, signature: tuple) -> Any:
    # numba's disk cache makes this a load after the first build; memoized per process.
    return dispatcher.compile(signature)


def compiled_decide() -> Any:
    """The entry point of :func:`risk_gate.kernel.decide` for :data:`~risk_gate.kernel.DECIDE_SIGNATURE`."""
    return _compiled(_k.decide, _k.DECIDE_SIGNATURE)


def compiled_decide_quiet() -> Any:
    """The entry point of :func:`risk_gate.kernel.decide_quiet` for :data:`~risk_gate.kernel.DECIDE_QUIET_SIGNATURE`."""
    return _compiled(_k.decide_quiet, _k.DECIDE_QUIET_SIGNATURE)


def compiled_quiet() -> Any:
    """The entry point of :func:`risk_gate.kernel.subscriber_quiet` for :data:`~risk_gate.kernel.QUIET_SIGNATURE`."""
    return _compiled(_k.subscriber_quiet, _k.QUIET_SIGNATURE)


def _fits(values: tuple[int, ...]) -> bool:
    return all(_I64_MIN <= v <= _I64_MAX for v in values)


class KernelCheck:
    """The kernel's ``meta`` for one gate, and the limit rows it reads (see the module docstring)."""

    def __init__(
        self, book: Any, registry: Registry, table: LimitTable, res: Reservations, rates: RateState, ids: OrderIdSet | None = None
    ) -> None:
        acc, ins, ven = registry.valid_masks()
        a, i, v = book.shape
        self.table = table
        self.stride = i
        self.instruments = [inst.id for inst in registry.instruments]
        self.rows = 0
        self.fallback_accounts: set[int] = set()
        cap = max(len(self.instruments), 1)
        self.arrays: dict[str, np.ndarray] = {
            "pos": book.pos, "open_buy": book.open_buy, "open_sell": book.open_sell, "open_orders": book.open_orders,
            "ref_px": book.ref_px, "ref_ts": book.ref_ts, "tstate_all": book.tstate_all, "tstate_acct": book.tstate_acct,
            "tstate_instr": book.tstate_instr, "accounts_valid": acc.view(np.uint8), "instruments_valid": ins.view(np.uint8),
            "venues_valid": ven.view(np.uint8), "instruments": np.array(self.instruments, dtype=np.int64),
            "unit_notional": registry.unit_notionals(), "res_buy": res.buy, "res_sell": res.sell, "res_count": res.count,
            "rate_sec": rates.sec, "rate_min": rates.min, "rate_last_ns": rates.last_ns,
            "lim_slot": np.full(a * i, -1, dtype=np.int64),
            "lim": np.zeros((cap, _k.L_COLUMNS), dtype=np.int64), "limf": np.zeros((cap, _k.F_COLUMNS), dtype=np.float64),
            "book_counts": book.counts,
        }
        self.ids = ids if ids is not None else OrderIdSet()
        self.quiet: np.ndarray | None = None
        self.meta = np.zeros(_k.M_LENGTH, dtype=np.int64)
        self.meta_address = self.meta.ctypes.data  # what decide() takes; self.meta keeps it valid
        self.meta[[_k.M_STRIDE, _k.M_ACCOUNTS, _k.M_INSTRUMENTS, _k.M_VENUES, _k.M_LISTED]] = (i, a, i, v, len(self.instruments))
        self._extents = {"AI": a * i, "A": a, "I": i, "V": v, "L": len(self.instruments), "1": 1, "K": _k.BOOK_COUNTS}
        self._address_ids()
        self.ids.on_grow.append(self._address_ids)
        self.decide = compiled_decide()
        table.on_change.append(self.drop_rows)

    def _address_ids(self) -> None:
        """Point ``meta`` at the id set's current arrays (and everything else again)."""
        ids = self.ids
        self.arrays["ids"], self.arrays["ids_count"] = ids.keys, ids.count
        self._extents["S"] = len(ids.keys)
        self.meta[_k.M_SET_SHIFT] = ids.shift
        self.meta[_k.M_SET_CAP] = len(ids.keys)
        self._address_all()

    def _address_all(self) -> None:
        """Check every array against the kernel's layout and write its address into ``meta``."""
        rows = len(self.arrays["lim"])
        self.meta[_k.M_ROWS] = rows
        for n, (name, dtype, extent) in enumerate(_k.ARRAY_FIELDS):
            arr = self.arrays[name]
            size = rows * arr.shape[-1] if extent == "R" else self._extents[extent]
            if arr.dtype != dtype or arr.size != size or not arr.flags.c_contiguous:
                raise ValueError(f"check kernel: array {name} is {arr.dtype}{arr.shape}, expected {np.dtype(dtype)} of {size} contiguous")
            self.meta[_k.M_ARRAYS + n] = arr.ctypes.data

    def watch_quiet(self, quiet: Any) -> bool:
        """Point ``meta[M_QUIET]`` at a subscriber's quiet state (:mod:`consumers.quiet`) and keep it
        alive; False (nothing changed) unless it is a contiguous int64 array of ``Q_LENGTH``."""
        if not (isinstance(quiet, np.ndarray) and quiet.dtype == np.int64 and quiet.shape == (Q_LENGTH,) and quiet.flags.c_contiguous):
            return False
        self.quiet = quiet
        self.meta[_k.M_QUIET] = quiet.ctypes.data
        return True

    def drop_rows(self) -> None:
        """Drop every loaded limit row (the limits changed): each account's are loaded again on its next check."""
        self.arrays["lim_slot"][:] = -1
        self.rows = 0
        self.fallback_accounts.clear()

    def load(self, account: int) -> bool:
        """Load the limit rows of ``account`` for every instrument; False when they do not fit int64
        (the account is then decided by the reference path)."""
        if account in self.fallback_accounts:
            return False
        rows = [self.table.resolved(account, j) for j in self.instruments]
        ints = [
            (r.max_lag_events, r.max_hwm_age_ns, r.price_ttl_ns, r.max_qty_lots, r.max_notional_units, r.max_position_lots,
             r.max_open_orders, r.collar_bps_e6, int(r.restricted))
            for r in rows
        ]
        if not all(_fits(row) for row in ints):
            self.fallback_accounts.add(account)
            return False
        self._reserve_rows(self.rows + len(rows))
        lim, limf, slots = self.arrays["lim"], self.arrays["limf"], self.arrays["lim_slot"]
        base = account * self.stride
        for j, r, row in zip(self.instruments, rows, ints):
            n = self.rows
            lim[n] = row
            limf[n] = (r.max_gross_exposure, r.rate_per_sec, r.rate_per_min)
            slots[base + j] = n
            self.rows = n + 1
        return True

    def _reserve_rows(self, need: int) -> None:
        """Grow the limit row tables to ``need`` rows (new arrays, new addresses in ``meta``)."""
        lim, limf = self.arrays["lim"], self.arrays["limf"]
        if need <= len(lim):
            return
        cap = max(need, 2 * len(lim))
        grown = np.zeros((cap, _k.L_COLUMNS), dtype=np.int64)
        grown_f = np.zeros((cap, _k.F_COLUMNS), dtype=np.float64)
        grown[: self.rows] = lim[: self.rows]
        grown_f[: self.rows] = limf[: self.rows]
        self.arrays["lim"], self.arrays["limf"] = grown, grown_f
        self._address_all()

"""The gate's side of :mod:`risk_gate.kernel`: builds its arrays, loads limit rows, calls it cheaply.

A :class:`KernelCheck` wraps the Book, the reservations and the rate buckets of one gate in a
:class:`~risk_gate.kernel.GateArrays` (no copies: the kernel reads and writes the same
memory) and keeps the limit rows in step with the :class:`~risk_gate.limits.LimitTable`:
rows are loaded per account on first use and all dropped when a limit changes.

``decide`` is the compiled kernel's entry point for its one signature: calling it skips
numba's per-call type dispatch, which costs several times the check itself.
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np

from risk_gate import kernel as _k
from risk_gate.limits import LimitTable
from risk_gate.state import RateState, Reservations
from sequencer.registry import Registry

__all__ = ["KernelCheck", "compiled_decide"]

_I64_MIN = int(np.iinfo(np.int64).min)
_I64_MAX = int(np.iinfo(np.int64).max)
_entry: Any = None


def compiled_decide() -> Any:
    """The entry point of :func:`risk_gate.kernel.decide` for GateArrays + 12 int64 (compiled once per process)."""
    global _entry
    if _entry is None:
        sig = (_k.GateArrays.class_type.instance_type,) + (nb.int64,) * 12
        _entry = _k.decide.compile(sig)
    return _entry


def _flat(arr: np.ndarray) -> np.ndarray:
    """A 1-d view of a C-contiguous array (never a copy: the kernel must see the Book's updates)."""
    out = arr.reshape(-1)
    if not np.shares_memory(out, arr):
        raise ValueError("array is not C-contiguous; a flat view would be a copy")
    return out


def _fits(values: tuple[int, ...]) -> bool:
    return all(_I64_MIN <= v <= _I64_MAX for v in values)


class KernelCheck:
    """The kernel's arrays for one gate, and the limit rows it reads (see the module docstring)."""

    def __init__(self, book: Any, registry: Registry, table: LimitTable, res: Reservations, rates: RateState) -> None:
        acc, ins, ven = registry.valid_masks()
        a, i, _v = book.shape
        self.table = table
        self.stride = i
        self.instruments = [inst.id for inst in registry.instruments]
        self.changes = table.changes
        self.rows = 0
        self.fallback_accounts: set[int] = set()
        self.arrays = _k.GateArrays(
            i, _flat(book.pos), _flat(book.open_buy), _flat(book.open_sell), book.open_orders, book.ref_px, book.ref_ts,
            book.tstate_all, book.tstate_acct, book.tstate_instr,
            acc.view(np.uint8), ins.view(np.uint8), ven.view(np.uint8),
            np.array(self.instruments, dtype=np.int64), registry.unit_notionals(),
            res.buy, res.sell, res.count, res.account_version, res.key_version,
            rates.sec, rates.min, rates.last_ns,
            np.full(a * i, -1, dtype=np.int64),
            np.zeros((max(len(self.instruments), 1), _k.L_COLUMNS), dtype=np.int64),
            np.zeros((max(len(self.instruments), 1), _k.F_COLUMNS), dtype=np.float64),
        )
        self.decide = compiled_decide()

    def sync(self) -> None:
        """Drop every loaded limit row when the limits changed since they were loaded."""
        if self.table.changes != self.changes:
            self.arrays.lim_slot[:] = -1
            self.rows = 0
            self.fallback_accounts.clear()
            self.changes = self.table.changes

    def load(self, account: int) -> bool:
        """Load the limit rows of ``account`` for every instrument; False when they do not fit int64
        (the account is then decided by the reference path)."""
        self.sync()
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
        g = self.arrays
        need = self.rows + len(rows)
        if need > len(g.lim):
            cap = max(need, 2 * len(g.lim))
            lim = np.zeros((cap, _k.L_COLUMNS), dtype=np.int64)
            limf = np.zeros((cap, _k.F_COLUMNS), dtype=np.float64)
            lim[: self.rows] = g.lim[: self.rows]
            limf[: self.rows] = g.limf[: self.rows]
            g.lim = lim
            g.limf = limf
        lim, limf, slots = g.lim, g.limf, g.lim_slot
        base = account * self.stride
        for j, r, row in zip(self.instruments, rows, ints):
            n = self.rows
            lim[n] = row
            limf[n] = (r.max_gross_exposure, r.rate_per_sec, r.rate_per_min)
            slots[base + j] = n
            self.rows = n + 1
        return True

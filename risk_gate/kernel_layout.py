"""The layout of the check kernel's state: the ``meta`` array and the limit row columns.

``meta`` (int64) holds extents at ``M_*``, at ``M_QUIET`` the address of the subscriber's quiet
state (:mod:`consumers.quiet`; 0 = none) and, from ``M_ARRAYS`` on, the address of each
array in :data:`ARRAY_FIELDS` order; ``_arrays`` views that memory in place inside a kernel.
:class:`risk_gate.fastpath.KernelCheck` fills it; :mod:`risk_gate.kernel` reads it.
"""

from __future__ import annotations

from collections import namedtuple

import numba as nb
import numpy as np

from sequencer.native import voidptr as _address

__all__ = [
    "ARRAY_FIELDS", "M_STRIDE", "M_ACCOUNTS", "M_INSTRUMENTS", "M_VENUES", "M_LISTED", "M_ROWS", "M_SET_SHIFT",
    "M_SET_CAP", "M_QUIET", "M_ARRAYS", "BOOK_COUNTS", "BOOK_APPLIED", "M_LENGTH", "L_MAX_LAG", "L_MAX_AGE_NS", "L_PRICE_TTL_NS", "L_MAX_QTY",
    "L_MAX_NOTIONAL", "L_MAX_POS", "L_MAX_OPEN", "L_COLLAR", "L_RESTRICTED", "L_COLUMNS", "F_MAX_GROSS",
    "F_PER_SEC", "F_PER_MIN", "F_COLUMNS",
]

# Columns of the limit rows, lim (int64) and limf (float64): one row per (account, instrument).
L_MAX_LAG, L_MAX_AGE_NS, L_PRICE_TTL_NS, L_MAX_QTY, L_MAX_NOTIONAL, L_MAX_POS, L_MAX_OPEN, L_COLLAR, L_RESTRICTED = range(9)
L_COLUMNS = 9
F_MAX_GROSS, F_PER_SEC, F_PER_MIN = range(3)
F_COLUMNS = 3

# meta[M_*]: extents, the quiet state's address, then from M_ARRAYS on the address of each
# array in ARRAY_FIELDS order.
M_STRIDE, M_ACCOUNTS, M_INSTRUMENTS, M_VENUES, M_LISTED, M_ROWS, M_SET_SHIFT, M_SET_CAP, M_QUIET = range(9)
M_ARRAYS = 9
BOOK_COUNTS = 5
BOOK_APPLIED = 3  # book_counts[BOOK_APPLIED] is the Book's applied seq
# (name, dtype, extent): extent "AI" = accounts x instruments, "A", "I", "V", "L" = listed
# instruments, "1", "R" = limit row capacity (2-d: rows x columns), "S" = the taken-id set's
# capacity (risk_gate.idset; its hash shift is meta[M_SET_SHIFT]), or "K" = the Book's counts
# (BOOK_COUNTS: n_orders, n_anomalies, n_trades, applied_seq, trade-set blocks).
ARRAY_FIELDS = (
    ("pos", np.int64, "AI"),
    ("open_buy", np.int64, "AI"),
    ("open_sell", np.int64, "AI"),
    ("open_orders", np.int64, "A"),
    ("ref_px", np.int64, "I"),
    ("ref_ts", np.int64, "I"),
    ("tstate_all", np.int8, "1"),
    ("tstate_acct", np.int8, "A"),
    ("tstate_instr", np.int8, "I"),
    ("accounts_valid", np.uint8, "A"),
    ("instruments_valid", np.uint8, "I"),
    ("venues_valid", np.uint8, "V"),
    ("instruments", np.int64, "L"),
    ("unit_notional", np.float64, "I"),
    ("res_buy", np.int64, "AI"),
    ("res_sell", np.int64, "AI"),
    ("res_count", np.int64, "A"),
    ("rate_sec", np.float64, "A"),
    ("rate_min", np.float64, "A"),
    ("rate_last_ns", np.int64, "A"),
    ("lim_slot", np.int64, "AI"),
    ("lim", np.int64, "R"),
    ("limf", np.float64, "R"),
    ("ids", np.int64, "S"),
    ("ids_count", np.int64, "1"),
    ("book_counts", np.int64, "K"),
)
M_LENGTH = M_ARRAYS + len(ARRAY_FIELDS)
_Arrays = namedtuple("_Arrays", ["stride"] + [name for name, _dtype, _extent in ARRAY_FIELDS])


@nb.njit(cache=True, inline="always")
def _arrays(meta):
    """Views of the arrays ``meta`` addresses (no copies)."""
    a = meta[M_ACCOUNTS]
    i = meta[M_INSTRUMENTS]
    ai = a * i
    rows = meta[M_ROWS]
    p = M_ARRAYS
    c = nb.carray
    return _Arrays(
        meta[M_STRIDE],
        c(_address(meta[p]), ai, np.int64),
        c(_address(meta[p + 1]), ai, np.int64),
        c(_address(meta[p + 2]), ai, np.int64),
        c(_address(meta[p + 3]), a, np.int64),
        c(_address(meta[p + 4]), i, np.int64),
        c(_address(meta[p + 5]), i, np.int64),
        c(_address(meta[p + 6]), 1, np.int8),
        c(_address(meta[p + 7]), a, np.int8),
        c(_address(meta[p + 8]), i, np.int8),
        c(_address(meta[p + 9]), a, np.uint8),
        c(_address(meta[p + 10]), i, np.uint8),
        c(_address(meta[p + 11]), meta[M_VENUES], np.uint8),
        c(_address(meta[p + 12]), meta[M_LISTED], np.int64),
        c(_address(meta[p + 13]), i, np.float64),
        c(_address(meta[p + 14]), ai, np.int64),
        c(_address(meta[p + 15]), ai, np.int64),
        c(_address(meta[p + 16]), a, np.int64),
        c(_address(meta[p + 17]), a, np.float64),
        c(_address(meta[p + 18]), a, np.float64),
        c(_address(meta[p + 19]), a, np.int64),
        c(_address(meta[p + 20]), ai, np.int64),
        c(_address(meta[p + 21]), (rows, L_COLUMNS), np.int64),
        c(_address(meta[p + 22]), (rows, F_COLUMNS), np.float64),
        c(_address(meta[p + 23]), meta[M_SET_CAP], np.int64),
        c(_address(meta[p + 24]), 1, np.int64),
        c(_address(meta[p + 25]), BOOK_COUNTS, np.int64),
    )

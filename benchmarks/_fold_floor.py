"""The fold floor: the least work a position fold can do per record, as a numba kernel.

Net position per (account, instrument) from fill records, read straight from the 128-byte
records through strided field views: what any fold of the stream pays at least. The plain
Python reference (:func:`fold_positions_reference`) is what the tests compare it with.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sequencer.protocol import Kind, Side, empty_records

__all__ = ["fold_positions", "fold_positions_reference", "make_fills", "positions_array"]

_FILL = int(Kind.FILL)
_BUY = int(Side.BUY)


@njit(cache=True)
def _fold(kind, side, account, instrument, qty, pos):  # pragma: no cover - compiled
    for i in range(kind.shape[0]):
        if kind[i] == _FILL:
            q = qty[i] if side[i] == _BUY else -qty[i]
            pos[account[i], instrument[i]] += q


def positions_array(max_account: int, max_instrument: int) -> np.ndarray:
    """A zeroed int64 position table indexed by (account id, instrument id)."""
    return np.zeros((max_account + 1, max_instrument + 1), dtype=np.int64)


def fold_positions(records: np.ndarray, pos: np.ndarray) -> None:
    """Add every fill's signed quantity to ``pos[account, instrument]`` (numba)."""
    _fold(records["kind"], records["side"], records["account"], records["instrument"], records["qty"], pos)


def fold_positions_reference(records: np.ndarray, pos: np.ndarray) -> None:
    """Plain-Python version of :func:`fold_positions`."""
    for r in records:
        if int(r["kind"]) == _FILL:
            q = int(r["qty"]) if int(r["side"]) == _BUY else -int(r["qty"])
            pos[int(r["account"]), int(r["instrument"])] += q


def make_fills(n: int, accounts: int = 2, instruments: int = 3, seed: int = 7) -> np.ndarray:
    """``n`` fill records with random accounts, instruments, sides and quantities."""
    rng = np.random.default_rng(seed)
    rec = empty_records(n)
    rec["seq"] = np.arange(1, n + 1)
    rec["kind"] = _FILL
    rec["account"] = rng.integers(1, accounts + 1, n)
    rec["instrument"] = rng.integers(1, instruments + 1, n)
    rec["side"] = rng.integers(1, 3, n)
    rec["qty"] = rng.integers(1, 1000, n)
    rec["price"] = rng.integers(1, 10**7, n)
    return rec

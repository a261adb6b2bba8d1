"""``GateFold``: the Book plus the gate's limit table, folded from the same ordered stream.

Besides the Book, each batch's ``limit`` records are applied to the :class:`LimitTable` in
seq order (found with a numpy mask), and the order ids of ``new_order``/``refused`` records
are remembered so the duplicate-id check is a set lookup (``seen_ids``; and each batch's ids
go to ``on_order_ids``, the gate's kernel-side copy, :class:`~risk_gate.idset.OrderIdSet`,
which ``on_restored`` rebuilds after a restore). Reservations are *not* fold state (they are
this gate's own approvals in flight): the fold only reports which order ids came back,
through ``on_new_orders``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from consumers.fold import BookFold
from risk_gate.limits import LimitTable
from sequencer.protocol import Kind
from sequencer.registry import Registry

__all__ = ["GateFold"]

_NEW = int(Kind.NEW_ORDER)
_REFUSED = int(Kind.REFUSED)
_LIMIT = int(Kind.LIMIT)


class GateFold(BookFold):
    """Book (without cost basis and realized PnL: no limit reads them) + limits in force + the
    set of order ids seen on the stream."""

    FOLD_TYPE = "gate"
    # 2: the trade-id set is kept as sorted 64-id blocks (``trade_blocks``), no trade log;
    # 64-byte order rows without ``leaves``; ``pnl`` in the snapshot meta.
    STATE_VERSION = 2

    def __init__(self, registry: Registry | None = None, table: LimitTable | None = None, *, capacity: int = 1024) -> None:
        super().__init__(registry, capacity=capacity, pnl=False)
        self.table = table if table is not None else LimitTable(registry=self.registry)
        self.seen_ids: set[int] = set()
        self.on_new_orders: Callable[[list[int]], None] | None = None
        self.on_order_ids: Callable[[np.ndarray], None] | None = None
        self.on_restored: Callable[[], None] | None = None
        self.applied = int(self.book.applied_seq)  # what applied_seq returns, as a plain attribute (the gate's hot path)

    @property
    def applied_seq(self) -> int:
        """Seq of the last record applied: a Python int refreshed once per batch, not a numpy read per check."""
        return self.applied

    def apply(self, records: np.ndarray) -> None:
        """Fold a contiguous batch: Book first, then limit changes and order ids of the batch."""
        super().apply(records)
        self.applied = int(self.book.applied_seq)
        kinds = records["kind"]
        limits = kinds == _LIMIT
        if limits.any():
            self.table.apply(records[limits])
        orders = (kinds == _NEW) | (kinds == _REFUSED)
        if orders.any():
            ids = records["order_id"][orders]
            self.seen_ids.update(ids.tolist())
            if self.on_order_ids is not None:
                self.on_order_ids(ids)
            if self.on_new_orders is not None:
                new = records["order_id"][kinds == _NEW].tolist()
                if new:
                    self.on_new_orders(new)

    def _state_arrays(self) -> dict[str, np.ndarray]:
        out = dict(super()._state_arrays())
        values = self.table.to_dict()["values"]
        out["limits"] = np.array(values, dtype=np.int64).reshape(-1, 4)
        return out

    def _state_meta(self) -> dict[str, Any]:
        meta = dict(super()._state_meta())
        t = self.table.to_dict()
        meta["limit_changes"] = t["changes"]
        meta["limit_last_change_seq"] = t["last_change_seq"]
        meta["limit_ignored"] = t["ignored"]
        return meta

    def _load_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray], applied_seq: int) -> None:
        book_arrays = {k: v for k, v in arrays.items() if k != "limits"}
        super()._load_state(meta, book_arrays, applied_seq)
        self.applied = int(self.book.applied_seq)
        self.table.load_dict(
            {
                "values": arrays["limits"].tolist(),
                "changes": meta["limit_changes"],
                "last_change_seq": meta["limit_last_change_seq"],
                "ignored": meta["limit_ignored"],
            }
        )
        self.seen_ids = set(self.book.live_orders()["order_id"].tolist())
        if self.on_restored is not None:
            self.on_restored()

"""The fold interface every consumer implements, and ``BookFold``, the shared Book fold.

A fold owns state derived only from the ordered stream. The caller (``Subscriber``, replay,
audit) guarantees that every batch passed to :meth:`Fold.apply` is contiguous and starts at
``applied_seq + 1``. Folds are deterministic: no clocks, sockets or files inside ``apply``.

Snapshots (``consumers.snapshot``) are versioned files holding the state arrays and the seq
they reflect; restoring one with another format version, fold type, state version or
registry shape raises :class:`~consumers.snapshot.SnapshotError` naming the mismatch.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from consumers.book import Book, BookError, registry_shape
from consumers.snapshot import SnapshotError, read_snapshot, write_snapshot
from sequencer.registry import Registry, default_registry

__all__ = ["Fold", "BookFold", "fold_journal"]


class Fold:
    """Base class of consumer folds.

    Subclasses implement :meth:`apply`, :attr:`applied_seq` and the three snapshot hooks
    (:meth:`_state_arrays`, :meth:`_state_meta`, :meth:`_load_state`); ``state_hash``,
    ``snapshot`` and ``restore`` are built on the hooks. ``FOLD_TYPE`` names the fold in
    snapshot files and ``STATE_VERSION`` is bumped whenever the state layout changes.
    """

    FOLD_TYPE = "fold"
    STATE_VERSION = 1

    @property
    def applied_seq(self) -> int:
        """Seq of the last record applied (0 before any)."""
        raise NotImplementedError

    def apply(self, records: np.ndarray) -> None:
        """Fold a contiguous batch of ``RECORD_DTYPE`` records starting at ``applied_seq + 1``."""
        raise NotImplementedError

    # -- hooks ---------------------------------------------------------------------------
    def _state_arrays(self) -> dict[str, np.ndarray]:
        """The state as named arrays, in a fixed order (used by hash and snapshot)."""
        raise NotImplementedError

    def _state_meta(self) -> dict[str, Any]:
        """JSON-able facts a snapshot must match on restore (e.g. array shapes)."""
        return {}

    def _load_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray], applied_seq: int) -> None:
        """Replace the state with a snapshot's arrays; raise ``SnapshotError`` on mismatch."""
        raise NotImplementedError

    # -- built on the hooks --------------------------------------------------------------
    def state_hash(self) -> str:
        """blake2b (hex) over ``applied_seq`` and every state array in order."""
        h = hashlib.blake2b(digest_size=32)
        h.update(f"{self.FOLD_TYPE}/{self.STATE_VERSION}".encode())
        h.update(int(self.applied_seq).to_bytes(8, "little", signed=True))
        for name, arr in self._state_arrays().items():
            h.update(f"{name}:{arr.dtype.descr}:{arr.shape}".encode())
            h.update(np.ascontiguousarray(arr).view(np.uint8).reshape(-1).data)
        return h.hexdigest()

    def snapshot(self, path: str | Path) -> None:
        """Write the state and the seq it reflects to ``path`` (atomic replace)."""
        write_snapshot(path, self.FOLD_TYPE, self.STATE_VERSION, self.applied_seq, self._state_meta(), self._state_arrays())

    def restore(self, path: str | Path) -> None:
        """Replace this fold's state with the snapshot at ``path``."""
        applied_seq, meta, arrays = read_snapshot(path, self.FOLD_TYPE, self.STATE_VERSION)
        mine = self._state_meta()
        for key, value in mine.items():
            if meta.get(key) != value:
                raise SnapshotError(f"{path}: snapshot {key} is {meta.get(key)!r}, this {self.FOLD_TYPE} fold has {value!r}")
        self._load_state(meta, arrays, applied_seq)


class BookFold(Fold):
    """The Book as a :class:`Fold`: positions, open quantities, prices, trading states, orders.

    ``self.book`` is the :class:`~consumers.book.Book` (its arrays are public); subclasses
    (the OMS, the gate) add queries or extra state and call ``super()`` in the hooks.
    ``pnl=False`` folds a Book without cost basis and realized PnL (what the gate keeps).
    """

    FOLD_TYPE = "book"
    # 2: the trade-id set is kept as sorted 64-id blocks (``trade_blocks``), no trade log;
    # 64-byte order rows without ``leaves``; ``pnl`` in the snapshot meta.
    STATE_VERSION = 2

    def __init__(self, registry: Registry | None = None, *, capacity: int = 1024, pnl: bool = True) -> None:
        self.registry = registry if registry is not None else default_registry()
        self.book = Book(self.registry, capacity=capacity, pnl=pnl)

    @property
    def applied_seq(self) -> int:
        return self.book.applied_seq

    def apply(self, records: np.ndarray) -> None:
        """Fold a batch into the Book; raises :class:`~consumers.book.BookError` before applying a bad one."""
        self.book.apply(records)

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return self.book.state_arrays()

    def _state_meta(self) -> dict[str, Any]:
        return {"shape": list(registry_shape(self.registry)), "pnl": self.book.pnl}

    def _load_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray], applied_seq: int) -> None:
        try:
            self.book.load_arrays(arrays, applied_seq)
        except BookError as exc:
            raise SnapshotError(f"snapshot does not fit this Book: {exc}") from None

    @classmethod
    def from_snapshot(cls, path: str | Path, registry: Registry | None = None) -> "BookFold":
        """A new fold of this class restored from ``path``."""
        fold = cls(registry)
        fold.restore(path)
        return fold


def fold_journal(fold: Fold, journal_dir: str | Path, until: int | None = None) -> Fold:
    """Apply the journal at ``journal_dir`` from ``fold.applied_seq + 1`` through ``until``.

    Reads through ``sequencer.journal.JournalReader`` (a corrupt frame raises its
    ``JournalCorrupt``, naming segment, offset and seq). Returns ``fold``.
    """
    from sequencer.journal import JournalReader

    reader = JournalReader(journal_dir)
    try:
        start = fold.applied_seq + 1
        if until is not None and until < start:
            return fold
        for chunk in reader.read(start, until):
            fold.apply(chunk)
    finally:
        reader.close()
    return fold

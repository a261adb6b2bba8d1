"""Counters the sequencer keeps for ``seqrisk status``: events by kind, errors by code, producers."""

from __future__ import annotations

import numpy as np

from sequencer.codes import ResultCode
from sequencer.messages import ProducerStatus
from sequencer.protocol import KIND_NAMES

__all__ = ["ServiceStats"]


class ServiceStats:
    """Mutable counters; ``producer(p)`` is ``[frames, records, duplicates, errors]``."""

    def __init__(self) -> None:
        self.kind_counts = np.zeros(256, np.int64)
        self.errors: dict[int, int] = {}
        self.producers: dict[int, list[int]] = {}

    def count_error(self, code: ResultCode) -> None:
        """One more error of ``code``."""
        self.errors[int(code)] = self.errors.get(int(code), 0) + 1

    def producer(self, producer: int) -> list[int]:
        """The counters of ``producer`` (created on first use)."""
        st = self.producers.get(producer)
        if st is None:
            st = self.producers[producer] = [0, 0, 0, 0]
        return st

    def add_records(self, records: np.ndarray) -> None:
        """Count stamped records by kind."""
        self.kind_counts += np.bincount(records["kind"], minlength=256)[:256]

    def counts_by_name(self) -> dict[str, int]:
        """``{kind name: count}`` for kinds seen."""
        return {KIND_NAMES.get(k, f"unknown({k})"): int(c) for k, c in enumerate(self.kind_counts.tolist()) if c}

    def errors_by_name(self) -> dict[str, int]:
        """``{ResultCode name: count}``."""
        return {_code_name(c): n for c, n in sorted(self.errors.items())}

    def producer_status(self, last_pseq: dict[int, int]) -> list[ProducerStatus]:
        """One :class:`ProducerStatus` per producer seen."""
        return [ProducerStatus(p, last_pseq.get(p, 0), *st) for p, st in sorted(self.producers.items())]


def _code_name(code: int) -> str:
    try:
        return ResultCode(code).name
    except ValueError:
        return str(code)

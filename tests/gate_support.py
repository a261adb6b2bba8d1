"""Test helpers for the gate: record builders and an in-process subscriber stand-in."""

from __future__ import annotations

from typing import Any

import numpy as np

from sequencer.protocol import RECORD_DTYPE, Kind

T0 = 1_700_000_000_000_000_000  # a fixed "sequencer clock" origin (ns)


def rec(kind: Kind, **fields: Any) -> np.ndarray:
    """One record of ``kind`` with ``fields`` set (text as str or bytes)."""
    r = np.zeros(1, RECORD_DTYPE)
    r["kind"] = int(kind)
    for k, v in fields.items():
        r[k] = v.encode() if k == "text" and isinstance(v, str) else v
    return r


def stamp(records: list[np.ndarray], first_seq: int, ts_ns: int = T0) -> np.ndarray:
    """Concatenate and stamp records with contiguous seqs from ``first_seq``."""
    out = np.concatenate(records) if records else np.zeros(0, RECORD_DTYPE)
    out["seq"] = np.arange(first_seq, first_seq + len(out))
    out["epoch"] = 1
    ts = out["ts_ns"]
    ts[ts == 0] = ts_ns
    return out


class FakeSubscriber:
    """Stands in for ``consumers.Subscriber``: batches queued with ``push`` are applied on ``poll``."""

    def __init__(self, fold: Any) -> None:
        self.fold = fold
        self.pending: list[np.ndarray] = []
        self.hwm = 0
        self.hwm_ts_ns = 0
        self.recovering = False
        self.error: str | None = None
        self.next_seq = 1
        self.polls = 0

    @property
    def applied_seq(self) -> int:
        return self.fold.applied_seq

    def push(self, records: list[np.ndarray], ts_ns: int = T0, heartbeat: bool = True) -> np.ndarray:
        batch = stamp(records, self.next_seq, ts_ns)
        self.next_seq += len(batch)
        self.pending.append(batch)
        if heartbeat:
            self.heartbeat(self.next_seq - 1, ts_ns)
        return batch

    def heartbeat(self, hwm: int, ts_ns: int) -> None:
        self.hwm = hwm
        self.hwm_ts_ns = ts_ns

    def poll(self, max_frames: int = 64) -> int:
        self.polls += 1
        n = 0
        while self.pending and n < max_frames:
            self.fold.apply(self.pending.pop(0))
            n += 1
        return n

    def close(self) -> None:
        pass


class FakeProducer:
    """Collects submitted records; ``poll`` returns no replies."""

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []
        self.next_pseq = 1

    def submit(self, records: np.ndarray) -> int:
        recs = np.array(records, ndmin=1, copy=True)
        token = self.next_pseq
        recs["producer_seq"] = np.arange(token, token + len(recs))
        self.next_pseq += len(recs)
        self.frames.append(recs)
        return token

    def poll(self, timeout_ms: int = 0) -> list:
        return []

    def flush(self, timeout_s: float = 1.0) -> list:
        return []

    def close(self) -> None:
        pass

    @property
    def records(self) -> np.ndarray:
        return np.concatenate(self.frames) if self.frames else np.zeros(0, RECORD_DTYPE)

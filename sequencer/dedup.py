"""Idempotent ingest: which (producer, producer_seq) pairs were stamped, and as which seqs.

Per producer the table keeps *runs*: maximal stretches where producer_seq and seq both step
by one inside one epoch, as ``(pseq_start, seq_start, length, epoch)``. A (producer,
producer_seq) pair is stamped at most once; producer seqs normally increase, but a frame lost
in a sequencer crash can be resent after newer frames were stamped, so runs below the
producer's highest stamped seq (*late* runs) are kept in a small sorted side list. A producer sending
contiguous producer seqs costs one run per interleaving, not one entry per event. Runs live
in sealed numpy chunks of :data:`CHUNK` runs (binary search with ``searchsorted``) plus a
short Python tail that absorbs appends cheaply; the table is rebuilt from the journal on
restart with vectorized numpy (:meth:`DedupTable.rebuild_from`).
"""

from __future__ import annotations

from bisect import bisect_right, insort
from typing import Iterable

import numpy as np

__all__ = ["DedupTable", "CHUNK"]

CHUNK = 4096


class _Runs:
    """The runs of one producer, sorted by producer seq (which strictly increases)."""

    __slots__ = ("chunks", "chunk_first", "tp", "ts", "tl", "te", "last_pseq", "late")

    def __init__(self) -> None:
        self.chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.chunk_first: list[int] = []
        self.tp: list[int] = []
        self.ts: list[int] = []
        self.tl: list[int] = []
        self.te: list[int] = []
        self.last_pseq = 0
        # Runs stamped below last_pseq (resends that arrived after newer frames), sorted.
        self.late: list[tuple[int, int, int, int]] = []

    def add_run(self, pseq: int, seq: int, length: int, epoch: int) -> None:
        if pseq <= self.last_pseq:
            insort(self.late, (pseq, seq, length, epoch))
            return
        tp = self.tp
        if tp:
            j = len(tp) - 1
            n = self.tl[j]
            if tp[j] + n == pseq and self.ts[j] + n == seq and self.te[j] == epoch:
                self.tl[j] = n + length
                self.last_pseq = pseq + length - 1
                return
        if len(tp) >= CHUNK:
            self._seal()
        self.tp.append(pseq)
        self.ts.append(seq)
        self.tl.append(length)
        self.te.append(epoch)
        self.last_pseq = pseq + length - 1

    def _seal(self) -> None:
        self.chunks.append((
            np.array(self.tp, np.int64), np.array(self.ts, np.int64),
            np.array(self.tl, np.int64), np.array(self.te, np.uint32),
        ))
        self.chunk_first.append(self.tp[0])
        self.tp, self.ts, self.tl, self.te = [], [], [], []

    def extend(self, ps: np.ndarray, ss: np.ndarray, ls: np.ndarray, es: np.ndarray) -> None:
        """Append many runs at once, in stamping order."""
        if len(ps) and (ps[0] <= self.last_pseq or np.any(ps[1:] <= ps[:-1] + ls[:-1] - 1)):
            # Late runs among them: take the careful path, one run at a time.
            for run in zip(ps.tolist(), ss.tolist(), ls.tolist(), es.tolist()):
                self.add_run(*run)
            return
        if len(ps) and self.tp:
            self.add_run(int(ps[0]), int(ss[0]), int(ls[0]), int(es[0]))
            ps, ss, ls, es = ps[1:], ss[1:], ls[1:], es[1:]
        if not len(ps):
            return
        if self.tp:
            self._seal()
        for lo in range(0, len(ps), CHUNK):
            hi = lo + CHUNK
            part = (ps[lo:hi].astype(np.int64), ss[lo:hi].astype(np.int64),
                    ls[lo:hi].astype(np.int64), es[lo:hi].astype(np.uint32))
            if hi >= len(ps):
                self.tp, self.ts, self.tl, self.te = (a.tolist() for a in part)
            else:
                self.chunks.append(part)
                self.chunk_first.append(int(part[0][0]))
        self.last_pseq = int(ps[-1] + ls[-1] - 1)

    def find(self, pseq: int) -> tuple[int, int, int, int] | None:
        """The run ``(pseq_start, seq_start, length, epoch)`` holding ``pseq``, or None."""
        found = self._find_ordered(pseq)
        if found is None and self.late:
            j = bisect_right(self.late, (pseq, 2**63)) - 1
            if j >= 0 and pseq < self.late[j][0] + self.late[j][2]:
                return self.late[j]
        return found

    def _find_ordered(self, pseq: int) -> tuple[int, int, int, int] | None:
        tp = self.tp
        if tp and pseq >= tp[0]:
            j = bisect_right(tp, pseq) - 1
            if pseq < tp[j] + self.tl[j]:
                return tp[j], self.ts[j], self.tl[j], self.te[j]
            return None
        c = bisect_right(self.chunk_first, pseq) - 1
        if c < 0:
            return None
        p, s, ln, e = self.chunks[c]
        j = int(np.searchsorted(p, pseq, side="right")) - 1
        if j < 0 or pseq >= p[j] + ln[j]:
            return None
        return int(p[j]), int(s[j]), int(ln[j]), int(e[j])

    def seq_of(self, pseq: int) -> tuple[int, int] | None:
        run = self.find(pseq)
        if run is None:
            return None
        return run[1] + (pseq - run[0]), run[3]


class DedupTable:
    """Every stamped (producer, producer_seq) -> (seq, epoch), kept as runs per producer."""

    def __init__(self) -> None:
        self._producers: dict[int, _Runs] = {}

    def last(self, producer: int) -> int:
        """Highest producer seq stamped for ``producer`` (0 if none)."""
        runs = self._producers.get(producer)
        return runs.last_pseq if runs is not None else 0

    def producers(self) -> dict[int, int]:
        """``{producer: last producer seq}``."""
        return {p: r.last_pseq for p, r in self._producers.items()}

    def add_run(self, producer: int, pseq: int, seq: int, length: int, epoch: int) -> None:
        """Record that producer seqs ``pseq..pseq+length-1`` got seqs ``seq..seq+length-1``."""
        runs = self._producers.get(producer)
        if runs is None:
            runs = self._producers[producer] = _Runs()
        runs.add_run(pseq, seq, length, epoch)

    def add(self, producer: int, pseqs: np.ndarray, first_seq: int, epoch: int) -> None:
        """Record that ``pseqs`` (strictly increasing, none stamped before) got seqs ``first_seq..``."""
        runs = self._producers.get(producer)
        if runs is None:
            runs = self._producers[producer] = _Runs()
        n = len(pseqs)
        p0 = int(pseqs[0])
        if int(pseqs[n - 1]) - p0 == n - 1:
            runs.add_run(p0, first_seq, n, epoch)
            return
        brk = np.flatnonzero(np.diff(pseqs) != 1) + 1
        starts = np.concatenate(([0], brk))
        lens = np.diff(np.concatenate((starts, [n])))
        for s, ln in zip(starts.tolist(), lens.tolist()):
            runs.add_run(int(pseqs[s]), first_seq + s, ln, epoch)

    def stamped_any(self, producer: int, pseqs: np.ndarray) -> bool:
        """Whether any of ``pseqs`` was stamped for ``producer``."""
        runs = self._producers.get(producer)
        if runs is None:
            return False
        return any(runs.find(p) is not None for p in pseqs.tolist())

    def lookup(self, producer: int, pseqs: np.ndarray) -> tuple[int, int, int] | None:
        """``(first_seq, last_seq, epoch)`` when every one of ``pseqs`` was stamped, else None.

        ``epoch`` is the epoch of the first record's stamping.
        """
        runs = self._producers.get(producer)
        if runs is None or not len(pseqs):
            return None
        p0, p1 = int(pseqs[0]), int(pseqs[-1])
        first = runs.find(p0)
        if first is None:
            return None
        if p1 < first[0] + first[2]:
            # The whole frame falls inside one run: every producer seq of it was stamped.
            return first[1] + (p0 - first[0]), first[1] + (p1 - first[0]), first[3]
        last_seq = 0
        for p in pseqs.tolist():
            got = runs.seq_of(p)
            if got is None:
                return None
            last_seq = got[0]
        return first[1] + (p0 - first[0]), last_seq, first[3]

    def rebuild_from(self, chunks: Iterable[np.ndarray]) -> int:
        """Add the stamped records of a journal (record arrays in seq order); returns how many."""
        total = 0
        for recs in chunks:
            n = len(recs)
            if not n:
                continue
            total += n
            prod = recs["producer"]
            order = np.argsort(prod, kind="stable")
            p = prod[order]
            ps = recs["producer_seq"][order]
            s = recs["seq"][order]
            e = recs["epoch"][order]
            brk = (p[1:] != p[:-1]) | (np.diff(ps) != 1) | (np.diff(s) != 1) | (e[1:] != e[:-1])
            starts = np.concatenate(([0], np.flatnonzero(brk) + 1))
            lens = np.diff(np.concatenate((starts, [n])))
            rp = p[starts]
            bounds = np.concatenate(([0], np.flatnonzero(rp[1:] != rp[:-1]) + 1, [len(starts)]))
            for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
                producer = int(rp[lo])
                runs = self._producers.get(producer)
                if runs is None:
                    runs = self._producers[producer] = _Runs()
                sel = starts[lo:hi]
                runs.extend(ps[sel], s[sel], lens[lo:hi], e[sel])
        return total

"""Summaries of a journal built from its frame indexes: segments, epochs, counts by kind."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from sequencer.journal._segments import SegmentSet
from sequencer.protocol import KIND_NAMES, RECORD_DTYPE

__all__ = ["SegmentInfo", "segment_infos", "epoch_ranges", "concat_records", "count_kinds"]


@dataclass(frozen=True)
class SegmentInfo:
    """One segment file: its name, seq range (``last_seq = first_seq - 1`` when empty), size."""

    name: str
    first_seq: int
    last_seq: int
    frames: int
    records: int
    bytes: int
    epochs: tuple[int, ...]
    sealed: bool


def segment_infos(segset: SegmentSet) -> list[SegmentInfo]:
    """A :class:`SegmentInfo` per segment, as of now."""
    snap = segset.snapshot()
    out = []
    for i, (seg, n) in enumerate(snap):
        idx = seg.index
        epochs = tuple(sorted(set(idx.epoch[:n])))
        records = int(sum(idx.count[:n]))
        size = idx.offset[n - 1] + 32 + idx.count[n - 1] * 128 if n else 0
        out.append(SegmentInfo(seg.name, seg.first_seq, seg.last_seq(n), n, records, size, epochs, i < len(snap) - 1))
    return out


def epoch_ranges(segset: SegmentSet) -> list[tuple[int, int, int]]:
    """``(epoch, first_seq, last_seq)`` per run of frames with one epoch, in seq order."""
    runs: list[tuple[int, int, int]] = []
    for seg, n in segset.snapshot():
        if not n:
            continue
        idx = seg.index
        epoch = np.frombuffer(idx.epoch[:n], dtype=np.int64)
        first = np.frombuffer(idx.first_seq[:n], dtype=np.int64)
        last = first + np.frombuffer(idx.count[:n], dtype=np.int64) - 1
        starts = np.flatnonzero(np.diff(epoch, prepend=-1))
        ends = np.append(starts[1:], n) - 1
        for e, a, b in zip(epoch[starts].tolist(), first[starts].tolist(), last[ends].tolist()):
            if runs and runs[-1][0] == e:
                runs[-1] = (e, runs[-1][1], b)
            else:
                runs.append((e, a, b))
    return runs


def concat_records(chunks: Iterable[np.ndarray]) -> np.ndarray:
    """Concatenate record chunks into one writable array (empty array when there are none)."""
    parts = list(chunks)
    if not parts:
        return np.zeros(0, dtype=RECORD_DTYPE)
    return np.concatenate(parts)


def count_kinds(chunks: Iterable[np.ndarray]) -> dict[str, int]:
    """Records per kind name over all chunks (unknown kinds as ``unknown(<n>)``)."""
    counts = np.zeros(256, dtype=np.int64)
    for chunk in chunks:
        counts += np.bincount(chunk["kind"], minlength=256)
    return {KIND_NAMES.get(k, f"unknown({k})"): int(counts[k]) for k in np.flatnonzero(counts)}


class RecordReads:
    """The reads :class:`Journal` and :class:`JournalReader` share, over their ``_set``."""

    _set: SegmentSet

    def read(self, from_seq: int = 1, to_seq: int | None = None, verify: bool = True) -> Iterator[np.ndarray]:
        """Read-only record arrays (chunks) for ``from_seq .. to_seq`` inclusive, in seq order.

        Sees every append made before the call. Each chunk is a zero-copy view of the mapped
        segment (frames of 64+ records) or a copy gathering several small frames. ``verify``
        checks each frame's checksum as it goes.
        """
        return self._set.iter_records(from_seq, to_seq, verify)

    def read_array(self, from_seq: int = 1, to_seq: int | None = None, verify: bool = True) -> np.ndarray:
        """The same range as one (copied) record array."""
        return concat_records(self.read(from_seq, to_seq, verify))

    def segments(self) -> list[SegmentInfo]:
        """One :class:`SegmentInfo` per segment file."""
        return segment_infos(self._set)

    def epochs(self) -> list[tuple[int, int, int]]:
        """``(epoch, first_seq, last_seq)`` for each run of one epoch, in seq order."""
        return epoch_ranges(self._set)

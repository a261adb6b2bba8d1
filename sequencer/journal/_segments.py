"""The set of segments of one journal directory: discovery, recovery walk and record reads."""

from __future__ import annotations

import mmap
import os
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from sequencer.journal._errors import JournalCorrupt, JournalError, Problem
from sequencer.journal._format import FrameIndex, check_frame_bytes, list_segments, read_index, walk_frames
from sequencer.protocol import HEADER_SIZE, RECORD_DTYPE, RECORD_SIZE

__all__ = ["Segment", "SegmentSet", "SMALL_FRAME", "GATHER_RECORDS"]

# Frames with fewer records than this are copied together into one chunk on read: one
# numpy view per tiny frame would cost more than the copy.
SMALL_FRAME = 64
GATHER_RECORDS = 4096
# From this many frames to check at once, reads verify them with the fast walk.
FAST_VERIFY_FRAMES = 256
_UNITS_PER_RECORD = RECORD_SIZE // 32


class Segment:
    """One segment file: its frame index, the end of its valid bytes and a read-only mapping."""

    __slots__ = ("path", "name", "first_seq", "index", "end", "verified", "_map")

    def __init__(self, first_seq: int, path: Path) -> None:
        self.path = path
        self.name = path.name
        self.first_seq = first_seq
        self.index = FrameIndex()
        self.end = 0
        # Frames before this byte offset had their checksum checked since this process found
        # them (walked at open/refresh, appended by this writer, or verified by a read).
        self.verified = 0
        self._map: mmap.mmap | None = None

    def last_seq(self, n: int | None = None) -> int:
        """Seq of the last record among the first ``n`` frames (``first_seq - 1`` if none)."""
        last = self.index.last_seq(n)
        return self.first_seq - 1 if last < 0 else last

    def last_epoch(self) -> int:
        """Epoch of the last frame (0 if the segment is empty)."""
        return self.index.epoch[-1] if len(self.index) else 0

    def mapping(self, need: int) -> mmap.mmap:
        """A read-only mapping covering at least ``need`` bytes; remapped when the file grew.

        An old mapping is dropped, not closed: numpy views handed out keep it alive.
        """
        # A local, not self._map, is returned: a writer thread may drop_mapping() meanwhile.
        m = self._map
        if m is None or len(m) < need:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < need:
                    raise JournalError(f"segment {self.name} is {size} bytes, expected at least {need} (truncated under us?)")
                m = self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        return m

    def drop_mapping(self) -> None:
        """Forget the mapping (views already handed out keep theirs alive)."""
        self._map = None


class SegmentSet:
    """All segments of a journal directory, discovered and walked incrementally.

    ``refresh`` picks up segments and bytes written since the last call. Sealed segments use
    their sidecar index when it matches (unless ``verify``); the last segment is always walked
    with checksums. A problem with valid data after it is corruption: ``refresh(strict=True)``
    raises :class:`JournalCorrupt`, otherwise it is kept in ``corrupt`` and reads that reach it
    raise. A torn end of the last segment is kept in ``tail_problem``; data stops before it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.segments: list[Segment] = []
        self.tail_problem: Problem | None = None
        self.corrupt: Problem | None = None
        self.lock = threading.Lock()
        self.indexes_rebuilt: list[str] = []

    @property
    def last_seq(self) -> int:
        for seg in reversed(self.segments):
            if len(seg.index):
                return seg.last_seq()
        return 0

    @property
    def first_seq(self) -> int:
        for seg in self.segments:
            if len(seg.index):
                return seg.index.first_seq[0]
        return 0

    @property
    def last_epoch(self) -> int:
        for seg in reversed(self.segments):
            if len(seg.index):
                return seg.last_epoch()
        return 0

    def refresh(self, verify: bool = False, strict: bool = True) -> None:
        """Discover new segments and walk new bytes; see the class docstring for problems."""
        self.corrupt = None
        try:
            self._refresh(verify)
        except JournalCorrupt as exc:
            self.corrupt = exc.problem
            if strict:
                raise

    def _refresh(self, verify: bool) -> None:
        listed = list_segments(self.path)
        known = [(s.first_seq, s.path) for s in self.segments]
        if listed[: len(known)] != known:
            # Segments vanished or were renamed under us: start over rather than guess.
            self.segments = []
        self.tail_problem = None
        for i, (first, path) in enumerate(listed):
            last = i == len(listed) - 1
            if i < len(self.segments):
                seg = self.segments[i]
            else:
                seg = Segment(first, path)
                if i and first != self.segments[i - 1].last_seq() + 1:
                    want = self.segments[i - 1].last_seq() + 1
                    raise JournalCorrupt(
                        Problem(path.name, 0, want, f"segment starts at seq {first}, expected {want} (segment missing or misnamed)")
                    )
                self.segments.append(seg)
            self._walk(seg, last, verify)
            if self.tail_problem is not None:
                break

    def _walk(self, seg: Segment, last: bool, verify: bool) -> None:
        size = os.stat(seg.path).st_size
        if size <= seg.end:
            return
        if seg.end == 0 and not last and not verify:
            idx = read_index(seg.path, seg.first_seq, size)
            if idx is not None:
                seg.index, seg.end, seg.verified = idx, size, 0
                return
        prev = self.segments[self.segments.index(seg) - 1] if seg is not self.segments[0] else None
        expect = seg.last_seq() + 1
        min_epoch = seg.last_epoch() if len(seg.index) else (prev.last_epoch() if prev else 0)
        buf = seg.mapping(size)
        end, problem = walk_frames(buf, seg.name, seg.end, size, expect, min_epoch, seg.index, True)
        if seg.verified == seg.end:
            seg.verified = end
        seg.end = end
        if not last:
            del buf
            seg.drop_mapping()
        if not last and seg.end == size:
            self.indexes_rebuilt.append(seg.name)
        if problem is None:
            return
        if last and problem.torn:
            self.tail_problem = problem
            return
        if not last and problem.torn:
            problem = Problem(problem.segment, problem.offset, problem.seq, problem.reason + " (not the last segment)", False)
        raise JournalCorrupt(problem)

    def snapshot(self) -> list[tuple[Segment, int]]:
        """``(segment, frame count)`` pairs as of now; reads stop there even while appends go on."""
        with self.lock:
            return [(s, len(s.index)) for s in self.segments]

    def iter_records(self, from_seq: int, to_seq: int | None, verify: bool) -> Iterator[np.ndarray]:
        """Read-only record arrays covering ``from_seq .. to_seq`` (inclusive) in seq order.

        When a corrupt frame stopped the walk and the range reaches past the last good seq,
        everything before it is yielded and then :class:`JournalCorrupt` is raised.
        """
        snap = self.snapshot()
        corrupt = self.corrupt
        last = max((s.last_seq(n) for s, n in snap if n), default=0)
        if corrupt is not None and (to_seq is None or to_seq > last):
            to_seq, raise_after = last, True
        else:
            to_seq, raise_after = (last if to_seq is None else to_seq), False
        if to_seq >= from_seq:
            firsts = [s.first_seq for s, _ in snap]
            start = max(bisect_right(firsts, from_seq) - 1, 0)
            for pos, (seg, n) in enumerate(snap[start:], start):
                if n == 0:
                    continue
                if seg.index.first_seq[0] > to_seq:
                    break
                yield from _segment_records(seg, n, from_seq, to_seq, verify)
                if pos < len(snap) - 1:
                    # A mapping holds a file descriptor: keep only the tail's between reads
                    # (chunks handed out keep theirs alive as long as they are referenced).
                    seg.drop_mapping()
        if raise_after:
            raise JournalCorrupt(corrupt)


def _segment_records(seg: Segment, n: int, from_seq: int, to_seq: int, verify: bool) -> Iterator[np.ndarray]:
    """Chunks of one segment's records in ``from_seq .. to_seq``: a view per frame of
    ``SMALL_FRAME``+ records, runs of smaller frames gathered into copies of up to
    ``GATHER_RECORDS`` records. Works on index slices, not per frame in Python."""
    idx = seg.index
    i = idx.find(from_seq, n)
    k = bisect_right(idx.first_seq, to_seq, 0, n)
    if k <= i:
        return
    need = idx.offset[k - 1] + HEADER_SIZE + idx.count[k - 1] * RECORD_SIZE
    buf = seg.mapping(need)
    if verify and need > seg.verified:
        _verify_frames(seg, buf, i, k)
    # Slices of the index columns are private copies: the writer may grow the columns meanwhile.
    first = np.frombuffer(idx.first_seq[i:k], dtype=np.int64)
    count = np.frombuffer(idx.count[i:k], dtype=np.int64)
    lo = np.maximum(from_seq - first, 0)
    take = np.maximum(np.minimum(to_seq - first + 1, count) - lo, 0)
    start = np.frombuffer(idx.offset[i:k], dtype=np.int64) + HEADER_SIZE + lo * RECORD_SIZE
    big = np.flatnonzero(take >= SMALL_FRAME).tolist() + [k - i]
    j = 0
    for b in big:
        while j < b:
            # A run of small frames j..b-1: gather them in chunks of about GATHER_RECORDS.
            csum = np.cumsum(take[j:b])
            stop = j + max(int(np.searchsorted(csum, GATHER_RECORDS, side="left")) + 1, 1)
            stop = min(stop, b)
            if csum[stop - j - 1]:
                yield _gather(buf, need, start[j:stop], take[j:stop])
            j = stop
        if b < k - i:
            yield np.frombuffer(buf, dtype=RECORD_DTYPE, count=int(take[b]), offset=int(start[b]))
            j = b + 1


def _verify_frames(seg: Segment, buf: mmap.mmap, i: int, k: int) -> None:
    """Check frames ``i..k-1`` not yet checked; extend ``seg.verified`` over a checked prefix.

    Many frames at once go through the fast walk (numba headers + checksum pass) and must
    reproduce the index exactly; otherwise, or if they do not, frames are checked one by one
    so the first bad one is named.
    """
    idx = seg.index
    j = bisect_left(idx.offset, seg.verified, i, k)
    if k - j >= FAST_VERIFY_FRAMES:
        from sequencer.journal._walk import fast_walk

        start = idx.offset[j]
        end = idx.offset[k - 1] + HEADER_SIZE + idx.count[k - 1] * RECORD_SIZE
        found = FrameIndex()
        got = fast_walk(buf, start, end, idx.first_seq[j], 0, found)
        if got == end and all(getattr(found, c) == getattr(idx, c)[j:k] for c in FrameIndex.__slots__):
            if start <= seg.verified:
                seg.verified = max(seg.verified, end)
            return
    for j in range(j, k):
        off = idx.offset[j]
        if off < seg.verified:
            continue
        _verify_frame(seg, buf, off, idx.count[j], idx.first_seq[j])
        if off == seg.verified:
            seg.verified = off + HEADER_SIZE + idx.count[j] * RECORD_SIZE


def _verify_frame(seg: Segment, buf: mmap.mmap, off: int, count: int, first: int) -> None:
    """Re-check a frame as it is read: whole header, checksum, and agreement with the index."""
    end = off + HEADER_SIZE + count * RECORD_SIZE
    got_first, got_count, _, reason, _ = check_frame_bytes(buf, off, end)
    if reason is None and (got_first, got_count) != (first, count):
        reason = f"frame says seqs {got_first}+{got_count}, index says {first}+{count}"
    if reason is not None:
        raise JournalCorrupt(Problem(seg.name, off, first, f"{reason} (found on read)"))


def _gather(buf: mmap.mmap, need: int, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Copy the records of several small frames into one read-only array.

    ``starts`` are the byte offsets of each frame's first wanted record, ``counts`` how many.
    Every frame and record boundary is a multiple of 32 bytes, so the segment is viewed as
    32-byte units and each record is 4 consecutive units.
    """
    total = int(counts.sum())
    units = np.frombuffer(buf, dtype="V32", count=need // 32)
    run_start = np.repeat(starts // 32, counts)
    within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = (run_start + within * _UNITS_PER_RECORD)[:, None] + np.arange(_UNITS_PER_RECORD)
    out = units[rows].view(RECORD_DTYPE).reshape(total)
    out.flags.writeable = False
    return out

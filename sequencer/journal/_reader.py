"""Read-only access to a journal directory, also while a writer appends, and full verification."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sequencer.journal._errors import JournalCorrupt, JournalError, Problem
from sequencer.journal._format import INDEX_SUFFIX, read_epoch_file, read_index
from sequencer.journal._segments import SegmentSet
from sequencer.journal._views import RecordReads, SegmentInfo, count_kinds, epoch_ranges, segment_infos

__all__ = ["JournalReader", "VerifyReport", "verify_journal"]


class JournalReader(RecordReads):
    """Read-only view of a journal directory; never writes, cuts or locks anything.

    It sees the frames that were whole when it was opened or last :meth:`refresh`-ed. Bytes
    of a frame the writer has not finished (or a torn tail nobody has cut yet) are not
    visible; they are described by :attr:`tail_problem`. A bad frame with valid data after
    it (corruption) is kept in :attr:`corrupt`: reads before it work, a read that reaches it
    yields what precedes it and then raises :class:`JournalCorrupt`. ``verify`` walks every
    segment with checksums instead of trusting sealed segments' index files.
    """

    def __init__(self, path: str | Path, verify: bool = False) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise JournalError(f"{self.path}: no such journal directory")
        self._set = SegmentSet(self.path)
        self._set.refresh(verify=verify, strict=False)

    def refresh(self) -> int:
        """Pick up frames and segments written since; returns the new last seq."""
        self._set.refresh(strict=False)
        return self.last_seq

    @property
    def last_seq(self) -> int:
        """Seq of the last visible record (0 when empty)."""
        return self._set.last_seq

    @property
    def first_seq(self) -> int:
        """Seq of the first record (0 when empty)."""
        return self._set.first_seq

    @property
    def last_epoch(self) -> int:
        """Epoch of the last visible record (0 when empty)."""
        return self._set.last_epoch

    @property
    def corrupt(self) -> Problem | None:
        """The corrupt frame that stopped the walk (reads reaching it raise), or None."""
        return self._set.corrupt

    @property
    def tail_problem(self) -> Problem | None:
        """Unfinished or torn bytes after the last whole frame of the last segment, if any."""
        return self._set.tail_problem

    def count_kinds(self, from_seq: int = 1, to_seq: int | None = None) -> dict[str, int]:
        """Records per kind name in the range."""
        return count_kinds(self.read(from_seq, to_seq))

    def locate(self, seq: int) -> tuple[str, int]:
        """``(segment name, byte offset of the frame)`` holding ``seq``; raises KeyError if absent."""
        for seg, n in self._set.snapshot():
            if n and seg.index.first_seq[0] <= seq <= seg.last_seq(n):
                return seg.name, seg.index.offset[seg.index.find(seq, n)]
        raise KeyError(seq)

    def close(self) -> None:
        """Drop the mappings (arrays already returned stay valid)."""
        for seg in self._set.segments:
            seg.drop_mapping()

    def __enter__(self) -> JournalReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class VerifyReport:
    """Outcome of :func:`verify_journal`: ``ok`` or the first problem, plus a summary."""

    path: Path
    problem: Problem | None = None
    segments: list[SegmentInfo] = field(default_factory=list)
    epochs: list[tuple[int, int, int]] = field(default_factory=list)
    epoch_file: int = 0
    first_seq: int = 0
    last_seq: int = 0

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def records(self) -> int:
        return sum(s.records for s in self.segments)

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.segments)


def verify_journal(path: str | Path) -> VerifyReport:
    """Check every frame of every segment (header, checksum, seq and epoch continuity, every
    record's seq and epoch), the sealed segments' index files and the epoch file.

    Never raises for a bad journal: the first problem is in the report. A torn tail counts as
    a problem (``problem.torn``): the journal is not intact until a writer opens it and cuts it.
    """
    path = Path(path)
    if not path.is_dir():
        raise JournalError(f"{path}: no such journal directory")
    report = VerifyReport(path)
    try:
        report.epoch_file = read_epoch_file(path)
    except JournalCorrupt as exc:
        report.problem = exc.problem
    segset = SegmentSet(path)
    try:
        segset.refresh(verify=True)
    except JournalCorrupt as exc:
        report.problem = report.problem or exc.problem
    report.problem = report.problem or segset.tail_problem or _check_indexes(segset) or _check_records(segset)
    report.segments = segment_infos(segset)
    report.epochs = epoch_ranges(segset)
    report.first_seq, report.last_seq = segset.first_seq, segset.last_seq
    return report


def _check_indexes(segset: SegmentSet) -> Problem | None:
    for seg, n in segset.snapshot()[:-1]:
        idx_path = seg.path.with_suffix(INDEX_SUFFIX)
        if not idx_path.exists():
            continue
        idx = read_index(seg.path, seg.first_seq, seg.end)
        if idx is None or idx.to_array().tobytes() != seg.index.to_array()[:n].tobytes():
            return Problem(idx_path.name, 0, seg.first_seq, "index file does not match its segment (opening for writing rebuilds it)")
    return None


def _check_records(segset: SegmentSet) -> Problem | None:
    """Every record's seq follows the one before and epochs never decrease (not just frame ends)."""
    expect, epoch = None, 0
    for chunk in segset.iter_records(1, None, verify=False):
        seqs = chunk["seq"]
        start = int(seqs[0]) if expect is None else expect
        bad = np.flatnonzero(seqs != np.arange(start, start + len(seqs)))
        eps = chunk["epoch"].astype(np.int64)
        bad_ep = np.flatnonzero(np.diff(np.concatenate(([epoch], eps))) < 0)
        if len(bad) or len(bad_ep):
            k = int(min(bad[0] if len(bad) else len(seqs), bad_ep[0] if len(bad_ep) else len(seqs)))
            seq = start + k
            name, off = _locate(segset, seq)
            what = f"record seq {int(seqs[k])}, expected {seq}" if len(bad) and bad[0] == k else f"record epoch {int(eps[k])} decreased"
            return Problem(name, off, seq, what)
        expect, epoch = start + len(seqs), int(eps[-1])
    return None


def _locate(segset: SegmentSet, seq: int) -> tuple[str, int]:
    for seg, n in segset.snapshot():
        if n and seg.index.first_seq[0] <= seq <= seg.last_seq(n):
            return seg.name, seg.index.offset[seg.index.find(seq, n)]
    return "?", 0

"""Journal errors and the description of a bad frame."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["JournalError", "JournalCorrupt", "Problem"]


class JournalError(Exception):
    """A journal that cannot be used as asked (missing directory, locked, failed earlier)."""


@dataclass(frozen=True)
class Problem:
    """The first bad frame found in a journal.

    ``segment`` is the file name, ``offset`` the byte offset of the bad frame in it, ``seq``
    the seq that frame should start with (last good seq + 1). ``torn`` is true when the bad
    bytes are a torn tail (end of the last segment, nothing valid after them), which opening
    the journal for writing cuts; otherwise it is mid-journal corruption.
    """

    segment: str
    offset: int
    seq: int
    reason: str
    torn: bool = False

    def describe(self) -> str:
        """One line naming segment, offset, seq and reason."""
        what = "torn tail" if self.torn else "corrupt frame"
        return f"{what} in segment {self.segment} at byte offset {self.offset} (seq {self.seq}): {self.reason}"


class JournalCorrupt(JournalError):
    """A corrupt frame with valid data after it: never skipped, never cut automatically."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.describe())
        self.problem = problem
        self.segment = problem.segment
        self.offset = problem.offset
        self.seq = problem.seq
        self.reason = problem.reason

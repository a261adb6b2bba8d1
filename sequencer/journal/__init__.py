"""The append-only journal: segmented files of stamped frames, the system's source of truth.

``Journal.open(dir, durability=...)`` recovers and appends (one writer per directory);
``JournalReader(dir)`` reads, also while the writer appends; ``verify_journal(dir)`` checks
every byte. ``docs/journal.md`` describes the layout, durability and recovery rules.
"""

from sequencer.journal._errors import JournalCorrupt, JournalError, Problem
from sequencer.journal._reader import JournalReader, VerifyReport, verify_journal
from sequencer.journal._views import SegmentInfo
from sequencer.journal._writer import DURABILITIES, Journal, Recovery

__all__ = [
    "DURABILITIES",
    "Journal",
    "JournalCorrupt",
    "JournalError",
    "JournalReader",
    "Problem",
    "Recovery",
    "SegmentInfo",
    "VerifyReport",
    "verify_journal",
]

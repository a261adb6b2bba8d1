"""The journal writer: one process appends stamped frames, with a chosen durability."""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import xxhash

from sequencer.journal._errors import JournalError, Problem
from sequencer.journal._format import (
    HDR,
    INDEX_SUFFIX,
    REC_SEQ_EPOCH,
    acquire_lock,
    fdatasync_path,
    fsync_dir,
    read_epoch_file,
    segment_name,
    write_epoch_file,
    write_index,
)
from sequencer.journal._segments import Segment, SegmentSet
from sequencer.journal._views import RecordReads
from sequencer.protocol import HEADER_SIZE, MAGIC, PROTOCOL_VERSION, RECORD_SIZE, FrameType

__all__ = ["Journal", "DURABILITIES", "Recovery"]

DURABILITIES = ("always", "batch", "none")
_STAMPED = int(FrameType.STAMPED)
_MAX_EPOCH = 2**32 - 1
_log = logging.getLogger("journal")


@dataclass(frozen=True)
class Recovery:
    """What opening the journal found: the last good seq and the torn tail it cut, if any."""

    last_seq: int
    cut: Problem | None
    cut_bytes: int


class Journal(RecordReads):
    """Append-only journal of stamped frames in a directory of segments (single writer).

    Use :meth:`open`. ``append`` checks continuity (``first_seq == last_seq + 1``, epoch never
    decreasing) and writes the frame bytes unchanged. ``read`` works while appending.
    """

    def __init__(self) -> None:
        raise TypeError("use Journal.open(dir, ...)")

    @classmethod
    def open(
        cls,
        path: str | Path,
        durability: str = "batch",
        segment_bytes: int = 64 << 20,
        sync_ms: float = 2.0,
        verify: bool = False,
        check_checksums: bool = True,
    ) -> Journal:
        """Open (creating if needed) and recover the journal in ``path``.

        Recovery walks the last segment with checksums (every segment with ``verify``), cuts a
        torn last frame and raises :class:`JournalCorrupt` for a bad frame followed by valid
        data. ``check_checksums`` makes ``append`` verify each frame's checksum before writing.
        """
        if durability not in DURABILITIES:
            raise ValueError(f"durability must be one of {', '.join(DURABILITIES)}, got {durability!r}")
        if segment_bytes < HEADER_SIZE + RECORD_SIZE:
            raise ValueError(f"segment_bytes must be at least {HEADER_SIZE + RECORD_SIZE}, got {segment_bytes}")
        if not sync_ms > 0:
            raise ValueError(f"sync_ms must be > 0, got {sync_ms}")
        self = object.__new__(cls)
        self.path = Path(path)
        self.durability = durability
        self.segment_bytes = int(segment_bytes)
        self.sync_ms = float(sync_ms)
        self.check_checksums = check_checksums
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock_fd = acquire_lock(self.path)
        self._fd = -1
        self._thread: threading.Thread | None = None
        self._failed: BaseException | None = None
        self._closed = False
        self._sync_lock = threading.Lock()
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._last_sync = time.monotonic()
        self.sync_count = 0
        try:
            self._recover(verify)
        except BaseException:
            os.close(self._lock_fd)
            raise
        if durability == "batch":
            self._thread = threading.Thread(target=self._sync_loop, name=f"journal-sync:{self.path.name}", daemon=True)
            self._thread.start()
        return self

    def _recover(self, verify: bool) -> None:
        for tmp in self.path.glob("*.tmp"):
            tmp.unlink()
        self._epoch_file = read_epoch_file(self.path)
        self._set = SegmentSet(self.path)
        self._set.refresh(verify=verify)
        segs = self._set.segments
        cut, cut_bytes = self._set.tail_problem, 0
        tail = segs[-1] if segs else None
        if tail is not None:
            size = os.stat(tail.path).st_size
            cut_bytes = size - tail.end
            if cut_bytes:
                tail.drop_mapping()
                os.truncate(tail.path, tail.end)
                _log.warning("cut torn tail: %s (%d bytes)", cut.describe() if cut else "", cut_bytes)
            tail.path.with_suffix(INDEX_SUFFIX).unlink(missing_ok=True)
            if tail.end == 0:
                # Nothing whole in it (crash right after a roll, or a torn first frame): the
                # next append creates the segment again, under the right name.
                tail.path.unlink()
                segs.pop()
                tail = None
        for seg in segs:
            if seg is not tail and seg.name in self._set.indexes_rebuilt:
                write_index(seg.path, seg.index, seg.end)
        if self.durability != "none" and segs:
            # A previous process may have died with data still in the page cache (or run with
            # durability "none"): make what recovery kept durable before calling it synced.
            for seg in segs:
                fdatasync_path(seg.path)
            fsync_dir(self.path)
        if tail is not None:
            self._fd = os.open(tail.path, os.O_WRONLY | os.O_CLOEXEC)
            os.lseek(self._fd, tail.end, os.SEEK_SET)
        self._set.tail_problem = None
        self._tail = tail
        self._last_seq = self._set.last_seq
        self._last_epoch = self._set.last_epoch
        self._synced_seq = self._last_seq if self.durability != "none" else 0
        self.recovery = Recovery(self._last_seq, cut, cut_bytes)

    # -- properties -------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """Seq of the last record appended (0 when empty)."""
        return self._last_seq

    @property
    def first_seq(self) -> int:
        """Seq of the first record in the journal (0 when empty)."""
        return self._set.first_seq

    @property
    def last_epoch(self) -> int:
        """Epoch of the last record appended (0 when empty)."""
        return self._last_epoch

    @property
    def synced_seq(self) -> int:
        """Highest seq known to be on stable storage (fdatasync returned after it was written)."""
        return self._synced_seq

    # -- epochs -----------------------------------------------------------------------------

    def next_epoch(self) -> int:
        """Persist (fsync) and return an epoch above every epoch handed out or journaled before."""
        self._check_open()
        epoch = max(self._epoch_file, self._last_epoch) + 1
        if epoch > _MAX_EPOCH:
            raise JournalError(f"epoch space exhausted ({epoch} does not fit in u32)")
        write_epoch_file(self.path, epoch)
        self._epoch_file = epoch
        return epoch

    # -- appending --------------------------------------------------------------------------

    def append(self, frame: bytes | bytearray | memoryview, first_seq: int, count: int, epoch: int) -> None:
        """Write one stamped frame (``encode_frame`` output) holding seqs ``first_seq .. +count-1``.

        Raises ``ValueError`` (nothing written) for a frame that does not match its arguments or
        does not continue the journal, ``OSError`` when the write or sync fails.
        """
        self._check_usable()
        self._check_frame(frame, first_seq, count, epoch)
        self._write_frame(frame, first_seq, count, epoch)

    def append_stamped(self, frame: bytearray, first_seq: int, count: int, epoch: int) -> None:
        """:meth:`append` for a frame the caller has just stamped with these very values
        (:func:`sequencer.stamp.stamp_frame`): its header and records are not read back.

        The size, the continuation of the journal and the epoch are checked as by
        :meth:`append` (``ValueError``, nothing written); writing, syncing and failures are the same.
        """
        self._check_usable()
        self._check_size(frame, count)
        self._check_order(first_seq, epoch)
        self._write_frame(frame, first_seq, count, epoch)

    def _check_usable(self) -> None:
        if self._closed or self._failed is not None:
            self._check_open()
            raise OSError(errno.EIO, f"journal {self.path} failed earlier and must be reopened: {self._failed}")

    def _write_frame(self, frame, first_seq: int, count: int, epoch: int) -> None:
        size = len(frame)
        tail = self._tail
        if tail is None or (tail.end and tail.end + size > self.segment_bytes):
            tail = self._roll(first_seq)
        start = tail.end
        self._write_all(frame, tail, start)
        with self._set.lock:
            tail.index.add(first_seq, start, count, epoch)
            tail.end = start + size
            if self.check_checksums and tail.verified == start:
                tail.verified = start + size
        self._last_seq = first_seq + count - 1
        self._last_epoch = epoch
        if self.durability == "always":
            self._sync_now()
        elif self.durability == "batch" and not self._dirty.is_set():
            self._dirty.set()

    def _check_size(self, frame, count: int) -> None:
        if count <= 0:
            raise ValueError(f"append: count must be > 0, got {count}")
        want = HEADER_SIZE + count * RECORD_SIZE
        if len(frame) != want:
            raise ValueError(f"append: frame is {len(frame)} bytes, {count} records need {want}")

    def _check_order(self, first_seq: int, epoch: int) -> None:
        if first_seq != self._last_seq + 1:
            raise ValueError(f"append: first seq {first_seq} does not follow last seq {self._last_seq} (expected {self._last_seq + 1})")
        if epoch < self._last_epoch:
            raise ValueError(f"append: epoch {epoch} is lower than the journal's last epoch {self._last_epoch}")
        if epoch <= 0 or epoch > _MAX_EPOCH:
            raise ValueError(f"append: epoch {epoch} out of range 1..{_MAX_EPOCH}")

    def _check_frame(self, frame, first_seq: int, count: int, epoch: int) -> None:
        self._check_size(frame, count)
        want = HEADER_SIZE + count * RECORD_SIZE
        magic, version, ftype, flags, checksum, h_epoch, h_count, h_first = HDR.unpack_from(frame, 0)
        if magic != MAGIC or version != PROTOCOL_VERSION or ftype != _STAMPED or flags:
            raise ValueError(f"append: not a stamped frame of protocol {PROTOCOL_VERSION} (magic {magic!r}, version {version}, type {ftype}, flags {flags})")
        if (h_first, h_count, h_epoch) != (first_seq, count, epoch):
            raise ValueError(
                f"append: header says first seq {h_first}, count {h_count}, epoch {h_epoch}; "
                f"arguments say {first_seq}, {count}, {epoch}"
            )
        self._check_order(first_seq, epoch)
        lo, lo_epoch = REC_SEQ_EPOCH.unpack_from(frame, HEADER_SIZE)
        hi, hi_epoch = REC_SEQ_EPOCH.unpack_from(frame, want - RECORD_SIZE) if count > 1 else (lo, lo_epoch)
        if (lo, hi) != (first_seq, first_seq + count - 1):
            raise ValueError(f"append: records carry seqs {lo}..{hi}, header says {first_seq}..{first_seq + count - 1}")
        if lo_epoch != epoch or hi_epoch != epoch:
            raise ValueError(f"append: records carry epoch {lo_epoch}..{hi_epoch}, header says {epoch}")
        if self.check_checksums and xxhash.xxh3_64_intdigest(memoryview(frame)[16:]) != checksum:
            raise ValueError(f"append: frame checksum does not match (first seq {first_seq})")

    def _write_all(self, frame, tail: Segment, start: int) -> None:
        mv = memoryview(frame)
        done = 0
        try:
            while done < len(mv):
                n = os.write(self._fd, mv[done:])
                if n <= 0:
                    raise OSError(errno.ENOSPC, "write made no progress")
                done += n
        except OSError as exc:
            self._undo_partial(tail, start, exc)
            raise

    def _undo_partial(self, tail: Segment, start: int, exc: OSError) -> None:
        """Cut a partly written frame so the journal stays whole; if that fails, refuse appends."""
        try:
            os.ftruncate(self._fd, start)
            os.lseek(self._fd, start, os.SEEK_SET)
        except OSError as undo_exc:
            self._failed = undo_exc
            _log.error("journal write failed (%s) and cutting the partial frame failed (%s); reopen recovers", exc, undo_exc)

    def _roll(self, first_seq: int) -> Segment:
        """Seal the current segment (sync, index) and start a new one named ``first_seq``."""
        with self._sync_lock:
            old = self._tail
            if old is not None and old.end:
                if self.durability != "none":
                    self._fdatasync(self._fd)
                    self._synced_seq = self._last_seq
                write_index(old.path, old.index, old.end)
                old.drop_mapping()
            path = self.path / segment_name(first_seq)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            if self._fd >= 0:
                os.close(self._fd)
            self._fd = fd
            seg = Segment(first_seq, path)
            seg.verified = 0
            with self._set.lock:
                self._set.segments.append(seg)
            self._tail = seg
            if self.durability != "none":
                fsync_dir(self.path)
            return seg

    # -- durability -------------------------------------------------------------------------

    def _fdatasync(self, fd: int) -> None:
        try:
            os.fdatasync(fd)
        except OSError as exc:
            # After a failed fsync the kernel may have dropped the dirty pages: nothing written
            # since the last good sync can be trusted, so no further append is accepted.
            self._failed = exc
            raise
        self.sync_count += 1

    def _sync_now(self) -> int:
        with self._sync_lock:
            target = self._last_seq
            if target > self._synced_seq and self._fd >= 0:
                self._fdatasync(self._fd)
                self._synced_seq = target
                self._last_sync = time.monotonic()
        return self._synced_seq

    def _sync_loop(self) -> None:
        """Group commit: at most one fdatasync per ``sync_ms``, while appends keep going."""
        period = self.sync_ms / 1000.0
        while not self._stop.is_set():
            self._dirty.wait()
            if self._stop.is_set():
                break
            wait = self._last_sync + period - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                break
            self._dirty.clear()
            try:
                self._sync_now()
            except OSError as exc:
                _log.error("journal group commit fdatasync failed: %s", exc)
                break

    def sync(self) -> int:
        """fdatasync now (any durability); returns the synced seq. Raises OSError on failure."""
        self._check_open()
        if self._failed is not None:
            raise OSError(errno.EIO, f"journal {self.path} failed earlier and must be reopened: {self._failed}")
        return self._sync_now()

    def close(self) -> None:
        """Stop the group-commit thread, sync (unless durability ``none``) and release the lock."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._dirty.set()
        if self._thread is not None:
            self._thread.join()
        try:
            if self.durability != "none" and self._failed is None:
                self._sync_now()
        finally:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            os.close(self._lock_fd)

    def _check_open(self) -> None:
        if self._closed:
            raise JournalError(f"journal {self.path} is closed")

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ----------------------------------------------------------------------------

"""On-disk layout of a journal directory: segment names, frame walking, index and epoch files.

A journal directory holds:

* ``<first_seq:020d>.seg`` segment files: STAMPED frames exactly as
  :func:`sequencer.protocol.encode_frame` produces them, back to back, nothing else. The name
  is the seq of the segment's first record, so names sort in seq order.
* ``<first_seq:020d>.idx`` sidecar index of a sealed segment (one 32-byte entry per frame);
  a cache only: a missing or mismatching index is rebuilt by walking the frame headers.
* ``EPOCH``: the highest epoch handed out (text, with its own checksum).
* ``LOCK``: held with ``flock`` by the one writer.
"""

from __future__ import annotations

import fcntl
import os
import struct
from array import array
from bisect import bisect_right
from pathlib import Path

import numpy as np
import xxhash

from sequencer.journal._errors import JournalCorrupt, JournalError, Problem
from sequencer.protocol import HEADER_SIZE, MAGIC, MAX_FRAME_RECORDS, PROTOCOL_VERSION, RECORD_SIZE, FrameType

__all__ = [
    "SEGMENT_SUFFIX",
    "INDEX_SUFFIX",
    "EPOCH_FILE",
    "LOCK_FILE",
    "FrameIndex",
    "segment_name",
    "list_segments",
    "walk_frames",
    "check_frame_bytes",
    "write_index",
    "read_index",
    "read_epoch_file",
    "write_epoch_file",
    "fsync_dir",
    "fdatasync_path",
    "acquire_lock",
]

SEGMENT_SUFFIX = ".seg"
INDEX_SUFFIX = ".idx"
EPOCH_FILE = "EPOCH"
LOCK_FILE = "LOCK"

HDR = struct.Struct("<4sHBBQIIq")
# A record's seq (offset 0) and epoch (offset 64) in one unpack (RECORD_DTYPE layout).
REC_SEQ_EPOCH = struct.Struct("<q56xI")
_STAMPED = int(FrameType.STAMPED)

# Regions this large are walked by the numba kernel first (small ones are not worth importing
# and compiling it for); the Python loop then only describes the frame that stopped it.
FAST_WALK_BYTES = 1 << 20
_INDEX_MAGIC = b"SQIX"
_INDEX_VERSION = 1
_INDEX_HDR = struct.Struct("<4sHHIQQ4x")
_INDEX_DTYPE = np.dtype([("first_seq", "<i8"), ("offset", "<i8"), ("count", "<i8"), ("epoch", "<i8")])
_EPOCH_TAG = "seqrisk-epoch 1"


class FrameIndex:
    """Per-segment frame index: first seq, byte offset, record count and epoch of each frame.

    Columns are ``array('q')`` so the writer appends in O(1) and readers bisect without copying.
    """

    __slots__ = ("first_seq", "offset", "count", "epoch")

    def __init__(self) -> None:
        self.first_seq = array("q")
        self.offset = array("q")
        self.count = array("q")
        self.epoch = array("q")

    def __len__(self) -> int:
        return len(self.first_seq)

    def add(self, first_seq: int, offset: int, count: int, epoch: int) -> None:
        """Append one frame's entry."""
        self.first_seq.append(first_seq)
        self.offset.append(offset)
        self.count.append(count)
        self.epoch.append(epoch)

    def truncate(self, n: int) -> None:
        """Keep the first ``n`` entries."""
        for col in (self.first_seq, self.offset, self.count, self.epoch):
            del col[n:]

    def last_seq(self, n: int | None = None) -> int:
        """Seq of the last record of the first ``n`` frames (all by default); -1 if none."""
        n = len(self) if n is None else n
        if n == 0:
            return -1
        return self.first_seq[n - 1] + self.count[n - 1] - 1

    def find(self, seq: int, n: int) -> int:
        """Position of the frame holding ``seq`` among the first ``n`` (0 if ``seq`` is before them)."""
        return max(bisect_right(self.first_seq, seq, 0, n) - 1, 0)

    def to_array(self) -> np.ndarray:
        """The entries as a structured numpy array."""
        out = np.empty(len(self), dtype=_INDEX_DTYPE)
        for name in _INDEX_DTYPE.names:
            out[name] = np.frombuffer(getattr(self, name), dtype="<i8") if len(self) else []
        return out

    @classmethod
    def from_array(cls, arr: np.ndarray) -> FrameIndex:
        """Entries from a structured array with the index dtype."""
        idx = cls()
        for name in _INDEX_DTYPE.names:
            getattr(idx, name).frombytes(np.ascontiguousarray(arr[name], dtype="<i8").tobytes())
        return idx


def segment_name(first_seq: int) -> str:
    """File name of the segment whose first record has ``first_seq``."""
    return f"{first_seq:020d}{SEGMENT_SUFFIX}"


def list_segments(path: Path) -> list[tuple[int, Path]]:
    """``(first_seq, path)`` of every segment file in ``path``, in seq order."""
    out = []
    for p in path.iterdir():
        stem = p.name[: -len(SEGMENT_SUFFIX)]
        if p.name.endswith(SEGMENT_SUFFIX) and len(stem) == 20 and stem.isdigit():
            out.append((int(stem), p))
    out.sort()
    return out


def check_frame_bytes(buf, off: int, end: int, verify: bool = True) -> tuple[int, int, int, str | None, bool]:
    """Check the frame at ``off`` (header, size, checksum, first/last record seq and epoch).

    Returns ``(first_seq, count, epoch, reason, intact)``: ``reason`` is None for a valid
    frame; ``intact`` says the frame's bytes are whole and match their checksum (so a bad
    frame that is intact was written that way, it is not a torn write). Sequence continuity
    with earlier frames is the caller's job.
    """
    left = end - off
    if left < HEADER_SIZE:
        return 0, 0, 0, f"{left} bytes left, shorter than a {HEADER_SIZE}-byte frame header", False
    magic, version, ftype, flags, checksum, epoch, count, first = HDR.unpack_from(buf, off)
    reason = None
    if magic != MAGIC:
        reason = f"bad magic {magic!r}"
    elif version != PROTOCOL_VERSION:
        reason = f"protocol version {version}, expected {PROTOCOL_VERSION}"
    elif ftype != _STAMPED:
        reason = f"frame type {ftype}, expected {_STAMPED} (stamped)"
    elif flags:
        reason = f"header flags {flags}, expected 0"
    elif not 0 < count <= MAX_FRAME_RECORDS:
        reason = f"record count {count} out of range 1..{MAX_FRAME_RECORDS}"
    elif HEADER_SIZE + count * RECORD_SIZE > left:
        reason = f"frame of {count} records needs {HEADER_SIZE + count * RECORD_SIZE} bytes, only {left} left"
    elif verify and xxhash.xxh3_64_intdigest(memoryview(buf)[off + 16 : off + HEADER_SIZE + count * RECORD_SIZE]) != checksum:
        reason = "checksum mismatch"
    if reason is not None:
        return first, count, epoch, reason, False
    rec = off + HEADER_SIZE
    for k in (0, count - 1) if count > 1 else (0,):
        got, rec_epoch = REC_SEQ_EPOCH.unpack_from(buf, rec + k * RECORD_SIZE)
        if got != first + k:
            return first, count, epoch, f"record at byte {rec + k * RECORD_SIZE} has seq {got}, expected {first + k}", verify
        if rec_epoch != epoch:
            return first, count, epoch, f"record at byte {rec + k * RECORD_SIZE} has epoch {rec_epoch}, frame says {epoch}", verify
    return first, count, epoch, None, verify


def _valid_frame_after(buf, start: int, end: int) -> bool:
    """Whether a whole frame with a good checksum starts anywhere in ``buf[start:end]``."""
    pos = buf.find(MAGIC, start, end)
    while pos != -1:
        if check_frame_bytes(buf, pos, end)[4]:
            return True
        pos = buf.find(MAGIC, pos + 1, end)
    return False


def walk_frames(
    buf, name: str, start: int, end: int, expect_seq: int, min_epoch: int, index: FrameIndex, verify: bool
) -> tuple[int, Problem | None]:
    """Walk the frames of ``buf[start:end]``, adding each good one to ``index``.

    Returns the offset just past the last good frame and the first problem (or None). The
    problem is marked ``torn`` when no valid frame follows it in this buffer; the caller
    decides whether a torn end is acceptable (only at the end of the last segment).
    """
    off = start
    if verify and end - start >= FAST_WALK_BYTES:
        from sequencer.journal._walk import fast_walk

        n = len(index)
        off = fast_walk(buf, start, end, expect_seq, min_epoch, index)
        if len(index) > n:
            expect_seq = index.last_seq() + 1
            min_epoch = index.epoch[-1]
    while off < end:
        first, count, epoch, reason, intact = check_frame_bytes(buf, off, end, verify)
        if reason is None and first != expect_seq:
            reason = f"frame starts at seq {first}, expected {expect_seq}"
        if reason is None and epoch < min_epoch:
            reason = f"frame epoch {epoch} is lower than the previous frame's {min_epoch}"
        if reason is not None:
            # An intact frame (good checksum) with wrong content was written that way, and a
            # valid frame after the bad bytes means they are not the end of what was written:
            # both are corruption. Anything else is a write that did not finish.
            torn = not intact and not _valid_frame_after(buf, off + 1, end)
            return off, Problem(name, off, expect_seq, reason, torn)
        index.add(first, off, count, epoch)
        off += HEADER_SIZE + count * RECORD_SIZE
        expect_seq = first + count
        min_epoch = epoch
    return off, None


def write_index(seg_path: Path, index: FrameIndex, seg_bytes: int) -> None:
    """Write the sidecar index of a sealed segment (temp file + rename; a cache, not fsynced)."""
    body = index.to_array().tobytes()
    head = _INDEX_HDR.pack(_INDEX_MAGIC, _INDEX_VERSION, 0, len(index), seg_bytes, xxhash.xxh3_64_intdigest(body))
    final = seg_path.with_suffix(INDEX_SUFFIX)
    tmp = final.with_name(final.name + ".tmp")
    tmp.write_bytes(head + body)
    os.replace(tmp, final)


def read_index(seg_path: Path, first_seq: int, seg_bytes: int) -> FrameIndex | None:
    """The sidecar index of a segment, or None when it is missing or does not match the segment."""
    try:
        raw = seg_path.with_suffix(INDEX_SUFFIX).read_bytes()
    except FileNotFoundError:
        return None
    if len(raw) < _INDEX_HDR.size:
        return None
    magic, version, _, n, size, checksum = _INDEX_HDR.unpack_from(raw)
    body = raw[_INDEX_HDR.size :]
    if (magic, version, size) != (_INDEX_MAGIC, _INDEX_VERSION, seg_bytes) or len(body) != n * _INDEX_DTYPE.itemsize:
        return None
    if n == 0 or xxhash.xxh3_64_intdigest(body) != checksum:
        return None
    arr = np.frombuffer(body, dtype=_INDEX_DTYPE)
    ends = arr["offset"] + HEADER_SIZE + arr["count"] * RECORD_SIZE
    consistent = (
        arr["first_seq"][0] == first_seq
        and arr["offset"][0] == 0
        and ends[-1] == seg_bytes
        and bool(np.all(arr["count"] > 0))
        and bool(np.all(arr["offset"][1:] == ends[:-1]))
        and bool(np.all(arr["first_seq"][1:] == arr["first_seq"][:-1] + arr["count"][:-1]))
        and bool(np.all(np.diff(arr["epoch"]) >= 0))
    )
    return FrameIndex.from_array(arr) if consistent else None


def read_epoch_file(path: Path) -> int:
    """The highest epoch handed out (0 when the file does not exist); corrupt raises JournalCorrupt."""
    p = path / EPOCH_FILE
    try:
        text = p.read_text(encoding="ascii")
    except FileNotFoundError:
        return 0
    except (OSError, UnicodeDecodeError) as exc:
        raise JournalCorrupt(Problem(EPOCH_FILE, 0, 0, f"unreadable epoch file: {exc}")) from None
    parts = text.rsplit(" ", 2)
    if len(parts) == 3 and parts[0] == _EPOCH_TAG and parts[1].isdigit():
        if parts[2].strip() == xxhash.xxh3_64_hexdigest(parts[1].encode()):
            return int(parts[1])
    raise JournalCorrupt(Problem(EPOCH_FILE, 0, 0, f"epoch file content {text[:60]!r} is not valid"))


def write_epoch_file(path: Path, epoch: int) -> None:
    """Persist ``epoch`` durably: write a temp file, fsync it, rename it over, fsync the directory."""
    final = path / EPOCH_FILE
    tmp = path / (EPOCH_FILE + ".tmp")
    data = f"{_EPOCH_TAG} {epoch} {xxhash.xxh3_64_hexdigest(str(epoch).encode())}\n".encode("ascii")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    fsync_dir(path)


def fsync_dir(path: Path) -> None:
    """fsync a directory so a file created or renamed in it survives power loss."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fdatasync_path(path: Path) -> None:
    """fdatasync a file by path (recovery makes what it keeps durable)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def acquire_lock(path: Path) -> int:
    """Take the writer's exclusive ``flock`` on ``LOCK``; returns its fd. Raises JournalError if held."""
    fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise JournalError(f"journal {path} is open for writing by another Journal (lock {path / LOCK_FILE} held)") from None
    return fd

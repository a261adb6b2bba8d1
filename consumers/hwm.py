"""HWM tracking for consumers: the newest ``(epoch, hwm, ts_ns)`` from heartbeats or the HWM file.

The sequencer's heartbeat (conflated SUB) and its shared-memory HWM file both carry its own
clock ``ts_ns``; the newer value wins, ordered by ``(epoch, ts_ns, hwm)``. The age is measured
from that timestamp, not from when this process read it, so a heartbeat that sat in a socket
still reads as old and a dead sequencer's HWM keeps ageing.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from pathlib import Path

import numpy as np

from sequencer.hwm_file import HWM_FILE_DTYPE, HWM_FILE_SIZE
from sequencer.protocol import PROTOCOL_VERSION

__all__ = ["HwmTracker", "HwmFile"]

_FIELDS = HWM_FILE_DTYPE.fields
assert _FIELDS is not None
# generation u64 @8, epoch u32 @16, hwm i64 @24, ts_ns i64 @32 (sequencer/hwm_file.py layout)
assert (_FIELDS["generation"][1], _FIELDS["epoch"][1], _FIELDS["hwm"][1], _FIELDS["ts_ns"][1]) == (8, 16, 24, 32)
_GEN = struct.Struct("<Q")
_BODY = struct.Struct("<QI4xqq")
_HEAD = struct.Struct("<4sH")
_MAGIC = b"SQHM"
_READ_ATTEMPTS = 64


class HwmTracker:
    """The newest HWM seen from any source. Pure: callers pass timestamps."""

    __slots__ = ("epoch", "hwm", "ts_ns", "updates")

    def __init__(self) -> None:
        self.epoch = 0
        self.hwm = 0
        self.ts_ns = 0
        self.updates = 0

    def update(self, epoch: int, hwm: int, ts_ns: int) -> bool:
        """Take ``(epoch, hwm, ts_ns)`` if it is newer than what is held; True if it was."""
        if (epoch, ts_ns, hwm) <= (self.epoch, self.ts_ns, self.hwm):
            return False
        self.epoch = epoch
        self.hwm = hwm
        self.ts_ns = ts_ns
        self.updates += 1
        return True

    def age_ns(self, now_ns: int | None = None) -> int:
        """Nanoseconds since the sequencer stamped the newest HWM (wall clock, never negative).

        With no HWM seen yet this is the time since the Unix epoch: always "too old".
        """
        if now_ns is None:
            now_ns = time.time_ns()
        return max(0, now_ns - self.ts_ns)


class HwmFile:
    """A lock-free reader of the sequencer's HWM file (``sequencer/hwm_file.py`` layout).

    Cheaper than :class:`sequencer.hwm_file.HwmFileReader` on the hot path: ``generation()``
    is one ``struct`` read of the mapped page, so a consumer can tell "nothing new" without a
    syscall. The file may appear later (the sequencer creates it); opening is retried at most
    every ``reopen_interval_ns``, and a replaced file (new inode) is picked up the same way.

    ``gen_address`` is the address of the mapped generation word (0 while unmapped), for
    compiled readers (:mod:`consumers.quiet`). A replaced mapping is kept, not unmapped, until
    :meth:`close`, so an address read before a reopen never points at freed memory.
    """

    def __init__(self, path: str | Path, reopen_interval_ns: int = 1_000_000_000) -> None:
        self.path = Path(path)
        self.reopen_interval_ns = reopen_interval_ns
        #: the current mapping (None until the file exists): ``struct.unpack_from("<Q", mm, 8)``
        #: is the generation, for callers that cannot afford a method call.
        self.mm: mmap.mmap | None = None
        #: address of the generation word in ``mm`` (0 while unmapped)
        self.gen_address = 0
        # A view exporting each mapping's buffer (its address), and the replaced mappings.
        self._view: np.ndarray | None = None
        self._retired: list[tuple[mmap.mmap, np.ndarray]] = []
        self._ino = -1
        self._next_open_ns = 0

    def _open(self, now_ns: int) -> bool:
        self._next_open_ns = now_ns + self.reopen_interval_ns
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False
        try:
            st = os.fstat(fd)
            if st.st_size < HWM_FILE_SIZE:
                return False
            mm = mmap.mmap(fd, HWM_FILE_SIZE, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
        magic, version = _HEAD.unpack_from(mm, 0)
        if magic != _MAGIC or version != PROTOCOL_VERSION:
            mm.close()
            return False
        if self.mm is not None and self._view is not None:
            self._retired.append((self.mm, self._view))
        self.mm = mm
        self._view = np.frombuffer(mm, np.uint8)
        self.gen_address = self._view.ctypes.data + 8
        self._ino = st.st_ino
        return True

    def _check_replaced(self, now_ns: int) -> None:
        self._next_open_ns = now_ns + self.reopen_interval_ns
        try:
            ino = os.stat(self.path).st_ino
        except OSError:
            return
        if ino != self._ino:
            self._open(now_ns)

    def generation(self, now_ns: int) -> int:
        """The writer's generation counter (changes on every write); -1 while unavailable."""
        if now_ns >= self._next_open_ns:
            if self.mm is None:
                self._open(now_ns)
            else:
                self._check_replaced(now_ns)
        mm = self.mm
        if mm is None:
            return -1
        return _GEN.unpack_from(mm, 8)[0]

    def read(self) -> tuple[int, tuple[int, int, int]] | None:
        """``(generation, (epoch, hwm, ts_ns))`` of a consistent read, or None."""
        mm = self.mm
        if mm is None:
            return None
        for _ in range(_READ_ATTEMPTS):
            gen, epoch, hwm, ts = _BODY.unpack_from(mm, 8)
            if gen & 1:
                continue
            if _GEN.unpack_from(mm, 8)[0] == gen:
                return gen, (epoch, hwm, ts)
        return None

    def close(self) -> None:
        """Unmap the file (and every mapping it replaced)."""
        self.gen_address = 0
        # The views must go before their mappings: an exported buffer cannot be unmapped.
        maps = [mm for mm, _view in self._retired]
        if self.mm is not None:
            maps.append(self.mm)
        self.mm = self._view = None
        self._retired = []
        for mm in maps:
            mm.close()
        self._ino = -1

"""The high-water mark in a small shared-memory file, for consumers on the sequencer's host.

Layout (64 bytes, little-endian): magic ``b"SQHM"`` (4), version u16, pad u16, generation u64
(a seqlock: odd while the writer is mid-update), epoch u32, pad u32, hwm i64, ts_ns i64.
The writer bumps the generation to odd, writes, bumps it to even; a reader retries a bounded
number of times until it sees the same even generation before and after its read.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

import numpy as np

from sequencer.protocol import PROTOCOL_VERSION

__all__ = ["HwmFileWriter", "HwmFileReader", "HWM_FILE_DTYPE", "HWM_FILE_SIZE"]

HWM_FILE_MAGIC = b"SQHM"
HWM_FILE_SIZE = 64
HWM_FILE_DTYPE = np.dtype(
    {
        "names": ["magic", "version", "generation", "epoch", "hwm", "ts_ns"],
        "formats": ["S4", "<u2", "<u8", "<u4", "<i8", "<i8"],
        "offsets": [0, 4, 8, 16, 24, 32],
        "itemsize": HWM_FILE_SIZE,
    }
)
_READ_ATTEMPTS = 64
# The writer packs with struct (a fraction of the cost of numpy field stores; it runs once per
# publish): generation at 8, then epoch, pad, hwm, ts_ns from 16 (same layout as the dtype).
_GENERATION = struct.Struct("<Q")
_BODY = struct.Struct("<I4xqq")
assert [HWM_FILE_DTYPE.fields[n][1] for n in ("generation", "epoch", "hwm", "ts_ns")] == [8, 16, 24, 32]


class HwmFileWriter:
    """Owned by the sequencer: publishes ``(epoch, hwm, ts_ns)`` after each publish."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.ftruncate(fd, HWM_FILE_SIZE)
            self._mm = mmap.mmap(fd, HWM_FILE_SIZE, access=mmap.ACCESS_WRITE)
        finally:
            os.close(fd)
        self._view = np.frombuffer(self._mm, dtype=HWM_FILE_DTYPE, count=1)
        self._view["magic"] = HWM_FILE_MAGIC
        self._view["version"] = PROTOCOL_VERSION
        self._gen = int(self._view["generation"][0]) & ~1

    def write(self, epoch: int, hwm: int, ts_ns: int) -> None:
        """Publish a new HWM (seqlock-protected)."""
        mm = self._mm
        self._gen += 1
        _GENERATION.pack_into(mm, 8, self._gen)
        _BODY.pack_into(mm, 16, epoch, hwm, ts_ns)
        self._gen += 1
        _GENERATION.pack_into(mm, 8, self._gen)

    def close(self) -> None:
        """Unmap the file (it stays on disk with the last value)."""
        del self._view
        self._mm.close()


class HwmFileReader:
    """Reads the HWM file without locks; ``read()`` returns None until a consistent value exists."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._mm: mmap.mmap | None = None
        self._view: np.ndarray | None = None

    def _open(self) -> bool:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            if os.fstat(fd).st_size < HWM_FILE_SIZE:
                return False
            self._mm = mmap.mmap(fd, HWM_FILE_SIZE, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
        self._view = np.frombuffer(self._mm, dtype=HWM_FILE_DTYPE, count=1)
        return True

    def read(self) -> tuple[int, int, int] | None:
        """``(epoch, hwm, ts_ns)``, or None if the file is absent, foreign or mid-write."""
        if self._view is None and not self._open():
            return None
        v = self._view
        assert v is not None
        if bytes(v["magic"][0]) != HWM_FILE_MAGIC:
            return None
        for _ in range(_READ_ATTEMPTS):
            g1 = int(v["generation"][0])
            if g1 & 1:
                continue
            epoch, hwm, ts = int(v["epoch"][0]), int(v["hwm"][0]), int(v["ts_ns"][0])
            if int(v["generation"][0]) == g1:
                return epoch, hwm, ts
        return None

    def close(self) -> None:
        """Unmap the file."""
        if self._mm is not None:
            self._view = None
            self._mm.close()
            self._mm = None

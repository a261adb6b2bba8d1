"""Fast frame walk: a numba kernel checks frame headers and continuity, Python the checksums.

``walk_headers`` (numba) and ``walk_headers_py`` (plain-Python reference; tests compare them)
walk whole frames from ``start`` while each header is valid (magic, version, stamped type, no
flags, count in range, frame within ``end``), seqs continue, the epoch does not decrease and
the first and last records carry the frame's first/last seq and its epoch. They stop at the
first frame that fails and do not say why: :func:`fast_walk` then checks checksums of the
frames found and lets :func:`sequencer.journal._format.walk_frames` describe the first bad one.
"""

from __future__ import annotations

import numpy as np
import xxhash
from numba import njit

from sequencer.journal._format import FrameIndex
from sequencer.protocol import HEADER_SIZE, MAGIC, MAX_FRAME_RECORDS, PROTOCOL_VERSION, RECORD_SIZE, FrameType

__all__ = ["walk_headers", "walk_headers_py", "fast_walk", "views"]

_MAGIC_U32 = int(np.frombuffer(MAGIC, dtype="<u4")[0])
_STAMPED = int(FrameType.STAMPED)
_COPY_BELOW = 4096


def views(buf, end: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """uint8, uint32, int64 and uint64 views of ``buf[:end]`` (wider ones cut to whole items)."""
    u8 = np.frombuffer(buf, dtype=np.uint8, count=end)
    return u8, u8[: end // 4 * 4].view("<u4"), u8[: end // 8 * 8].view("<i8"), u8[: end // 8 * 8].view("<u8")


@njit(cache=True)
def walk_headers(u8, u4, i8, u64, start, end, expect_seq, min_epoch, magic, version, stamped, max_count,
                 out_first, out_off, out_count, out_epoch, out_sum):  # pragma: no cover - compiled
    n = 0
    off = start
    cap = out_first.shape[0]
    while off + 32 <= end and n < cap:
        if u4[off >> 2] != magic:
            break
        if (np.int64(u8[off + 4]) | (np.int64(u8[off + 5]) << 8)) != version:
            break
        if u8[off + 6] != stamped or u8[off + 7] != 0:
            break
        count = np.int64(u4[(off + 20) >> 2])
        if count == 0 or count > max_count:
            break
        size = 32 + count * 128
        if off + size > end:
            break
        first = i8[(off + 24) >> 3]
        epoch = np.int64(u4[(off + 16) >> 2])
        if first != expect_seq or epoch < min_epoch:
            break
        rec = off + 32
        last = rec + (count - 1) * 128
        if i8[rec >> 3] != first or np.int64(u4[(rec + 64) >> 2]) != epoch:
            break
        if i8[last >> 3] != first + count - 1 or np.int64(u4[(last + 64) >> 2]) != epoch:
            break
        out_first[n] = first
        out_off[n] = off
        out_count[n] = count
        out_epoch[n] = epoch
        out_sum[n] = u64[(off + 8) >> 3]
        n += 1
        off += size
        expect_seq = first + count
        min_epoch = epoch
    return n, off


def walk_headers_py(u8, u4, i8, u64, start, end, expect_seq, min_epoch, magic, version, stamped, max_count,
                    out_first, out_off, out_count, out_epoch, out_sum):
    """Reference for :func:`walk_headers`: the same loop in plain Python."""
    n = 0
    off = start
    cap = out_first.shape[0]
    while off + 32 <= end and n < cap:
        if int(u4[off >> 2]) != magic:
            break
        if int(u8[off + 4]) | (int(u8[off + 5]) << 8) != version:
            break
        if int(u8[off + 6]) != stamped or int(u8[off + 7]) != 0:
            break
        count = int(u4[(off + 20) >> 2])
        if count == 0 or count > max_count:
            break
        size = 32 + count * 128
        if off + size > end:
            break
        first = int(i8[(off + 24) >> 3])
        epoch = int(u4[(off + 16) >> 2])
        if first != expect_seq or epoch < min_epoch:
            break
        rec = off + 32
        last = rec + (count - 1) * 128
        if int(i8[rec >> 3]) != first or int(u4[(rec + 64) >> 2]) != epoch:
            break
        if int(i8[last >> 3]) != first + count - 1 or int(u4[(last + 64) >> 2]) != epoch:
            break
        out_first[n], out_off[n], out_count[n], out_epoch[n], out_sum[n] = first, off, count, epoch, u64[(off + 8) >> 3]
        n += 1
        off += size
        expect_seq = first + count
        min_epoch = epoch
    return n, off


def fast_walk(buf, start: int, end: int, expect_seq: int, min_epoch: int, index: FrameIndex, kernel=walk_headers) -> int:
    """Add every leading good frame of ``buf[start:end]`` (header, continuity, checksum) to
    ``index``; returns the offset after the last one. The caller describes what stops it."""
    cap = (end - start) // (HEADER_SIZE + RECORD_SIZE) + 1
    cols = [np.empty(cap, dtype=np.int64) for _ in range(4)] + [np.empty(cap, dtype=np.uint64)]
    u8, u4, i8, u64 = views(buf, end)
    n, _ = kernel(u8, u4, i8, u64, start, end, expect_seq, min_epoch, _MAGIC_U32, PROTOCOL_VERSION, _STAMPED,
                  MAX_FRAME_RECORDS, *cols)
    first, off, count, epoch, sums = cols
    mv = memoryview(buf)
    digest = xxhash.xxh3_64_intdigest
    starts = (off[:n] + 16).tolist()
    ends = (off[:n] + HEADER_SIZE + count[:n] * RECORD_SIZE).tolist()
    want = sums[:n].tolist()
    # Small frames: hashing a bytes copy beats making a memoryview slice; big ones: no copy.
    got = [digest(buf[a:b]) if b - a <= _COPY_BELOW else digest(mv[a:b]) for a, b in zip(starts, ends)]
    good = n if got == want else next(j for j, (x, y) in enumerate(zip(got, want)) if x != y)
    if good:
        index.first_seq.frombytes(first[:good].tobytes())
        index.offset.frombytes(off[:good].tobytes())
        index.count.frombytes(count[:good].tobytes())
        index.epoch.frombytes(epoch[:good].tobytes())
        return ends[good - 1]
    return start

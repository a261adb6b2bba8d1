"""The drain's header kernel: XXH3 called from numba equals xxhash; gather_frames equals its reference."""

from __future__ import annotations

import numpy as np
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from sequencer.ingest import ingest_count
from sequencer.ingest_headers import gather_frames, gather_frames_py
from sequencer.protocol import HEADER_SIZE, RECORD_DTYPE, FrameType, Kind, encode_frame
from sequencer.xxh3 import AVAILABLE, xxh3_64

# Every form of XXH3: up to 16, 128 and 240 bytes, one block or less, several blocks and stripes.
_LENGTHS = st.one_of(st.integers(0, 600), st.integers(600, 5000), st.sampled_from([144, 272, 1024, 1025, 8208]))


@settings(max_examples=300, deadline=None)
@given(_LENGTHS, st.integers(0, 15), st.randoms(use_true_random=False))
def test_xxh3_when_any_length_and_offset_then_equals_xxhash(n, offset, rnd):
    assert AVAILABLE  # the xxhash wheels this project installs export XXH3_64bits
    data = rnd.randbytes(offset + n + 3)
    got = xxh3_64(np.frombuffer(data, np.uint8), offset, n)
    assert int(got) == xxhash.xxh3_64_intdigest(data[offset:offset + n])


def _ingest(n: int, first: int) -> bytes:
    recs = np.zeros(n, RECORD_DTYPE)
    recs["kind"] = Kind.PRICE
    recs["instrument"] = 1
    recs["price"] = 100 + np.arange(n)
    recs["producer"] = 7
    recs["producer_seq"] = np.arange(first, first + n)
    return encode_frame(recs, frame_type=FrameType.INGEST)


@st.composite
def drains(draw):
    """Ingest frames of 1..20 records, some with one byte changed or cut short, some empty."""
    out = []
    for i in range(draw(st.integers(1, 12))):
        frame = bytearray(_ingest(draw(st.sampled_from([1, 1, 2, 3, 20])), 1 + 100 * i))
        change = draw(st.sampled_from(["none", "none", "none", "byte", "cut", "empty"]))
        if change == "byte":
            frame[draw(st.integers(0, len(frame) - 1))] ^= draw(st.integers(1, 255))
        elif change == "cut":
            frame = frame[:draw(st.integers(0, len(frame) - 1))]
        elif change == "empty":
            frame = bytearray()
        out.append(bytes(frame))
    return out


@settings(max_examples=300, deadline=None)
@given(drains())
def test_gather_frames_when_drain_with_bad_frames_then_equals_reference(frames):
    buf, counts, starts = gather_frames(b"".join(frames), np.cumsum([len(f) for f in frames], dtype=np.int64))
    want_buf, want_counts, want_starts = gather_frames_py(frames)
    assert counts.tolist() == want_counts.tolist() == [ingest_count(f) for f in frames]
    assert starts.tolist() == want_starts.tolist()
    assert bytes(buf) == bytes(want_buf)
    assert len(buf) == HEADER_SIZE + int(starts[-1]) * RECORD_DTYPE.itemsize


def test_gather_frames_when_all_valid_then_records_back_to_back_after_header_room():
    frames = [_ingest(1, 1), _ingest(3, 2), _ingest(64, 5)]
    buf, counts, starts = gather_frames(b"".join(frames), np.cumsum([len(f) for f in frames], dtype=np.int64))
    assert counts.tolist() == [1, 3, 64]
    assert starts.tolist() == [0, 1, 4, 68]
    recs = np.frombuffer(buf, RECORD_DTYPE, offset=HEADER_SIZE)
    assert recs["producer_seq"].tolist() == list(range(1, 69))

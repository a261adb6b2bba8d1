"""The numba frame walk equals its plain-Python reference, and the fast path of
``walk_frames`` finds exactly what the per-frame Python walk finds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journal_frames import make_frame
from sequencer.journal import _format
from sequencer.journal._format import FrameIndex, walk_frames
from sequencer.journal._walk import _MAGIC_U32, _STAMPED, views, walk_headers, walk_headers_py
from sequencer.protocol import MAX_FRAME_RECORDS, PROTOCOL_VERSION


@st.composite
def damaged_segments(draw):
    """Bytes of a segment: frames with random sizes and epochs, then maybe one kind of damage."""
    sizes = draw(st.lists(st.integers(1, 12), min_size=0, max_size=30))
    epoch = draw(st.integers(1, 3))
    frames, seq = [], 1
    for n in sizes:
        epoch += draw(st.sampled_from([0, 0, 0, 1]))
        frames.append(make_frame(seq, n, epoch))
        seq += n
    data = bytearray(b"".join(frames))
    damage = draw(st.sampled_from(["none", "flip", "truncate", "junk", "repeat"]))
    if data and damage == "flip":
        pos = draw(st.integers(0, len(data) - 1))
        data[pos] ^= 1 << draw(st.integers(0, 7))
    elif data and damage == "truncate":
        del data[draw(st.integers(0, len(data) - 1)) :]
    elif damage == "junk":
        data += draw(st.binary(min_size=1, max_size=400))
    elif frames and damage == "repeat":
        data += frames[draw(st.integers(0, len(frames) - 1))]
    return bytes(data)


def _run(kernel, data, start=0, expect=1, min_epoch=0):
    cap = len(data) // 160 + 1
    cols = [np.zeros(cap, dtype=np.int64) for _ in range(4)] + [np.zeros(cap, dtype=np.uint64)]
    n, off = kernel(*views(data, len(data)), start, len(data), expect, min_epoch, _MAGIC_U32, PROTOCOL_VERSION, _STAMPED,
                    MAX_FRAME_RECORDS, *cols)
    return n, off, [c[:n].tolist() for c in cols]


@settings(max_examples=150, deadline=None)
@given(data=damaged_segments())
def test_walk_headers_when_random_damaged_segment_then_numba_equals_reference(data):
    assert _run(walk_headers, data) == _run(walk_headers_py, data)


@settings(max_examples=150, deadline=None)
@given(data=damaged_segments())
def test_walk_frames_when_fast_path_used_then_same_index_end_and_problem_as_python_walk(data):
    results = []
    for threshold in (0, 1 << 62):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(_format, "FAST_WALK_BYTES", threshold)
            index = FrameIndex()
            end, problem = walk_frames(data, "s.seg", 0, len(data), 1, 0, index, True)
        results.append((end, problem, index.to_array().tobytes()))
    assert results[0] == results[1]


def test_walk_frames_when_fast_path_stops_mid_segment_then_continues_at_the_right_seq(monkeypatch):
    monkeypatch.setattr(_format, "FAST_WALK_BYTES", 0)
    data = make_frame(1, 3, 1) + make_frame(4, 2, 1)
    index = FrameIndex()
    index.add(1, 0, 3, 1)
    end, problem = walk_frames(data, "s.seg", 32 + 3 * 128, len(data), 4, 1, index, True)
    assert (end, problem) == (len(data), None)
    assert index.first_seq.tolist() == [1, 4]

"""Journal recovery: torn tails cut at every byte, corruption found and located, never skipped."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from journal_frames import fill, make_frame, make_records
from sequencer.journal import Journal, JournalCorrupt, JournalReader, _format, verify_journal
from sequencer.protocol import HEADER_SIZE, RECORD_SIZE

_settings = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _frame_map(path):
    """``[(segment name, frame offset, frame size, first seq)]`` of every frame on disk."""
    out = []
    with JournalReader(path) as r:
        for seg, n in r._set.snapshot():
            for j in range(n):
                idx = seg.index
                out.append((seg.name, idx.offset[j], HEADER_SIZE + idx.count[j] * RECORD_SIZE, idx.first_seq[j]))
    return out


def _tail(path):
    return sorted(path.glob("*.seg"))[-1]


@pytest.mark.parametrize("last_alone", [False, True], ids=["tail-shares-segment", "tail-alone-in-segment"])
def test_reopen_when_last_frame_cut_at_every_byte_then_lands_on_last_whole_frame_and_appends_continue(tmp_path, last_alone):
    src = tmp_path / "src"
    seg_bytes = 700 if last_alone else 1 << 20
    with Journal.open(src, durability="none", segment_bytes=seg_bytes) as j:
        everything = fill(j, [2, 1, 3], epoch=j.next_epoch())
    last_frame = HEADER_SIZE + 3 * RECORD_SIZE
    tail_name = _tail(src).name
    whole = _tail(src).read_bytes()
    assert len(whole) == (last_frame if last_alone else 6 * RECORD_SIZE + 3 * HEADER_SIZE)
    keep = len(whole) - last_frame
    work = tmp_path / "work"
    shutil.copytree(src, work)
    for cut in range(last_frame):
        # Put the directory back as the crash left it: the torn tail, nothing after it.
        for p in work.iterdir():
            if p.suffix in (".seg", ".idx") and p.stem >= tail_name[:-4]:
                p.unlink()
        (work / tail_name).write_bytes(whole[: keep + cut])
        with Journal.open(work, durability="none", segment_bytes=seg_bytes) as j:
            assert j.last_seq == 3, cut
            assert j.recovery.cut_bytes == cut
            assert (j.recovery.cut is not None) == (cut > 0)
            j.append(make_frame(4, 5, 1), 4, 5, 1)
            assert j.last_seq == 8
        rep = verify_journal(work)
        assert rep.ok, (cut, rep.problem)
        with JournalReader(work) as r:
            got = r.read_array()
        assert np.array_equal(got["seq"], np.arange(1, 9))
        assert got[:3].tobytes() == everything[:3].tobytes()


@_settings
@given(
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=12),
    seg_kb=st.sampled_from([1, 2, 64]),
    cut_frac=st.floats(0, 1, exclude_max=True),
    junk=st.sampled_from(["none", "zeros", "random"]),
    junk_len=st.integers(1, 3000),
)
def test_reopen_when_crash_tore_the_last_write_then_cut_to_last_whole_frame(tmp_path_factory, sizes, seg_kb, cut_frac, junk, junk_len):
    path = tmp_path_factory.mktemp("j")
    with Journal.open(path, durability="none", segment_bytes=seg_kb * 1024) as j:
        everything = fill(j, sizes, epoch=j.next_epoch())
    first_last = int(everything["seq"][-1]) - sizes[-1] + 1
    frame = make_frame(first_last, sizes[-1], 1)
    tail = _tail(path)
    data = tail.read_bytes()
    assert data.endswith(frame)
    torn = data[: len(data) - len(frame) + int(cut_frac * len(frame))]
    rng = np.random.default_rng(junk_len)
    if junk == "zeros":
        torn += bytes(junk_len)
    elif junk == "random":
        torn += rng.integers(0, 256, junk_len, dtype=np.uint8).tobytes()
    tail.write_bytes(torn)
    start = len(data) - len(frame)
    # Junk can complete the frame when the missing bytes were zero padding anyway.
    survived = torn[start : len(data)] == frame
    last = int(everything["seq"][-1]) if survived else first_last - 1
    with Journal.open(path, durability="none") as j:
        assert j.last_seq == last
        fill(j, [2])
        got = j.read_array()
    assert np.array_equal(got["seq"], np.arange(1, last + 3))
    assert verify_journal(path).ok


@pytest.mark.parametrize("fast_walk", [False, True], ids=["python-walk", "numba-walk"])
def test_verify_when_any_byte_flipped_then_names_the_frame_that_holds_it(tmp_path, monkeypatch, fast_walk):
    if fast_walk:
        monkeypatch.setattr(_format, "FAST_WALK_BYTES", 0)
    src = tmp_path / "src"
    with Journal.open(src, durability="none", segment_bytes=500) as j:
        fill(j, [1, 2, 1, 3, 1], epoch=j.next_epoch())
    frames = _frame_map(src)
    assert len({f[0] for f in frames}) >= 3
    originals = {p.name: p.read_bytes() for p in src.glob("*.seg")}
    # The Python walk is checked at every byte; the kernel (same rules, tested equal to its
    # reference in test_journal_walk.py) at every third byte, to keep the file fast.
    step = 3 if fast_walk else 1
    for name, off, size, first in frames:
        for pos in range(off, off + size, step):
            data = bytearray(originals[name])
            data[pos] ^= 0x5A
            (src / name).write_bytes(bytes(data))
            rep = verify_journal(src)
            assert not rep.ok, (name, pos)
            p = rep.problem
            assert (p.segment, p.offset, p.seq) == (name, off, first), (name, pos, p)
        (src / name).write_bytes(originals[name])
    assert verify_journal(src).ok


@_settings
@given(data=st.data())
def test_open_when_byte_flipped_then_corrupt_frame_raises_and_only_the_last_frame_is_cut(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("j")
    with Journal.open(path, durability="none", segment_bytes=1000) as j:
        everything = fill(j, [2, 1, 3, 1, 2, 2], epoch=j.next_epoch())
    frames = _frame_map(path)
    k = data.draw(st.integers(0, len(frames) - 1), label="frame")
    name, off, size, first = frames[k]
    pos = off + data.draw(st.integers(0, size - 1), label="byte")
    raw = bytearray((path / name).read_bytes())
    raw[pos] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    (path / name).write_bytes(bytes(raw))
    in_tail_segment = name == frames[-1][0]
    if k == len(frames) - 1:
        with Journal.open(path, durability="none") as j:
            assert j.last_seq == first - 1
            assert j.recovery.cut.offset == off
    elif in_tail_segment:
        with pytest.raises(JournalCorrupt) as info:
            Journal.open(path, durability="none")
        assert (info.value.segment, info.value.offset, info.value.seq) == (name, off, first)
    else:
        with pytest.raises(JournalCorrupt) as info:
            Journal.open(path, durability="none", verify=True)
        assert (info.value.segment, info.value.offset, info.value.seq) == (name, off, first)
        # Without verify a sealed segment is trusted at open, but reading it checks every frame.
        with Journal.open(path, durability="none") as j:
            assert j.read_array(1, first - 1).tobytes() == everything[: first - 1].tobytes()
            with pytest.raises(JournalCorrupt) as info:
                j.read_array()
            assert (info.value.segment, info.value.offset, info.value.seq) == (name, off, first)


def test_open_when_corrupt_frame_in_the_middle_then_journal_corrupt_names_segment_offset_seq(tmp_path):
    with Journal.open(tmp_path, durability="none") as j:
        fill(j, [4, 4, 4], epoch=j.next_epoch())
    seg = _tail(tmp_path)
    raw = bytearray(seg.read_bytes())
    off = HEADER_SIZE + 4 * RECORD_SIZE
    raw[off + 40 : off + 100] = bytes(60)
    seg.write_bytes(bytes(raw))
    with pytest.raises(JournalCorrupt) as info:
        Journal.open(tmp_path, durability="none")
    exc = info.value
    assert (exc.segment, exc.offset, exc.seq) == (seg.name, off, 5)
    assert seg.name in str(exc) and f"offset {off}" in str(exc) and "seq 5" in str(exc)
    assert not exc.problem.torn
    # The reader still serves what precedes the corrupt frame and raises when a read reaches it.
    with JournalReader(tmp_path) as r:
        assert r.corrupt is not None and r.last_seq == 4
        assert np.array_equal(r.read_array(1, 4)["seq"], np.arange(1, 5))
        seen = []
        with pytest.raises(JournalCorrupt):
            for chunk in r.read(2):
                seen.extend(chunk["seq"].tolist())
        assert seen == [2, 3, 4]


def test_open_when_frame_repeated_then_corrupt_not_torn(tmp_path):
    with Journal.open(tmp_path, durability="none") as j:
        fill(j, [2, 2], epoch=j.next_epoch())
    seg = _tail(tmp_path)
    seg.write_bytes(seg.read_bytes() + make_frame(3, 2, 1))
    with pytest.raises(JournalCorrupt, match="frame starts at seq 3, expected 5"):
        Journal.open(tmp_path, durability="none")


def test_open_when_a_middle_segment_is_missing_then_journal_corrupt_names_the_gap(tmp_path):
    with Journal.open(tmp_path, durability="none", segment_bytes=600) as j:
        fill(j, [3, 3, 3, 3], epoch=j.next_epoch())
    segs = sorted(tmp_path.glob("*.seg"))
    assert len(segs) == 4
    segs[1].unlink()
    with pytest.raises(JournalCorrupt, match="segment starts at seq 7, expected 4") as info:
        Journal.open(tmp_path, durability="none")
    assert info.value.segment == segs[2].name
    assert not verify_journal(tmp_path).ok


def test_open_when_epoch_file_damaged_then_journal_corrupt(tmp_path):
    with Journal.open(tmp_path, durability="none") as j:
        j.next_epoch()
    (tmp_path / "EPOCH").write_text("seqrisk-epoch 1 7 0000\n")
    with pytest.raises(JournalCorrupt, match="EPOCH"):
        Journal.open(tmp_path, durability="none")
    assert verify_journal(tmp_path).problem.segment == "EPOCH"


class JournalMachine(RuleBasedStateMachine):
    """Appends, reopens, torn crashes and epoch changes against a list model of the records."""

    def __init__(self):
        super().__init__()
        import tempfile

        self.dir = tempfile.mkdtemp(prefix="journal-sm-")
        self.seg_bytes = 1500
        self.j = Journal.open(self.dir, durability="none", segment_bytes=self.seg_bytes)
        self.epoch = self.j.next_epoch()
        self.model: list[np.ndarray] = []

    def _all(self):
        return np.concatenate(self.model) if self.model else make_records(1, 1, 1)[:0]

    @rule(n=st.integers(1, 20))
    def append(self, n):
        first = self.j.last_seq + 1
        self.j.append(make_frame(first, n, self.epoch), first, n, self.epoch)
        self.model.append(make_records(first, n, self.epoch))

    @rule()
    def reopen(self):
        self.j.close()
        self.j = Journal.open(self.dir, durability="none", segment_bytes=self.seg_bytes)

    @rule()
    def new_epoch(self):
        self.epoch = self.j.next_epoch()

    @rule(n=st.integers(1, 20), frac=st.floats(0, 1, exclude_max=True))
    def crash_mid_write(self, n, frac):
        first = self.j.last_seq + 1
        frame = make_frame(first, n, self.epoch)
        tail = self.j._set.segments[-1].path if self.j._set.segments else None
        self.j.close()
        if tail is not None:
            with open(tail, "ab") as f:
                f.write(frame[: int(frac * len(frame))])
        self.j = Journal.open(self.dir, durability="none", segment_bytes=self.seg_bytes)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def read_range(self, data):
        last = self.j.last_seq
        lo = data.draw(st.integers(1, last))
        hi = data.draw(st.integers(lo, last))
        want = self._all()[lo - 1 : hi]
        assert self.j.read_array(lo, hi).tobytes() == want.tobytes()

    @invariant()
    def seq_matches_model(self):
        assert self.j.last_seq == sum(len(m) for m in self.model)

    def teardown(self):
        self.j.close()
        assert verify_journal(self.dir).ok
        with JournalReader(self.dir) as r:
            assert r.read_array().tobytes() == self._all().tobytes()
        shutil.rmtree(self.dir, ignore_errors=True)


TestJournalMachine = JournalMachine.TestCase
TestJournalMachine.settings = settings(max_examples=25, stateful_step_count=30, deadline=None)


@pytest.mark.parametrize("where", ["header", "record"])
def test_read_when_sealed_segment_of_many_small_frames_has_a_flipped_byte_then_read_names_that_frame(tmp_path, where):
    with Journal.open(tmp_path, durability="none", segment_bytes=400 * 160) as j:
        everything = fill(j, [1] * 450, epoch=j.next_epoch())
    first_seg = sorted(tmp_path.glob("*.seg"))[0]
    raw = bytearray(first_seg.read_bytes())
    off = 299 * 160
    raw[off + (20 if where == "header" else 100)] ^= 0x10
    first_seg.write_bytes(bytes(raw))
    with Journal.open(tmp_path, durability="none") as j:
        assert j.read_array(1, 299).tobytes() == everything[:299].tobytes()
        assert j.read_array(301).tobytes() == everything[300:].tobytes()
        with pytest.raises(JournalCorrupt) as info:
            j.read_array()
    assert (info.value.segment, info.value.offset, info.value.seq) == (first_seg.name, off, 300)

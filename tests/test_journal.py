"""Journal append/read round trips, continuity checks, epochs, readers and durability paths."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journal_frames import fill, make_frame, make_records
from sequencer.journal import Journal, JournalError, JournalReader, verify_journal
from sequencer.protocol import HEADER_SIZE, RECORD_SIZE, encode_frame

SMALL_SEG = 4096
_settings = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _half_write_then_enospc(real_write):
    """An ``os.write`` that writes the first 100 bytes of the data, then fails with ENOSPC."""

    def write(fd, data):
        real_write(fd, bytes(data[:100]))
        raise OSError(errno.ENOSPC, "No space left on device")

    return write


def test_append_when_frames_of_random_sizes_then_read_returns_them_in_order(tmp_path):
    rng = np.random.default_rng(7)
    sizes = [int(n) for n in rng.integers(1, 200, size=60)]
    with Journal.open(tmp_path / "j", durability="none", segment_bytes=SMALL_SEG * 4) as j:
        expect = fill(j, sizes)
        assert len(j.segments()) > 3
        got = j.read_array()
    assert got.tobytes() == expect.tobytes()
    with JournalReader(tmp_path / "j") as r:
        assert r.read_array().tobytes() == expect.tobytes()
        assert (r.first_seq, r.last_seq) == (1, len(expect))


@_settings
@given(
    sizes=st.lists(st.integers(1, 150), min_size=1, max_size=25),
    seg_kb=st.sampled_from([1, 4, 16, 1024]),
    bounds=st.tuples(st.integers(-5, 4000), st.integers(-5, 4000)),
)
def test_read_when_any_seq_range_then_equals_slice_of_everything(tmp_path_factory, sizes, seg_kb, bounds):
    path = tmp_path_factory.mktemp("j")
    with Journal.open(path, durability="none", segment_bytes=seg_kb * 1024) as j:
        everything = fill(j, sizes)
    lo, hi = bounds
    with JournalReader(path) as r:
        chunks = list(r.read(lo, hi))
        for chunk in chunks:
            assert not chunk.flags.writeable
        got = np.concatenate(chunks) if chunks else everything[:0]
        want = everything[(everything["seq"] >= lo) & (everything["seq"] <= hi)]
        assert got.tobytes() == want.tobytes()
        tail = r.read_array(lo)
        assert tail.tobytes() == everything[everything["seq"] >= lo].tobytes()


def test_read_when_frame_is_large_then_chunk_is_a_view_of_the_mapped_segment(tmp_path):
    with Journal.open(tmp_path, durability="none") as j:
        fill(j, [512, 512])
        chunks = list(j.read(100, 900))
    assert [len(c) for c in chunks] == [413, 388]
    assert all(c.base is not None and not c.flags.owndata for c in chunks)


def test_append_when_seq_gap_then_value_error_names_both_seqs_and_nothing_is_written(tmp_path):
    with Journal.open(tmp_path, durability="none") as j:
        fill(j, [3])
        size = os.path.getsize(tmp_path / "00000000000000000001.seg")
        with pytest.raises(ValueError, match=r"first seq 5 does not follow last seq 3"):
            j.append(make_frame(5, 2, 1), 5, 2, 1)
        with pytest.raises(ValueError, match=r"first seq 3 does not follow last seq 3"):
            j.append(make_frame(3, 2, 1), 3, 2, 1)
        assert j.last_seq == 3
        assert os.path.getsize(tmp_path / "00000000000000000001.seg") == size


def test_append_when_frame_disagrees_with_arguments_then_value_error(tmp_path):
    with Journal.open(tmp_path, durability="none") as j:
        e = j.next_epoch()
        e2 = j.next_epoch()
        fill(j, [2], epoch=e2)
        with pytest.raises(ValueError, match="epoch 1 is lower than the journal's last epoch 2"):
            j.append(make_frame(3, 1, e), 3, 1, e)
        with pytest.raises(ValueError, match="header says first seq 3, count 2, epoch 2; arguments say 3, 2, 1"):
            j.append(make_frame(3, 2, e2), 3, 2, e)
        with pytest.raises(ValueError, match="bytes"):
            j.append(make_frame(3, 2, e2)[:-1], 3, 2, e2)
        bad = bytearray(make_frame(3, 2, e2))
        bad[-1] ^= 1
        with pytest.raises(ValueError, match="checksum"):
            j.append(bytes(bad), 3, 2, e2)
        recs = make_records(3, 2, e2)
        recs["seq"][1] = 9
        with pytest.raises(ValueError, match="records carry seqs 3..9"):
            j.append(encode_frame(recs, epoch=e2, first_seq=3), 3, 2, e2)
        with pytest.raises(ValueError, match="count must be > 0"):
            j.append(b"", 3, 0, e2)
        assert j.last_seq == 2
    assert verify_journal(tmp_path).ok


def test_open_when_journal_is_empty_then_first_append_must_be_seq_one(tmp_path):
    with Journal.open(tmp_path, durability="none") as j:
        assert (j.first_seq, j.last_seq, j.last_epoch) == (0, 0, 0)
        with pytest.raises(ValueError, match="expected 1"):
            j.append(make_frame(2, 1, 1), 2, 1, 1)
        assert list(j.read()) == []


def test_reopen_when_appended_then_seq_and_epoch_continue(tmp_path):
    with Journal.open(tmp_path, durability="batch", segment_bytes=SMALL_SEG) as j:
        assert j.next_epoch() == 1
        fill(j, [10, 20, 30], epoch=1)
    with Journal.open(tmp_path, durability="batch", segment_bytes=SMALL_SEG) as j:
        assert (j.first_seq, j.last_seq, j.last_epoch) == (1, 60, 1)
        assert j.recovery.cut is None
        assert j.next_epoch() == 2
        fill(j, [5], epoch=2)
    with Journal.open(tmp_path, durability="none") as j:
        assert (j.last_seq, j.last_epoch) == (65, 2)
        assert j.epochs() == [(1, 1, 60), (2, 61, 65)]
        assert j.next_epoch() == 3


def test_next_epoch_when_epoch_file_lost_then_still_above_every_journaled_epoch(tmp_path):
    with Journal.open(tmp_path, durability="none") as j:
        for _ in range(4):
            e = j.next_epoch()
        fill(j, [3], epoch=e)
        assert j.last_epoch == 4
    (tmp_path / "EPOCH").unlink()
    with Journal.open(tmp_path, durability="none") as j:
        assert j.next_epoch() == 5


def test_next_epoch_when_handed_out_but_never_used_then_not_reused_after_a_crash(tmp_path):
    code = (
        "import os, sys\n"
        "from sequencer.journal import Journal\n"
        "j = Journal.open(sys.argv[1], durability='none')\n"
        "print(j.next_epoch(), flush=True)\n"
        "os._exit(0)\n"
    )
    seen = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60, check=True)
        seen.append(int(out.stdout))
    assert seen == [1, 2, 3]


def test_crash_when_process_exits_without_close_then_reopen_continues_with_no_gap(tmp_path):
    code = (
        "import os, sys\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "from journal_frames import fill\n"
        "from sequencer.journal import Journal\n"
        "j = Journal.open(sys.argv[1], durability='always', segment_bytes=4096)\n"
        "fill(j, [7, 9, 40], epoch=j.next_epoch())\n"
        "os._exit(0)\n"
    )
    tests_dir = os.path.dirname(__file__)
    for _ in range(2):
        subprocess.run([sys.executable, "-c", code, str(tmp_path), tests_dir], timeout=60, check=True)
    with Journal.open(tmp_path, durability="none") as j:
        assert j.epochs() == [(1, 1, 56), (2, 57, 112)]
        got = j.read_array()
    assert np.array_equal(got["seq"], np.arange(1, 113))


def test_open_when_already_open_for_writing_then_journal_error(tmp_path):
    with Journal.open(tmp_path, durability="none"):
        with pytest.raises(JournalError, match="lock"):
            Journal.open(tmp_path, durability="none")
    Journal.open(tmp_path, durability="none").close()


def test_open_when_bad_arguments_then_value_error(tmp_path):
    with pytest.raises(ValueError, match="durability"):
        Journal.open(tmp_path, durability="sometimes")
    with pytest.raises(ValueError, match="segment_bytes"):
        Journal.open(tmp_path, segment_bytes=10)
    with pytest.raises(ValueError, match="sync_ms"):
        Journal.open(tmp_path, sync_ms=0)


def test_reader_when_writer_appends_then_sees_new_frames_only_after_refresh(tmp_path):
    with Journal.open(tmp_path, durability="none", segment_bytes=SMALL_SEG) as j:
        fill(j, [10])
        r = JournalReader(tmp_path)
        assert r.last_seq == 10
        everything = np.concatenate([make_records(1, 10, 1), fill(j, [30, 30, 30])])
        assert r.last_seq == 10
        assert r.read_array().tobytes() == everything[:10].tobytes()
        assert r.refresh() == 100
        assert r.read_array().tobytes() == everything.tobytes()
        # A frame the writer is still writing is not visible and is not an error.
        half = make_frame(101, 5, 1)[:200]
        with open(j._set.segments[-1].path, "ab") as f:
            f.write(half)
        assert r.refresh() == 100
        assert r.tail_problem is not None and r.tail_problem.torn
        assert r.corrupt is None
        r.close()


def test_reader_when_directory_missing_then_journal_error(tmp_path):
    with pytest.raises(JournalError, match="no such journal directory"):
        JournalReader(tmp_path / "nope")


def test_reopen_when_index_files_missing_or_damaged_then_rebuilt_and_reads_agree(tmp_path):
    with Journal.open(tmp_path, durability="none", segment_bytes=SMALL_SEG) as j:
        everything = fill(j, [9] * 20)
    idx = sorted(tmp_path.glob("*.idx"))
    assert len(idx) >= 3
    idx[0].unlink()
    raw = bytearray(idx[1].read_bytes())
    raw[-3] ^= 0xFF
    idx[1].write_bytes(bytes(raw))
    with JournalReader(tmp_path) as r:
        assert r.read_array().tobytes() == everything.tobytes()
    assert not verify_journal(tmp_path).ok
    with Journal.open(tmp_path, durability="none") as j:
        assert j.read_array().tobytes() == everything.tobytes()
    assert idx[0].exists()
    assert verify_journal(tmp_path).ok


def _count_syncs(monkeypatch):
    calls = []
    real = os.fdatasync

    def counting(fd):
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counting)
    return calls


def test_append_when_durability_always_then_one_fdatasync_per_append(tmp_path, monkeypatch):
    calls = _count_syncs(monkeypatch)
    with Journal.open(tmp_path, durability="always") as j:
        fill(j, [1, 2, 3, 4])
        assert len(calls) == 4
        assert j.synced_seq == j.last_seq == 10
    assert len(calls) == 4


def test_append_when_durability_none_then_no_fdatasync_until_explicit_sync(tmp_path, monkeypatch):
    calls = _count_syncs(monkeypatch)
    with Journal.open(tmp_path, durability="none", segment_bytes=SMALL_SEG) as j:
        fill(j, [20] * 10)
        assert calls == []
        assert j.synced_seq == 0
        assert j.sync() == 200
        assert len(calls) == 1
    assert len(calls) == 1


def test_append_when_durability_batch_then_group_commit_syncs_at_most_once_per_period(tmp_path, monkeypatch):
    calls = _count_syncs(monkeypatch)
    period_ms = 50.0
    t0 = time.monotonic()
    with Journal.open(tmp_path, durability="batch", sync_ms=period_ms) as j:
        fill(j, [4] * 200)
        deadline = time.monotonic() + 10
        while j.synced_seq < j.last_seq and time.monotonic() < deadline:
            time.sleep(0.005)
        assert j.synced_seq == j.last_seq == 800
        elapsed_ms = (time.monotonic() - t0) * 1000
        assert 1 <= len(calls) <= elapsed_ms / period_ms + 2
        fill(j, [1])
        before = len(calls)
    # close() syncs what the group commit had not yet.
    assert len(calls) == before + 1


def test_append_when_fdatasync_fails_then_oserror_and_journal_refuses_until_reopened(tmp_path, monkeypatch):
    j = Journal.open(tmp_path, durability="always")
    fill(j, [2])

    def failing(fd):
        raise OSError(errno.EIO, "injected EIO")

    monkeypatch.setattr(os, "fdatasync", failing)
    with pytest.raises(OSError, match="injected EIO"):
        j.append(make_frame(3, 2, 1), 3, 2, 1)
    monkeypatch.undo()
    with pytest.raises(OSError, match="failed earlier"):
        j.append(make_frame(5, 2, 1), 5, 2, 1)
    with pytest.raises(OSError, match="failed earlier"):
        j.sync()
    j.close()
    with Journal.open(tmp_path, durability="none") as j:
        assert j.last_seq in (2, 4)
        fill(j, [1])
    assert verify_journal(tmp_path).ok


def test_append_when_disk_full_mid_frame_then_partial_frame_cut_and_next_append_works(tmp_path, monkeypatch):
    j = Journal.open(tmp_path, durability="none")
    fill(j, [3])
    real_write = os.write

    def half_then_enospc(fd, data):
        if len(data) > 100:
            real_write(fd, bytes(data[:100]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", half_then_enospc)
    with pytest.raises(OSError) as info:
        j.append(make_frame(4, 5, 1), 4, 5, 1)
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert j.last_seq == 3
    assert os.path.getsize(tmp_path / "00000000000000000001.seg") == HEADER_SIZE + 3 * RECORD_SIZE
    fill(j, [5])
    j.close()
    rep = verify_journal(tmp_path)
    assert rep.ok and rep.last_seq == 8


def test_append_when_write_and_cut_both_fail_then_reopen_cuts_partial_frame(tmp_path, monkeypatch):
    j = Journal.open(tmp_path, durability="none")
    fill(j, [3])
    half_then_enospc = _half_write_then_enospc(os.write)

    def no_truncate(fd, size):
        raise OSError(errno.EIO, "injected")

    monkeypatch.setattr(os, "write", half_then_enospc)
    monkeypatch.setattr(os, "ftruncate", no_truncate)
    with pytest.raises(OSError):
        j.append(make_frame(4, 5, 1), 4, 5, 1)
    monkeypatch.undo()
    with pytest.raises(OSError, match="failed earlier"):
        j.append(make_frame(4, 5, 1), 4, 5, 1)
    j.close()
    assert verify_journal(tmp_path).problem.torn
    with Journal.open(tmp_path, durability="none") as j:
        assert j.last_seq == 3
        assert j.recovery.cut_bytes == 100
        fill(j, [5])
    assert verify_journal(tmp_path).ok


def test_segments_when_rolled_then_names_sort_by_first_seq_and_infos_add_up(tmp_path):
    with Journal.open(tmp_path, durability="none", segment_bytes=SMALL_SEG) as j:
        fill(j, [25] * 7)
        infos = j.segments()
    names = [s.name for s in infos]
    assert names == sorted(names)
    assert [int(n.split(".")[0]) for n in names] == [s.first_seq for s in infos]
    assert sum(s.records for s in infos) == 175
    assert all(s.sealed for s in infos[:-1]) and not infos[-1].sealed
    for a, b in zip(infos, infos[1:]):
        assert b.first_seq == a.last_seq + 1
        assert a.bytes <= SMALL_SEG


def test_append_when_frame_larger_than_segment_then_it_gets_a_segment_of_its_own(tmp_path):
    with Journal.open(tmp_path, durability="none", segment_bytes=1024) as j:
        everything = fill(j, [1, 40, 1])
        assert [s.records for s in j.segments()] == [1, 40, 1]
        assert j.read_array().tobytes() == everything.tobytes()


def test_reopen_when_durability_is_not_none_then_recovered_segments_are_synced(tmp_path, monkeypatch):
    with Journal.open(tmp_path, durability="none", segment_bytes=SMALL_SEG) as j:
        fill(j, [20] * 6, epoch=j.next_epoch())
        n_segs = len(j.segments())
    calls = _count_syncs(monkeypatch)
    with Journal.open(tmp_path, durability="batch") as j:
        assert len(calls) == n_segs
        assert j.synced_seq == j.last_seq == 120
    with Journal.open(tmp_path, durability="none") as j:
        assert len(calls) == n_segs
        assert j.synced_seq == 0


def test_reopen_when_crash_left_an_empty_new_segment_then_it_is_recreated_and_appends_continue(tmp_path):
    with Journal.open(tmp_path, durability="none", segment_bytes=SMALL_SEG) as j:
        everything = fill(j, [20] * 3, epoch=j.next_epoch())
    (tmp_path / "00000000000000000061.seg").write_bytes(b"")
    with Journal.open(tmp_path, durability="none", segment_bytes=SMALL_SEG) as j:
        assert j.last_seq == 60
        assert j.recovery.cut is None
        everything = np.concatenate([everything, fill(j, [20] * 3)])
    assert verify_journal(tmp_path).ok
    with JournalReader(tmp_path) as r:
        assert r.read_array().tobytes() == everything.tobytes()


def test_read_when_another_thread_appends_then_every_read_is_a_contiguous_prefix(tmp_path):
    import threading

    j = Journal.open(tmp_path, durability="none", segment_bytes=SMALL_SEG)
    e = j.next_epoch()
    done = threading.Event()

    def writer():
        try:
            for _ in range(300):
                first = j.last_seq + 1
                j.append(make_frame(first, 7, e), first, 7, e)
        finally:
            done.set()

    t = threading.Thread(target=writer)
    t.start()
    reads = 0
    deadline = time.monotonic() + 30
    while not done.is_set() and time.monotonic() < deadline:
        got = j.read_array()
        assert np.array_equal(got["seq"], np.arange(1, len(got) + 1))
        reads += 1
    t.join(timeout=30)
    got = j.read_array()
    j.close()
    assert reads > 0
    assert got.tobytes() == make_records(1, 2100, e).tobytes()


def test_read_when_frames_are_small_then_they_are_gathered_into_bounded_chunks(tmp_path):
    from sequencer.journal._segments import GATHER_RECORDS, SMALL_FRAME

    with Journal.open(tmp_path, durability="none") as j:
        everything = fill(j, [3] * 3000 + [100] + [1] * 50, epoch=j.next_epoch())
        chunks = list(j.read(2))
    sizes = [len(c) for c in chunks]
    assert all(0 < s <= GATHER_RECORDS + SMALL_FRAME for s in sizes)
    assert len(chunks) <= 9000 // GATHER_RECORDS + 4
    assert 100 in sizes
    assert np.concatenate(chunks).tobytes() == everything[1:].tobytes()


def test_read_when_many_segments_then_mappings_of_sealed_segments_are_released(tmp_path):
    with Journal.open(tmp_path, durability="none", segment_bytes=1024) as j:
        everything = fill(j, [5] * 60, epoch=j.next_epoch())
    fds_before = len(os.listdir("/proc/self/fd"))
    with JournalReader(tmp_path, verify=True) as r:
        total = sum(len(c) for c in r.read())
        fds_during = len(os.listdir("/proc/self/fd"))
        assert total == len(everything)
        assert sum(s._map is not None for s in r._set.segments) <= 1
    assert fds_during - fds_before <= 2


def test_append_stamped_when_same_frames_then_same_segments_index_and_reads_as_append(tmp_path):
    sizes = [1, 3, 40, 1, 7]
    for name, method in (("a", "append"), ("b", "append_stamped")):
        with Journal.open(tmp_path / name, durability="batch", sync_ms=1, segment_bytes=SMALL_SEG) as j:
            e = j.next_epoch()
            for n in sizes:
                first = j.last_seq + 1
                getattr(j, method)(bytearray(make_frame(first, n, e)), first, n, e)
            assert (j.last_seq, j.last_epoch) == (sum(sizes), e)
    segs_a = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert segs_a == sorted(p.name for p in (tmp_path / "b").iterdir())
    for seg in segs_a:
        assert (tmp_path / "a" / seg).read_bytes() == (tmp_path / "b" / seg).read_bytes(), seg
    assert verify_journal(tmp_path / "b").ok


def test_append_stamped_when_size_order_or_epoch_wrong_then_value_error_and_nothing_written(tmp_path):
    with Journal.open(tmp_path, durability="none") as j:
        e = j.next_epoch()
        e2 = j.next_epoch()
        fill(j, [2], epoch=e2)
        size = os.path.getsize(tmp_path / "00000000000000000001.seg")
        with pytest.raises(ValueError, match=r"first seq 5 does not follow last seq 2"):
            j.append_stamped(bytearray(make_frame(5, 1, e2)), 5, 1, e2)
        with pytest.raises(ValueError, match="epoch 1 is lower than the journal's last epoch 2"):
            j.append_stamped(bytearray(make_frame(3, 1, e)), 3, 1, e)
        with pytest.raises(ValueError, match="bytes"):
            j.append_stamped(bytearray(make_frame(3, 2, e2))[:-1], 3, 2, e2)
        with pytest.raises(ValueError, match="count must be > 0"):
            j.append_stamped(bytearray(), 3, 0, e2)
        assert j.last_seq == 2
        assert os.path.getsize(tmp_path / "00000000000000000001.seg") == size


def test_append_stamped_when_disk_full_mid_frame_then_cut_and_after_fdatasync_failure_refused(tmp_path, monkeypatch):
    j = Journal.open(tmp_path, durability="always")
    fill(j, [3])
    half_then_enospc = _half_write_then_enospc(os.write)

    monkeypatch.setattr(os, "write", half_then_enospc)
    with pytest.raises(OSError) as info:
        j.append_stamped(bytearray(make_frame(4, 5, 1)), 4, 5, 1)
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert j.last_seq == 3
    assert os.path.getsize(tmp_path / "00000000000000000001.seg") == HEADER_SIZE + 3 * RECORD_SIZE

    def failing(fd):
        raise OSError(errno.EIO, "injected EIO")

    monkeypatch.setattr(os, "fdatasync", failing)
    with pytest.raises(OSError, match="injected EIO"):
        j.append_stamped(bytearray(make_frame(4, 2, 1)), 4, 2, 1)
    monkeypatch.undo()
    with pytest.raises(OSError, match="failed earlier"):
        j.append_stamped(bytearray(make_frame(6, 2, 1)), 6, 2, 1)
    j.close()
    with Journal.open(tmp_path, durability="none") as j:
        assert j.last_seq in (3, 5)
    assert verify_journal(tmp_path).ok

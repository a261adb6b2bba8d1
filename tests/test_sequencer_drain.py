"""One ingest drain in process: the batch path gives the same replies and journal as the frame path.

A :class:`Sequencer` is started in this process; DEALERs queue messages, and one call of
``_drain_ingest`` takes them all as one drain. Each scenario runs three times: as shipped (a
one-frame drain takes the one-frame path), with the batch path for drains of any size, and
with the frame path only (``frame_runs`` returning None, no one-frame path); the replies,
journaled records (but ``ts_ns``) and counters must match.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import zmq

import sequencer.service_ingest as service_ingest
from sequencer.codes import ResultCode
from sequencer.config import SequencerConfig
from sequencer.journal import JournalReader
from sequencer.messages import decode_ingest_replies
from sequencer.protocol import RECORD_DTYPE, FrameType, Kind, encode_frame
from sequencer.service import Sequencer


def _frame(producer: int, pseqs: list[int]) -> bytes:
    recs = np.zeros(len(pseqs), RECORD_DTYPE)
    recs["kind"] = Kind.PRICE
    recs["instrument"] = 1
    recs["price"] = 100 + np.arange(len(pseqs))
    recs["producer"] = producer
    recs["producer_seq"] = pseqs
    return encode_frame(recs, frame_type=FrameType.INGEST)


def _bad_record(producer: int, pseq: int) -> bytes:
    recs = np.zeros(2, RECORD_DTYPE)
    recs["kind"] = Kind.PRICE
    recs["instrument"] = 1
    recs["price"] = [100, 0]  # the second record's price is invalid
    recs["producer"] = producer
    recs["producer_seq"] = [pseq, pseq + 1]
    return encode_frame(recs, frame_type=FrameType.INGEST)


# Each scenario: drains, each a list of (dealer index, message parts).
SCENARIOS = {
    "single frames": [[(0, [_frame(5, [1, 2])])], [(1, [_frame(6, [4])])], [(0, [_frame(5, [1, 2])])]],
    "one producer, contiguous": [[(0, [_frame(5, [1, 2])]), (0, [_frame(5, [3])]), (0, [_frame(5, [4, 5, 6])]),
                                  (0, [_frame(5, [7])])]],
    "two producers interleaved": [[(0, [_frame(5, [1])]), (1, [_frame(6, [10, 11])]), (0, [_frame(5, [2])]),
                                   (1, [_frame(6, [12])]), (0, [_frame(5, [4, 7])])]],
    "more than 15 frames": [[(i % 2, [_frame(5 + i % 2, [i // 2 + 1])]) for i in range(40)]],
    "gaps inside and between frames": [[(0, [_frame(5, [1, 3, 9])]), (0, [_frame(5, [20, 21])]),
                                        (0, [_frame(5, [22, 30])])]],
    "garbage among frames": [[(0, [_frame(5, [1])]), (0, [b"junk"]), (1, [_frame(6, [1]), b"extra"]),
                              (0, [_frame(5, [2])]), (1, [_frame(6, [2])])]],
    "bad record among frames": [[(0, [_frame(5, [1])]), (0, [_bad_record(5, 2)]), (0, [_frame(5, [4])])]],
    "duplicates and a late frame": [
        [(0, [_frame(5, [1, 2])]), (0, [_frame(5, [5, 6])])],
        [(0, [_frame(5, [1, 2])]), (0, [_frame(5, [3, 4])]), (0, [_frame(5, [7])])],
    ],
    "resend in the same drain": [[(0, [_frame(5, [1, 2])]), (0, [_frame(5, [1, 2])]), (0, [_frame(5, [3])])]],
    "same producer on two sockets": [[(0, [_frame(5, [1])]), (1, [_frame(5, [2])]), (0, [_frame(5, [3])])]],
    # More than GATHER_MAX_RECORDS records per frame: checked frame by frame, not by the kernel.
    "large frames": [[(0, [_frame(5, list(range(1 + 10 * i, 11 + 10 * i)))]) for i in range(4)]
                     + [(1, [b"junk"]), (1, [_frame(6, list(range(1, 9)))])]],
}


class _SplitDrain(Exception):
    """A message of the drain reached the ROUTER only after the drain was taken."""


def _run(tmp: Path, drains: list, path: str, monkeypatch: pytest.MonkeyPatch, fail_journal: bool = False) -> tuple:
    """Run ``drains`` through a fresh sequencer; ``path`` is "shipped", "batch" or "frame".

    The comparisons need each drain whole; on a loaded machine the I/O thread can queue a
    message late, which splits the drain: the run is then repeated (at most 3 attempts).
    """
    for attempt in range(3):
        where = tmp / f"attempt-{attempt}"
        where.mkdir()
        try:
            return _run_once(where, drains, path, monkeypatch, fail_journal)
        except _SplitDrain:
            continue
    pytest.fail("a message arrived after its drain in 3 attempts")


def _run_once(tmp: Path, drains: list, path: str, monkeypatch: pytest.MonkeyPatch, fail_journal: bool) -> tuple:
    if path != "shipped":
        monkeypatch.setattr(service_ingest, "ONE_FRAME_PATH", False)
    if path == "batch":
        monkeypatch.setattr(service_ingest, "BATCH_PATH_MIN_FRAMES", 1)  # even one-frame drains
    elif path == "frame":
        monkeypatch.setattr(service_ingest, "frame_runs", lambda info, starts: None)
    eps = {n: f"ipc://{tmp}/{n}" for n in ("ingest", "publish", "hwm", "replay")}
    cfg = SequencerConfig(**eps, journal=str(tmp / "j"), durability="none", hwm_file="off")
    ctx = zmq.Context()
    seq = Sequencer(cfg, context=ctx)
    replies: list = []
    try:
        seq.start()
        if fail_journal:
            def full_disk(*args: object) -> None:
                raise OSError(28, "No space left on device")

            seq.journal.append = seq.journal.append_stamped = full_disk
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(eps["publish"])
        dealers = []
        for _ in range(2):
            sock = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(eps["ingest"])
            dealers.append(sock)
        for drain in drains:
            for i, parts in drain:
                dealers[i].send_multipart(parts)
            _wait_queued(seq, sum(len(p) + 1 for _, p in drain))
            seq._drain_ingest()
            if seq._ingest.poll(20):
                raise _SplitDrain
            answered = 0
            for i, sock in enumerate(dealers):
                while sock.poll(200):
                    got = decode_ingest_replies(sock.recv())
                    replies.append((i, got))
                    answered += len(got)
            if answered < len(drain):  # every message gets one reply: some missed this drain
                raise _SplitDrain
        published = 0
        while sub.poll(100):
            sub.recv()
            published += 1
        seq._shutdown()
        chunks = list(JournalReader(tmp / "j").read(1)) if seq.hwm else []
        recs = np.concatenate(chunks) if chunks else np.zeros(0, RECORD_DTYPE)
        stats = (seq.stats.errors, seq.stats.producers, seq.stats.kind_counts.tolist(), seq.dedup.producers(),
                 seq.journal_failed, published)
        return replies, recs, stats
    finally:
        ctx.destroy(linger=0)


def _wait_queued(seq: Sequencer, parts: int) -> None:
    """Let the ROUTER's queue fill (the I/O thread moves the messages) before the drain."""
    deadline = time.monotonic() + 5
    while not seq._ingest.getsockopt(zmq.EVENTS) & zmq.POLLIN:
        assert time.monotonic() < deadline, "messages did not arrive"
        time.sleep(0.01)
    time.sleep(0.2 + parts * 0.001)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_drain_when_batch_or_one_frame_path_then_same_replies_journal_and_counters_as_frame_path(
        name, tmp_path, monkeypatch):
    runs = {}
    for path in ("shipped", "batch", "frame"):  # shipped first: the others patch the module
        (tmp_path / path).mkdir()
        runs[path] = _run(tmp_path / path, SCENARIOS[name], path, monkeypatch)
    slow = runs["frame"]
    assert slow[0], "no reply"
    for fast in (runs["shipped"], runs["batch"]):
        assert _arrival_free(fast[0], fast[1]) == _arrival_free(slow[0], slow[1])
        assert fast[2] == slow[2]


def _arrival_free(replies: list, recs: np.ndarray) -> tuple:
    """Replies and journal without what depends on how the ROUTER interleaved the two
    DEALERs (fair queueing, timing): the seqs. Per socket the reply messages and their order
    stay; the journal must hold seqs 1..n, compared by (producer, producer seq) with seq and
    ts cleared."""
    assert recs["seq"].tolist() == list(range(1, len(recs) + 1))
    by_socket = {}
    for i, batch in replies:
        by_socket.setdefault(i, []).append(tuple(
            (r.ok, r.code, r.first_producer_seq, r.last_producer_seq, r.duplicate, r.record_index, r.message,
             r.last_seq - r.first_seq) for r in batch))
    rows = recs.copy()
    rows["seq"] = rows["ts_ns"] = 0
    rows = rows[np.lexsort((rows["producer_seq"], rows["producer"]))]
    return by_socket, rows.tobytes()


def test_drain_when_frames_and_garbage_then_replies_in_arrival_order_per_socket(tmp_path, monkeypatch):
    replies, recs, (errors, *_rest) = _run(tmp_path, SCENARIOS["garbage among frames"], "batch", monkeypatch)
    by_socket = dict(replies)
    assert [(r.ok, r.first_seq, r.last_seq) for r in by_socket[0][:1]] == [(True, 1, 1)]
    assert by_socket[0][1].code == ResultCode.BAD_SIZE
    assert by_socket[0][2].ok and by_socket[0][2].first_producer_seq == 2
    assert by_socket[1][0].code == ResultCode.BAD_MESSAGE
    assert by_socket[1][1].ok and by_socket[1][1].first_producer_seq == 2
    assert recs["producer_seq"].tolist() == [1, 2, 2] and recs["seq"].tolist() == [1, 2, 3]
    assert errors == {int(ResultCode.BAD_SIZE): 1, int(ResultCode.BAD_MESSAGE): 1}


def test_drain_when_resent_after_stamping_then_duplicate_with_original_seqs(tmp_path, monkeypatch):
    drains = [[(0, [_frame(5, [1, 3, 9])]), (0, [_frame(5, [10, 11])])],
              [(0, [_frame(5, [10, 11])]), (0, [_frame(5, [1, 3, 9])])]]
    replies, recs, _ = _run(tmp_path, drains, "batch", monkeypatch)
    first, second = replies[0][1], replies[1][1]
    assert [(r.first_seq, r.last_seq, r.duplicate) for r in first] == [(1, 3, False), (4, 5, False)]
    assert [(r.first_seq, r.last_seq, r.duplicate) for r in second] == [(4, 5, True), (1, 3, True)]
    assert len(recs) == 5


@pytest.mark.parametrize("path", ["batch", "shipped"])
def test_drain_when_batch_or_one_frame_path_then_no_numba_compile_after_start(tmp_path, monkeypatch, path):
    from sequencer import acks, ingest, runs, stamp, stamp_one

    kernels = (acks._encode_acks_kernel, runs._runs_kernel, ingest._validate_drain_kernel, stamp._stamp_drain_kernel,
               stamp_one._validate_stamp_kernel)
    started = {}
    real_start = Sequencer.start

    def start(self):
        real_start(self)
        started.update({k: list(k.signatures) for k in kernels})

    monkeypatch.setattr(Sequencer, "start", start)
    # shipped: one-frame drains, each taking the one-frame path
    drains = SCENARIOS["more than 15 frames"] if path == "batch" else [[(0, [_frame(9, [i])])] for i in range(1, 41)]
    replies, recs, _ = _run(tmp_path, drains, path, monkeypatch)
    assert len(recs) == 40
    assert {k: list(k.signatures) for k in kernels} == started


@pytest.mark.parametrize("path", ["batch", "frame"])
def test_drain_when_journal_write_fails_then_every_frame_refused_nothing_published_and_input_stopped(
        tmp_path, monkeypatch, path):
    drains = [[(0, [_frame(5, [i])]) for i in range(1, 7)], [(0, [_frame(5, [7])]), (1, [b"junk"])]]
    replies, recs, (errors, *_rest, failed, published) = _run(tmp_path, drains, path, monkeypatch,
                                                              fail_journal=True)
    assert failed and published == 0 and len(recs) == 0
    first, later = replies[0][1], [r for _, batch in replies[1:] for r in batch]
    assert [(r.ok, r.code, r.first_producer_seq) for r in first] == [
        (False, ResultCode.JOURNAL_WRITE_FAILED, p) for p in range(1, 7)]
    assert sorted(r.code for r in later) == sorted([ResultCode.JOURNAL_WRITE_FAILED, ResultCode.BAD_SIZE])
    assert errors[int(ResultCode.JOURNAL_WRITE_FAILED)] == 1 + 6 + 1


def test_drain_when_journal_write_fails_on_one_frame_path_then_same_refusals_as_frame_path(tmp_path, monkeypatch):
    drains = [[(0, [_frame(5, [1, 2])])], [(0, [_frame(5, [3])])]]
    runs = {}
    for path in ("shipped", "frame"):
        (tmp_path / path).mkdir()
        runs[path] = _run(tmp_path / path, drains, path, monkeypatch, fail_journal=True)
    replies, recs, (errors, *_rest, failed, published) = runs["shipped"]
    assert failed and published == 0 and len(recs) == 0
    assert [(r.ok, r.code, r.first_producer_seq, r.last_producer_seq) for _, batch in replies for r in batch] == [
        (False, ResultCode.JOURNAL_WRITE_FAILED, 1, 2), (False, ResultCode.JOURNAL_WRITE_FAILED, 3, 3)]
    assert errors[int(ResultCode.JOURNAL_WRITE_FAILED)] == 1 + 1 + 1
    assert runs["shipped"][0] == runs["frame"][0]
    assert runs["shipped"][2] == runs["frame"][2]

"""A frame lost in a sequencer crash and resent after newer frames of the same producer were
stamped is stamped once (late), found again on resend, and still found after a restart."""

from __future__ import annotations

import numpy as np
import zmq
from support import running_sequencer

from sequencer.codes import ResultCode
from sequencer.messages import IngestReply, decode_ingest_replies
from sequencer.protocol import RECORD_DTYPE, FrameType, Kind, encode_frame

PRODUCER = 4242


def _frame(pseqs: list[int]) -> bytes:
    recs = np.zeros(len(pseqs), RECORD_DTYPE)
    recs["kind"] = Kind.PRICE
    recs["instrument"] = 1
    recs["price"] = np.arange(100, 100 + len(pseqs))
    recs["producer"] = PRODUCER
    recs["producer_seq"] = pseqs
    return encode_frame(recs, frame_type=FrameType.INGEST)


def _send(sock: zmq.Socket, pseqs: list[int]) -> IngestReply:
    sock.send(_frame(pseqs))
    assert sock.poll(10_000), "no ingest reply within 10 s"
    (reply,) = decode_ingest_replies(sock.recv())
    return reply


def test_ingest_when_lost_frame_resent_after_newer_ones_then_stamped_once_and_kept_across_restart(tmp_path):
    journal = tmp_path / "j"
    ctx = zmq.Context()
    try:
        with running_sequencer(tmp_path, journal=journal) as seq:
            sock = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(seq.ingest)
            assert (r := _send(sock, [1, 2, 3])).ok and (r.first_seq, r.last_seq) == (1, 3)
            # Frame 4..6 "was lost in the crash"; 7..8 reached the new sequencer first.
            assert (r := _send(sock, [7, 8])).ok and (r.first_seq, r.last_seq) == (4, 5)
            late = _send(sock, [4, 5, 6])
            assert late.ok and not late.duplicate and (late.first_seq, late.last_seq) == (6, 8)
            again = _send(sock, [4, 5, 6])
            assert again.ok and again.duplicate and (again.first_seq, again.last_seq) == (6, 8)
            partial = _send(sock, [6, 9])
            assert not partial.ok and partial.code == ResultCode.PARTIAL_DUPLICATE
            sock.close()
            seq.kill()
        with running_sequencer(tmp_path, journal=journal) as seq:
            sock = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(seq.ingest)
            after = _send(sock, [4, 5, 6])
            assert after.ok and after.duplicate and (after.first_seq, after.last_seq) == (6, 8)
            assert (r := _send(sock, [9])).ok and not r.duplicate and r.first_seq == 9
            sock.close()
    finally:
        ctx.destroy(linger=0)
    from sequencer.journal import JournalReader

    recs = JournalReader(journal).read_array()
    assert recs["seq"].tolist() == list(range(1, 10))
    assert sorted(recs["producer_seq"].tolist()) == list(range(1, 10))

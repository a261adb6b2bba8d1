"""The sequencer as a real process over ipc: stamp, publish, restart, dedup, replay, status."""

from __future__ import annotations

import time

import msgspec
import numpy as np
import pytest
import zmq

from sequencer.codes import ResultCode
from sequencer.hwm_file import HwmFileReader
from sequencer.journal import JournalReader
from sequencer.messages import ReplayRequest, decode_replay_done, encode
from sequencer.producer import Producer
from sequencer.protocol import RECORD_DTYPE, Kind, decode_frame, decode_heartbeat
from support import prices, recv_frames, running_sequencer

pytestmark = pytest.mark.slow


def subscriber(ctx: zmq.Context, endpoint: str, rcvhwm: int = 1000) -> zmq.Socket:
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVHWM, rcvhwm)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    time.sleep(0.3)  # PUB/SUB: let the subscription reach the publisher
    return sub


def replay_all(ctx: zmq.Context, endpoint: str, from_seq: int, to_seq: int = 0) -> tuple[np.ndarray, list[int]]:
    """Fetch from_seq..to_seq (0 = HWM) through the replay service; returns records, frame sizes."""
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    out, sizes = [], []
    nxt = from_seq
    try:
        for req_id in range(1, 1000):
            sock.send(encode(ReplayRequest(req_id=req_id, from_seq=nxt, to_seq=to_seq)))
            while True:
                assert sock.poll(10_000), "replay did not answer"
                parts = sock.recv_multipart()
                if parts[0] == b"D":
                    assert int.from_bytes(parts[1], "little") == req_id
                    _, recs = decode_frame(parts[2])
                    assert len(set(recs["epoch"].tolist())) == 1
                    out.append(recs)
                    sizes.append(len(recs))
                    continue
                done = decode_replay_done(parts[1])
                assert done.code == 0, done.error
                break
            nxt = done.last_seq + 1
            if done.complete:
                break
    finally:
        sock.close()
    return (np.concatenate(out) if out else np.zeros(0, RECORD_DTYPE)), sizes


def journal_records(path) -> np.ndarray:
    chunks = list(JournalReader(path).read(1))
    return np.concatenate(chunks) if chunks else np.zeros(0, RECORD_DTYPE)


def test_submit_when_frames_sent_then_subscriber_gets_them_stamped_in_order(tmp_path):
    ctx = zmq.Context.instance()
    with running_sequencer(tmp_path) as seq:
        sub = subscriber(ctx, seq.publish)
        hb = ctx.socket(zmq.SUB)
        hb.setsockopt(zmq.SUBSCRIBE, b"")
        hb.setsockopt(zmq.CONFLATE, 1)
        hb.connect(seq.hwm)
        prod = Producer(seq.ingest, "p-order")
        sizes = [1, 64, 3, 200, 1]
        sent = [prices(n, 100 * (i + 1)) for i, n in enumerate(sizes)]
        tokens = [prod.submit(r) for r in sent]
        replies = {r.first_producer_seq: r for r in prod.flush(10)}
        assert all(replies[t].ok for t in tokens)
        total = sum(sizes)
        got = np.concatenate(recv_frames(sub, total))
        assert got["seq"].tolist() == list(range(1, total + 1))
        assert np.array_equal(got["price"], np.concatenate(sent)["price"])
        assert set(got["producer"].tolist()) == {prod.producer_id}
        epoch = replies[tokens[0]].epoch
        assert set(got["epoch"].tolist()) == {epoch}
        first = 1
        for t, n in zip(tokens, sizes):
            assert (replies[t].first_seq, replies[t].last_seq) == (first, first + n - 1)
            first += n
        beat = None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (beat is None or beat[1] < total):
            if hb.poll(100):
                beat = decode_heartbeat(hb.recv())
        assert beat is not None and beat[:2] == (epoch, total)
        assert HwmFileReader(seq.hwm_file).read()[:2] == (epoch, total)
        prod.close()
        sub.close()
        hb.close()
        assert seq.stop() == 0
    assert "sequencer stopped" in seq.log_text() and "resume_seq=1" in seq.log_text()


def test_restart_when_killed_then_seqs_continue_without_gap_in_new_epoch(tmp_path):
    journal = tmp_path / "j"
    with running_sequencer(tmp_path, journal=journal) as seq:
        prod = Producer(seq.ingest, "p-crash")
        for i in range(20):
            prod.submit(prices(5, i * 10 + 1))
        replies = prod.flush(10)
        assert len(replies) == 20 and all(r.ok for r in replies)
        epoch1 = replies[0].epoch
        seq.kill()
        prod.close()
    with running_sequencer(tmp_path, journal=journal) as seq:
        st = seq.status()
        assert st.hwm == 100 and st.epoch > epoch1
        assert st.counts == {"price": 100}
        prod = Producer(seq.ingest, "p-crash")
        prod.submit(prices(7))
        (reply,) = prod.flush(10)
        assert (reply.first_seq, reply.last_seq, reply.epoch) == (101, 107, st.epoch)
        prod.close()
    recs = journal_records(journal)
    assert recs["seq"].tolist() == list(range(1, 108))
    assert set(recs["epoch"][:100].tolist()) == {epoch1} and set(recs["epoch"][100:].tolist()) == {st.epoch}


def test_resend_when_sequencer_restarted_then_original_seqs_returned_not_restamped(tmp_path):
    journal = tmp_path / "j"
    with running_sequencer(tmp_path, journal=journal) as seq:
        prod = Producer(seq.ingest, "p-dedup", first_producer_seq=1)
        prod.submit(prices(10))
        prod.submit(prices(1))
        first = prod.flush(10)
        assert [(r.first_seq, r.last_seq) for r in first] == [(1, 10), (11, 11)]
        other = Producer(seq.ingest, "someone-else")
        other.submit(prices(2))
        assert other.flush(10)[0].first_seq == 12
        prod.close()
        other.close()
        seq.kill()
    with running_sequencer(tmp_path, journal=journal) as seq:
        again = Producer(seq.ingest, "p-dedup", first_producer_seq=1)
        again.submit(prices(10))
        (dup,) = again.flush(10)
        assert dup.ok and dup.duplicate and (dup.first_seq, dup.last_seq, dup.epoch) == (1, 10, first[0].epoch)
        raw = prices(3)
        raw["producer_seq"] = [11, 12, 13]  # 11 was stamped, 12 and 13 were not
        again._last_pseq = 10
        again.submit(raw)
        (partial,) = again.flush(10)
        assert not partial.ok and partial.code == ResultCode.PARTIAL_DUPLICATE
        raw["producer_seq"] = [12, 13, 14]
        again._last_pseq = 11
        again.submit(raw)
        (fresh,) = again.flush(10)
        assert fresh.ok and not fresh.duplicate and (fresh.first_seq, fresh.last_seq) == (14, 16)
        st = seq.status()
        assert st.hwm == 16
        mine = [p for p in st.producers if p.producer == again.producer_id][0]
        assert mine.duplicates == 1 and mine.last_producer_seq == 14
        again.close()


GARBAGE = [
    ([b""], ResultCode.EMPTY_FRAME),
    ([b"SQRK"], ResultCode.BAD_SIZE),
    ([b"NOPE" + bytes(28 + 128)], ResultCode.BAD_MAGIC),
    ([b"SQRK\x07\x00\x01\x00" + bytes(24 + 128)], ResultCode.BAD_VERSION),
    ([b"a", b"b"], ResultCode.BAD_MESSAGE),
]


def _valid_ingest(kind: int = int(Kind.PRICE), pseq: int = 1, producer: int = 42) -> bytes:
    from sequencer.protocol import FrameType, encode_frame

    r = prices(1)
    r["kind"] = kind
    r["producer"] = producer
    r["producer_seq"] = pseq
    return encode_frame(r, frame_type=FrameType.INGEST)


def test_ingest_when_garbage_of_every_class_then_error_reply_counted_and_service_continues(tmp_path):
    from sequencer.messages import decode_ingest_reply

    ctx = zmq.Context.instance()
    good = _valid_ingest()
    cases = list(GARBAGE) + [
        ([good[:-1]], ResultCode.BAD_SIZE),
        ([good[:-1] + bytes([good[-1] ^ 0xFF])], ResultCode.BAD_CHECKSUM),
        ([good[:6] + b"\x02" + good[7:]], ResultCode.BAD_FRAME_TYPE),
        ([_valid_ingest(kind=99)], ResultCode.UNKNOWN_KIND),
    ]
    with running_sequencer(tmp_path) as seq:
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(seq.ingest)
        for parts, code in cases:
            sock.send_multipart(parts)
            assert sock.poll(5000)
            reply = decode_ingest_reply(sock.recv())
            assert not reply.ok and reply.code == code, (code, reply)
            assert reply.message
        sock.send(good)
        assert sock.poll(5000)
        ok = decode_ingest_reply(sock.recv())
        assert ok.ok and ok.first_seq == 1
        st = seq.status()
        assert st.hwm == 1 and st.counts == {"price": 1}
        want: dict[str, int] = {}
        for _, code in cases:
            want[code.name] = want.get(code.name, 0) + 1
        assert st.errors == want
        sock.close()
    assert journal_records(seq.journal)["seq"].tolist() == [1]


def test_ingest_when_fuzzed_raw_bytes_then_every_frame_answered_and_nothing_bad_journaled(tmp_path):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from sequencer.messages import decode_ingest_reply

    ctx = zmq.Context.instance()
    good = _valid_ingest(pseq=1)
    accepted = []
    with running_sequencer(tmp_path) as seq:
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(seq.ingest)

        @settings(max_examples=150, deadline=None, database=None)
        @given(st.one_of(
            st.binary(max_size=400),
            st.tuples(st.integers(0, len(good) - 1), st.integers(1, 255)).map(
                lambda t: good[:t[0]] + bytes([good[t[0]] ^ t[1]]) + good[t[0] + 1:]),
            st.integers(0, len(good)).map(lambda n: good[:n]),
        ))
        def fuzz(payload):
            sock.send(payload)
            assert sock.poll(5000), "no reply"
            reply = decode_ingest_reply(sock.recv())
            if reply.ok:
                accepted.append(reply)
            else:
                assert ResultCode(reply.code).name == reply.code_name

        fuzz()
        st_ = seq.status()
        assert st_.hwm == len({r.first_seq for r in accepted})
        sock.send(_valid_ingest(pseq=10**12))
        assert sock.poll(5000) and decode_ingest_reply(sock.recv()).ok
        sock.close()
    recs = journal_records(seq.journal)
    assert recs["seq"].tolist() == list(range(1, len(recs) + 1))


def test_ingest_when_many_frames_sent_at_once_then_each_answered_once_in_order_in_reply_arrays(tmp_path):
    from sequencer.messages import decode_ingest_replies

    ctx = zmq.Context.instance()
    # 300 frames sent back to back (the sequencer drains many at once): good ones, a bad
    # record, garbage, and a duplicate of an earlier frame, from two producers.
    sent = []  # (producer socket index, expected ok, first producer seq)
    with running_sequencer(tmp_path) as seq:
        socks = []
        for _ in range(2):
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.connect(seq.ingest)
            socks.append(s)
        time.sleep(0.2)
        pseq = [1, 1]
        for i in range(300):
            k = i % 2
            if i % 37 == 5:
                socks[k].send(b"garbage")
                sent.append((k, False, 0))
                continue
            kind = 99 if i % 41 == 7 else int(Kind.PRICE)
            socks[k].send(_valid_ingest(pseq=pseq[k], kind=kind, producer=42 + k))
            sent.append((k, kind != 99, pseq[k]))
            pseq[k] += 1
        socks[0].send(_valid_ingest(pseq=1, producer=42))  # a resend of producer 42's first frame
        sent.append((0, True, 1))
        got: list[list] = [[], []]
        for k in range(2):
            want = sum(1 for s_, _, _ in sent if s_ == k)
            messages = 0
            while len(got[k]) < want:
                assert socks[k].poll(5000), f"producer {k}: {len(got[k])} of {want} replies"
                got[k].extend(decode_ingest_replies(socks[k].recv()))
                messages += 1
            assert len(got[k]) == want and messages <= want
            assert not socks[k].poll(200), "more replies than frames"
        # The resend is answered after every frame sent before it. In a later drain than its
        # first copy it gets the original seqs back; in the same drain (all 301 frames queued
        # before the sequencer's first drain) it is refused because the first copy's ack stands.
        # Either way it is not stamped twice.
        dup = got[0].pop()
        sent.pop()
        if dup.ok:
            assert dup.duplicate and dup.first_seq == got[0][0].first_seq
        else:
            assert dup.code == ResultCode.PRODUCER_SEQ_NOT_INCREASING and "ack stands" in dup.message
        for k in range(2):
            mine = [(ok, p) for s_, ok, p in sent if s_ == k]
            assert [(r.ok, r.first_producer_seq) for r in got[k]] == mine
        seqs = sorted(r.first_seq for k in range(2) for r in got[k] if r.ok and not r.duplicate)
        assert seqs == list(range(1, len(seqs) + 1))
        for s in socks:
            s.close()
    assert journal_records(seq.journal)["seq"].tolist() == seqs


def test_replay_when_late_joiner_then_whole_range_in_bounded_single_epoch_chunks(tmp_path):
    ctx = zmq.Context.instance()
    journal = tmp_path / "j"
    with running_sequencer(tmp_path, journal=journal) as seq:
        prod = Producer(seq.ingest, "p-late")
        for _ in range(5):
            prod.submit(prices(1000))
        assert all(r.ok for r in prod.flush(10))
        prod.close()
    with running_sequencer(tmp_path, journal=journal) as seq:
        prod = Producer(seq.ingest, "p-late2")
        prod.submit(prices(3000))
        assert all(r.ok for r in prod.flush(10))
        recs, sizes = replay_all(ctx, seq.replay, 1)
        assert recs["seq"].tolist() == list(range(1, 8001))
        assert max(sizes) <= 4096
        tail, _ = replay_all(ctx, seq.replay, 7990, 7995)
        assert tail["seq"].tolist() == list(range(7990, 7996))
        prod.close()


def test_subscriber_when_too_slow_and_frames_dropped_then_recovers_gap_by_replay(tmp_path):
    ctx = zmq.Context.instance()
    total = 40_000
    with running_sequencer(tmp_path, max_batch_records=1) as seq:
        sub = subscriber(ctx, seq.publish, rcvhwm=1)
        prod = Producer(seq.ingest, "p-flood")
        one = prices(1)
        for _ in range(total):
            prod.submit(one)
        replies = prod.flush(60)
        assert len(replies) == total and all(r.ok for r in replies)
        applied, gaps = 0, 0
        deadline = time.monotonic() + 30
        while applied < total and time.monotonic() < deadline:
            if not sub.poll(200):
                break
            _, recs = decode_frame(sub.recv())
            first = int(recs["seq"][0])
            if first > applied + 1:
                gaps += 1
                fill, _ = replay_all(ctx, seq.replay, applied + 1, first - 1)
                assert fill["seq"].tolist() == list(range(applied + 1, first))
            if int(recs["seq"][-1]) > applied:
                applied = int(recs["seq"][-1])
        if applied < total:
            fill, _ = replay_all(ctx, seq.replay, applied + 1, total)
            applied = int(fill["seq"][-1])
            gaps += 1
        assert applied == total
        assert gaps >= 1, "the tiny receive queue was expected to drop frames"
        prod.close()
        sub.close()


def test_status_when_requests_arrive_then_reports_counts_consumers_and_rejects_bad_requests(tmp_path):
    from sequencer.messages import ConsumerReport

    ctx = zmq.Context.instance()
    with running_sequencer(tmp_path, durability="none") as seq:
        prod = Producer(seq.ingest, "p-status")
        halt = np.zeros(1, RECORD_DTYPE)
        halt["kind"] = Kind.HALT
        prod.submit(prices(3))
        prod.submit(halt)
        prod.flush(10)
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(seq.replay)
        sock.send(encode(ConsumerReport(name="oms", applied_seq=2, hwm=4, lag=2, epoch=1)))
        sock.send(b"\xc1 not msgpack")
        assert sock.poll(5000)
        parts = sock.recv_multipart()
        assert parts[0] == b"E" and decode_replay_done(parts[1]).code == ResultCode.BAD_MESSAGE
        sock.send(encode(ReplayRequest(req_id=5, from_seq=3, to_seq=99)))
        assert sock.poll(5000)
        done = decode_replay_done(sock.recv_multipart()[1])
        assert done.code == ResultCode.REPLAY_RANGE and done.req_id == 5 and not done.complete
        st = seq.status()
        assert (st.hwm, st.durability, st.counts) == (4, "none", {"price": 3, "halt": 1})
        assert st.uptime_s > 0 and st.endpoints["ingest"] == seq.ingest
        assert [(c.name, c.lag) for c in st.consumers] == [("oms", 2)] and st.consumers[0].age_s >= 0
        assert st.errors == {"BAD_MESSAGE": 1, "REPLAY_RANGE": 1}
        assert st.producers[0].producer == prod.producer_id and st.producers[0].records == 4
        sock.close()
        prod.close()


def test_kill_when_durability_always_then_every_acked_event_is_in_the_journal(tmp_path):
    journal = tmp_path / "j"
    with running_sequencer(tmp_path, journal=journal, durability="always") as seq:
        prod = Producer(seq.ingest, "p-always", first_producer_seq=1)
        acked = []
        for i in range(300):
            prod.submit(prices(2, i * 2 + 1))
            acked += [r for r in prod.poll(0) if r.ok]
            if i == 200:
                # At least one ack before the kill (on a loaded machine the loop can outrun them).
                acked += [r for r in prod.poll(5000) if r.ok]
                seq.kill()
        acked += [r for r in prod.poll(200) if r.ok]
        prod.close()
    recs = journal_records(journal)
    assert acked, "nothing was acknowledged before the kill"
    by_seq = {int(s): int(p) for s, p in zip(recs["seq"], recs["producer_seq"])}
    for r in acked:
        assert by_seq.get(r.first_seq) == r.first_producer_seq
        assert by_seq.get(r.last_seq) == r.last_producer_seq
    assert recs["seq"].tolist() == list(range(1, len(recs) + 1))


def test_status_when_ingest_flooded_then_answered_and_every_frame_acked(tmp_path):
    """The run loop drains ingest without polling while it is busy and blocks on the sockets'
    fds when idle: status requests sent into a flood are answered in order, and no frame is
    left unanswered."""
    from benchmarks._pipeline_peers import ingest_frames
    from sequencer.status import request_status

    ctx = zmq.Context()
    try:
        with running_sequencer(tmp_path, durability="none") as seq:
            dealer = ctx.socket(zmq.DEALER)
            dealer.setsockopt(zmq.SNDHWM, 0)
            dealer.setsockopt(zmq.LINGER, 0)
            dealer.connect(seq.ingest)
            frames = ingest_frames(7, 1, 20_000, 1)
            for f in frames:
                dealer.send(f)
            statuses = [request_status(seq.replay, 10.0, ctx) for _ in range(3)]
            acked = 0
            deadline = time.monotonic() + 60
            while acked < len(frames) and time.monotonic() < deadline and dealer.poll(10_000):
                acked += len(msgspec.msgpack.decode(dealer.recv()))
            assert acked == len(frames)
            hwms = [s.hwm for s in statuses]
            assert hwms == sorted(hwms) and hwms[-1] <= len(frames)
            assert seq.status().hwm == len(frames)
    finally:
        ctx.destroy(linger=0)

"""Faults inside an embedded Sequencer: journal write failure, clean shutdown, producer resend."""

from __future__ import annotations

import errno
import threading
import time

import numpy as np
import pytest
import zmq

from sequencer.codes import ResultCode
from sequencer.config import SequencerConfig
from sequencer.journal import JournalReader
from sequencer.messages import ReplayRequest, decode_replay_done, encode
from sequencer.producer import Producer, producer_id_for
from sequencer.protocol import RECORD_DTYPE, decode_frame
from sequencer.service import Sequencer
from support import prices, running_sequencer, sequencer_endpoints


@pytest.fixture
def embedded(tmp_path):
    cfg = SequencerConfig(**sequencer_endpoints(tmp_path), journal=str(tmp_path / "j"))
    seq = Sequencer(cfg)
    stop = threading.Event()
    seq.start()
    thread = threading.Thread(target=seq.run, args=(stop,), daemon=True)
    thread.start()
    yield seq
    stop.set()
    thread.join(10)
    assert not thread.is_alive()


def test_journal_when_write_fails_then_no_ack_no_publish_but_replay_and_status_served(embedded):
    seq = embedded
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(seq.config.publish)
    time.sleep(0.3)
    prod = Producer(seq.config.ingest, "p-fail", resend_timeout_s=30)
    prod.submit(prices(4))
    (ok,) = prod.flush(10)
    assert ok.ok and ok.last_seq == 4
    assert sub.poll(5000) and decode_frame(sub.recv())[0].count == 4

    def broken(*_args, **_kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    seq.journal.append = seq.journal.append_stamped = broken  # the next write fails as on a full disk
    prod.submit(prices(2))
    (failed,) = prod.flush(3)
    assert not failed.ok and failed.code == ResultCode.JOURNAL_WRITE_FAILED
    assert prod.pending == 1  # retryable: kept for a resend
    prod.submit(prices(1))
    later = [r for r in prod.flush(1) if r.first_producer_seq == prod.last_producer_seq]
    assert later and later[0].code == ResultCode.JOURNAL_WRITE_FAILED
    assert not sub.poll(300), "nothing may be published after the journal failed"

    status = seq.status([])
    assert status.journal_failed and status.hwm == 4 and status.errors["JOURNAL_WRITE_FAILED"] >= 2
    replay = ctx.socket(zmq.DEALER)
    replay.setsockopt(zmq.LINGER, 0)
    replay.connect(seq.config.replay)
    replay.send(encode(ReplayRequest(req_id=1, from_seq=1)))
    parts = []
    while replay.poll(5000):
        parts.append(replay.recv_multipart())
        if parts[-1][0] == b"E":
            break
    assert [p[0] for p in parts] == [b"D", b"E"]
    assert decode_frame(parts[0][2])[1]["seq"].tolist() == [1, 2, 3, 4]
    assert decode_replay_done(parts[1][1]).complete
    for s in (sub, replay):
        s.close()
    prod.close()


def test_run_when_stop_set_then_exits_zero_with_journal_synced_and_last_heartbeat(tmp_path):
    from sequencer.hwm_file import HwmFileReader
    from sequencer.protocol import decode_heartbeat

    cfg = SequencerConfig(**sequencer_endpoints(tmp_path), journal=str(tmp_path / "j"), durability="none")
    seq = Sequencer(cfg)
    seq.start()
    stop = threading.Event()
    result = []
    thread = threading.Thread(target=lambda: result.append(seq.run(stop)), daemon=True)
    thread.start()
    ctx = zmq.Context.instance()
    hb = ctx.socket(zmq.SUB)
    hb.setsockopt(zmq.SUBSCRIBE, b"")
    hb.setsockopt(zmq.LINGER, 0)
    hb.connect(cfg.hwm)
    prod = Producer(cfg.ingest, "p-stop")
    prod.submit(prices(3))
    assert prod.flush(10)[0].ok
    prod.close()
    assert hb.poll(5000)
    stop.set()
    thread.join(10)
    assert result == [0]
    beats = []
    while hb.poll(200):
        beats.append(decode_heartbeat(hb.recv()))
    hb.close()
    assert beats and beats[-1][:2] == (seq.epoch, 3)
    assert HwmFileReader(tmp_path / "j" / "hwm").read()[:2] == (seq.epoch, 3)
    recs = np.concatenate(list(JournalReader(tmp_path / "j").read(1)))
    assert recs["seq"].tolist() == [1, 2, 3]


def test_producer_when_sequencer_starts_late_then_resend_delivers_once(tmp_path):
    eps = sequencer_endpoints(tmp_path)
    prod = Producer(eps["ingest"], "p-early", first_producer_seq=1, resend_timeout_s=0.3)
    prod.submit(prices(5))  # nobody listens yet: queued in the DEALER, resent later
    with running_sequencer(tmp_path) as seq:
        replies = prod.flush(20)
        assert [r.ok for r in replies] == [True]
        assert (replies[0].first_seq, replies[0].last_seq) == (1, 5)
        time.sleep(0.5)
        prod.poll(200)
        st = seq.status()
        assert st.hwm == 5
    prod.close()
    recs = np.concatenate(list(JournalReader(seq.journal).read(1)))
    assert recs["producer_seq"].tolist() == [1, 2, 3, 4, 5]
    assert set(recs["producer"].tolist()) == {producer_id_for("p-early")}


def test_producer_when_input_is_wrong_then_refuses_before_sending(tmp_path):
    prod = Producer(sequencer_endpoints(tmp_path)["ingest"], "p-bad", first_producer_seq=10)
    with pytest.raises(TypeError):
        prod.submit(np.zeros(2, np.int64))
    with pytest.raises(ValueError):
        prod.submit(np.zeros(0, RECORD_DTYPE))
    r = prices(2)
    r["producer_seq"] = [5, 6]  # below the first producer seq
    with pytest.raises(ValueError):
        prod.submit(r)
    r["producer_seq"] = [0, 0]
    assert prod.submit(r) == 10 and prod.last_producer_seq == 11
    assert producer_id_for("p-bad") == prod.producer_id != 0
    prod.close()


def test_producer_when_sequencer_dies_with_frame_in_flight_then_resent_on_reconnect(tmp_path):
    import signal

    journal = tmp_path / "j"
    with running_sequencer(tmp_path, journal=journal) as seq:
        prod = Producer(seq.ingest, "p-reconnect", first_producer_seq=1, resend_timeout_s=600)
        prod.submit(prices(2))
        assert prod.flush(10)[0].ok
        seq.proc.send_signal(signal.SIGSTOP)  # frame 2 reaches its socket, is never processed
        prod.submit(prices(3))
        prod.poll(300)
        seq.kill()
    with running_sequencer(tmp_path, journal=journal):
        replies = prod.flush(20)  # far below resend_timeout_s: only the reconnect resends
        assert [(r.ok, r.first_seq, r.last_seq) for r in replies] == [(True, 3, 5)]
        assert prod.resends >= 1
    prod.close()

"""Producer.submit without a sequencer: what it fills in, what it refuses, the frame it sends."""

from __future__ import annotations

import numpy as np
import pytest
import zmq

from sequencer.producer import Producer
from sequencer.protocol import FrameType, decode_frame
from support import prices


@pytest.fixture
def producer(tmp_path):
    ctx = zmq.Context()
    prod = Producer(f"ipc://{tmp_path}/nowhere", "p-submit", first_producer_seq=10, context=ctx)
    try:
        yield prod
    finally:
        prod.close()
        ctx.destroy(linger=0)


def test_submit_when_ids_unset_then_frame_has_producer_and_next_seqs_and_caller_array_unchanged(producer):
    recs = prices(3, start=1)
    before = recs.tobytes()
    assert producer.submit(recs) == 10
    assert producer.submit(recs[1]) == 13  # one record (a numpy void) works too
    assert producer.submit(recs[::2]) == 14  # a strided view is copied in order
    assert recs.tobytes() == before
    frames = [p.frame for p in producer._pending.values()]
    header, got = decode_frame(frames[0])
    assert header.frame_type == FrameType.INGEST and header.count == 3
    assert got["producer"].tolist() == [producer.producer_id] * 3
    assert got["producer_seq"].tolist() == [10, 11, 12]
    assert got["price"].tolist() == [1, 2, 3]
    assert decode_frame(frames[2])[1]["price"].tolist() == [1, 3]
    assert producer.last_producer_seq == 15


def test_submit_when_some_seqs_given_then_gaps_filled_and_bad_input_refused(producer):
    recs = prices(3, start=1)
    recs["producer_seq"] = [0, 50, 0]
    producer.submit(recs)
    assert decode_frame(producer._pending[10].frame)[1]["producer_seq"].tolist() == [10, 50, 51]
    with pytest.raises(ValueError, match="strictly increase"):
        producer.submit(_with_seq(prices(1), 51))
    with pytest.raises(ValueError, match="another producer"):
        other = prices(1)
        other["producer"] = producer.producer_id + 1
        producer.submit(other)
    with pytest.raises(ValueError, match="at least one"):
        producer.submit(prices(0))
    with pytest.raises(TypeError):
        producer.submit(np.zeros(2, np.int64))


def _with_seq(recs: np.ndarray, pseq: int) -> np.ndarray:
    recs["producer_seq"] = pseq
    return recs

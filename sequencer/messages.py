"""Control messages on the ingest and replay sockets (msgpack via msgspec).

Wire shapes (multipart ZeroMQ messages; ``docs/protocol.md`` is the contract):

* ingest, producer DEALER -> sequencer ROUTER: ``[frame]`` (an INGEST frame);
  replies ``[msgpack array of IngestReply]``: one message per producer per drain of the
  ingest socket, answering that producer's frames of the drain in arrival order (always an
  array, often of one reply).
* replay, client DEALER -> sequencer ROUTER: ``[msgpack Request]`` where Request is one of
  :class:`ReplayRequest`, :class:`StatusRequest`, :class:`ConsumerReport`.
  Replies: ``[b"D", req_id (8 bytes LE), frame]`` per chunk of a replay, then
  ``[b"E", msgpack ReplayDone]``; ``[b"S", msgpack StatusReply]`` for status;
  a consumer report gets no reply.
* publish, sequencer PUB: ``[frame]`` (STAMPED frames); hwm, sequencer PUB: ``[heartbeat]``.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "IngestReply",
    "ReplayRequest",
    "StatusRequest",
    "ConsumerReport",
    "Request",
    "ReplayDone",
    "ProducerStatus",
    "ConsumerStatus",
    "StatusReply",
    "REPLAY_DATA",
    "REPLAY_DONE",
    "STATUS_REPLY",
    "encode",
    "decode_request",
    "decode_ingest_reply",
    "decode_ingest_replies",
    "decode_replay_done",
    "decode_status",
]

REPLAY_DATA = b"D"
REPLAY_DONE = b"E"
STATUS_REPLY = b"S"


class IngestReply(msgspec.Struct, array_like=True, frozen=True):
    """The sequencer's answer to one ingest frame.

    On success ``first_seq..last_seq`` are the seqs assigned to the frame's records
    (``duplicate`` is true when the frame had been stamped before and these are the
    original seqs). On failure ``code`` is a :class:`~sequencer.codes.ResultCode`,
    ``record_index`` the first bad record (-1 for the frame itself) and ``message`` says why.
    """

    ok: bool
    code: int
    code_name: str
    first_producer_seq: int
    last_producer_seq: int
    epoch: int = 0
    first_seq: int = 0
    last_seq: int = 0
    duplicate: bool = False
    record_index: int = -1
    message: str = ""


class ReplayRequest(msgspec.Struct, tag="replay", frozen=True, forbid_unknown_fields=True):
    """Ask for stamped records ``from_seq..to_seq`` (inclusive; ``to_seq`` 0 = up to the HWM).

    The server answers with at most ``max_records`` records (it may cap this further) in
    chunks, then a :class:`ReplayDone` saying where it stopped; ask again for the rest.
    """

    req_id: int
    from_seq: int
    to_seq: int = 0
    max_records: int = 65536


class StatusRequest(msgspec.Struct, tag="status", frozen=True, forbid_unknown_fields=True):
    """Ask for a :class:`StatusReply`."""


class ConsumerReport(msgspec.Struct, tag="consumer", frozen=True, forbid_unknown_fields=True):
    """A consumer telling the sequencer how current it is (shown by ``seqrisk status``)."""

    name: str
    applied_seq: int
    hwm: int
    lag: int
    epoch: int


Request = ReplayRequest | StatusRequest | ConsumerReport


class ReplayDone(msgspec.Struct, frozen=True):
    """End of one replay answer: records ``from_seq..last_seq`` were sent (``last_seq`` <
    ``from_seq`` when none were). ``complete`` is true when ``to_seq`` (or the HWM) was reached."""

    req_id: int
    from_seq: int
    last_seq: int
    hwm: int
    epoch: int
    complete: bool
    code: int = 0
    error: str = ""


class ProducerStatus(msgspec.Struct, frozen=True):
    """Per-producer ingest counters."""

    producer: int
    last_producer_seq: int
    frames: int
    records: int
    duplicates: int
    errors: int


class ConsumerStatus(msgspec.Struct, frozen=True):
    """The last report of one consumer and how old it is."""

    name: str
    applied_seq: int
    hwm: int
    lag: int
    epoch: int
    age_s: float


class StatusReply(msgspec.Struct, frozen=True):
    """What ``seqrisk status`` prints."""

    epoch: int
    hwm: int
    first_seq: int
    durability: str
    uptime_s: float
    counts: dict[str, int]
    producers: list[ProducerStatus]
    consumers: list[ConsumerStatus]
    errors: dict[str, int]
    journal: str
    endpoints: dict[str, str]
    journal_failed: bool = False


_encoder = msgspec.msgpack.Encoder()
_request_decoder = msgspec.msgpack.Decoder(Request)
_ingest_decoder = msgspec.msgpack.Decoder(list[IngestReply])
_done_decoder = msgspec.msgpack.Decoder(ReplayDone)
_status_decoder = msgspec.msgpack.Decoder(StatusReply)


def encode(msg: msgspec.Struct) -> bytes:
    """msgpack-encode any message of this module."""
    return _encoder.encode(msg)


def decode_request(buf: bytes) -> Request:
    """Decode a replay-socket request; raises ``msgspec.DecodeError``/``ValidationError``."""
    return _request_decoder.decode(buf)


def decode_ingest_replies(buf: bytes) -> list[IngestReply]:
    """Decode one ingest reply message: the replies to one or more frames, in arrival order."""
    return _ingest_decoder.decode(buf)


def decode_ingest_reply(buf: bytes) -> IngestReply:
    """Decode an ingest reply message that answers exactly one frame.

    Raises ``msgspec.ValidationError`` when it holds another number of replies.
    """
    replies = _ingest_decoder.decode(buf)
    if len(replies) != 1:
        raise msgspec.ValidationError(f"expected one ingest reply, got {len(replies)}")
    return replies[0]


def decode_replay_done(buf: bytes) -> ReplayDone:
    """Decode the end-of-replay message."""
    return _done_decoder.decode(buf)


def decode_status(buf: bytes) -> StatusReply:
    """Decode a status reply."""
    return _status_decoder.decode(buf)

"""The sequencer's ingest receive: one drain's messages taken from the socket and sorted.

:class:`IngestReceive` is the part of :class:`sequencer.service_ingest.IngestLoop` that takes a
drain's messages (per message only the two receives and the one-part check) and sorts them
into a :class:`_Drain`: the producer sockets' groups, the accepted frames' records gathered
after room for the stamped header (:func:`sequencer.ingest_headers.gather_frames`, one numba
call for a drain of small frames) and the replies to messages refused by the header checks.
"""

from __future__ import annotations

import numpy as np
import zmq

from sequencer.codes import ResultCode
from sequencer.ingest import check_ingest_frame, ingest_count
from sequencer.ingest_headers import gather_frames
from sequencer.messages import IngestReply
from sequencer.protocol import HEADER_SIZE, RECORD_DTYPE, RECORD_SIZE, FrameError
from sequencer.xxh3 import AVAILABLE as XXH3_IN_KERNELS

__all__ = ["IngestReceive", "error_reply", "GATHER_MIN_FRAMES", "GATHER_MAX_RECORDS"]

_NOBLOCK = int(zmq.NOBLOCK)
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
# The Cython getsockopt (about 0.8 us less per call than zmq.Socket.getsockopt).
_base_get = zmq.backend.Socket.get
# Drains of fewer messages are checked frame by frame (cheaper than the kernel's arrays).
GATHER_MIN_FRAMES = 4
# Drains whose frames hold more records than this on average are checked frame by frame
# (measured when the kernel still had a scalar XXH3 of its own: for a frame of 64 records,
# Python's xxh3 and a memcpy cost about 1 us against its 17 us; not measured again since it
# calls xxhash's own XXH3).
GATHER_MAX_RECORDS = 4


def error_reply(code: ResultCode, message: str, p0: int = 0, p1: int = 0, index: int = -1, epoch: int = 0) -> IngestReply:
    """A failed :class:`IngestReply`."""
    return IngestReply(False, int(code), code.name, p0, p1, epoch, 0, 0, False, index, message)


class _Drain:
    """One drain of the ingest socket: its messages, the accepted frames' records, the early replies."""

    __slots__ = ("idents", "groups", "buf", "starts", "starts_arr", "rejected")

    def __init__(self) -> None:
        self.idents: dict[bytes, int] = {}  # producer socket identity -> its group
        self.groups: list[int] = []  # per message, in arrival order: its identity's group
        # HEADER_SIZE bytes of room for the stamped header, then the records of the frames that
        # passed the header checks, in arrival order (the stamp, journal and publish use it as is).
        self.buf: bytearray | None = None
        self.starts: list[int] = [0]  # the accepted frames' record offsets in buf
        self.starts_arr: np.ndarray | None = None  # the same as an int64 array, when at hand
        self.rejected: dict[int, IngestReply] = {}  # message index -> reply, for the others


class IngestReceive:
    """Mixin: the ingest receive of the sequencer (state lives on the Sequencer)."""

    def _receive(self, one: bool = False) -> _Drain:
        """Take up to ``max_batch_records`` records worth of ingest messages without blocking
        (with ``one``, the first message only: the run loop asks the socket after the drain),
        then sort them (:meth:`_sort`)."""
        sock = self._ingest
        recv = sock.recv
        limit = self.config.max_batch_records
        idents: list[bytes] = []
        parts: list = []
        rejected: dict[int, IngestReply] = {}
        left = limit * RECORD_SIZE  # record bytes still wanted
        # Per message only what must be: the two receives and the part check; the header
        # checks run over the whole drain afterwards (one numba call for a large drain).
        for n in range(limit):  # every frame that counts holds a record at least
            try:
                ident = recv(_NOBLOCK)
            except zmq.Again:
                break
            idents.append(ident)
            # A ROUTER message is delivered whole: the parts after the identity are there.
            # copy=False: Frame.more is far cheaper than getsockopt(RCVMORE).
            part = recv(_NOBLOCK, copy=False)
            if part.more:
                rejected[n] = self._bad_message(sock, part)
                parts.append(b"")
            else:
                parts.append(part)
                left -= len(part) - HEADER_SIZE
                if left <= 0:
                    break
            if not n and (one or not _base_get(sock, _EVENTS) & _POLLIN):
                # Most drains at moderate rates hold one frame: asking the socket is about half
                # the cost of the zmq.Again exception that ends a drain otherwise.
                break
        return self._sort(idents, parts, rejected, limit * RECORD_SIZE - left)

    def _sort(self, idents: list[bytes], parts: list, rejected: dict[int, IngestReply], record_bytes: int) -> _Drain:
        """The drain's groups by producer socket, its accepted frames' records gathered into
        ``buf`` and the replies to the frames that failed the header checks (``record_bytes``:
        the size of the frames' records, as the drain counted it)."""
        d = _Drain()
        d.rejected = rejected
        m = len(idents)
        if not m:
            return d
        first = idents[0]
        if idents.count(first) == m:
            d.idents, d.groups = {first: 0}, [0] * m
        else:
            index: dict[bytes, int] = {}
            d.groups = [index.setdefault(i, len(index)) for i in idents]
            d.idents = index
        if self.journal_failed:
            for n, part in enumerate(parts):
                if n not in rejected:
                    rejected[n] = self._bad_frame(part.buffer)
        elif not XXH3_IN_KERNELS or m < GATHER_MIN_FRAMES or record_bytes > m * GATHER_MAX_RECORDS * RECORD_SIZE:
            self._sort_each(d, parts)
        else:
            # One numba call checks every header and checksum and gathers the records.
            ends = np.fromiter(map(len, parts), np.int64, m).cumsum()
            d.buf, counts, d.starts_arr = gather_frames(b"".join(parts), ends)
            d.starts = d.starts_arr.tolist()
            if len(d.starts) - 1 + len(rejected) < m:
                for n in np.flatnonzero(counts == 0).tolist():
                    if n not in rejected:
                        rejected[n] = self._bad_frame(parts[n].buffer)
        return d

    def _sort_each(self, d: _Drain, parts: list) -> None:
        """:meth:`_sort` frame by frame with ``ingest_count`` (a few frames, or large ones)."""
        bufs = []
        starts = d.starts
        nrec = 0
        for n, part in enumerate(parts):
            if n in d.rejected:
                continue
            buf = part.buffer
            count = ingest_count(buf)
            if not count:
                d.rejected[n] = self._bad_frame(buf)
                continue
            bufs.append(buf)
            nrec += count
            starts.append(nrec)
        if len(bufs) == 1:
            d.buf = bytearray(bufs[0])  # its ingest header is overwritten by the stamp
        elif bufs:
            # The first frame's ingest header is the room for the stamped header.
            d.buf = bytearray().join([bufs[0], *[b[HEADER_SIZE:] for b in bufs[1:]]])

    def _bad_message(self, sock: zmq.Socket, part: zmq.Frame) -> IngestReply:
        extra = 1
        while part.more:
            part = sock.recv(_NOBLOCK, copy=False)
            extra += 1
        return self._reject(ResultCode.BAD_MESSAGE, f"expected one frame part, got {extra}")

    def _bad_frame(self, buf: memoryview) -> IngestReply:
        """The reply to a frame that failed the header checks, or to any frame after a journal failure."""
        try:
            count = check_ingest_frame(buf)
        except FrameError as exc:
            return self._reject(exc.code, exc.message)
        recs = np.frombuffer(buf, RECORD_DTYPE, count=count, offset=HEADER_SIZE)
        self._count_error(ResultCode.JOURNAL_WRITE_FAILED)
        return error_reply(ResultCode.JOURNAL_WRITE_FAILED, "journal write failed earlier; not accepting input",
                           int(recs["producer_seq"][0]), int(recs["producer_seq"][-1]), -1, self.epoch)

    def _reject(self, code: ResultCode, message: str) -> IngestReply:
        self._count_error(code)
        return error_reply(code, message, epoch=self.epoch)

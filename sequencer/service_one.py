"""The sequencer's one-frame drain (most drains at moderate rates hold one frame).

:class:`OneFrameDrain` is the part of :class:`sequencer.service_ingest.IngestLoop` that handles
a drain of exactly one frame: validated and, when it is new, stamped in one numba call
(:func:`sequencer.stamp_one.validate_stamp_one`), journaled, published and acknowledged,
without the frame path's lists, dicts and arrays. A bad, duplicate or late frame goes on
through the frame path, untouched; the replies, journal and counters are the frame path's.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import msgspec
import zmq

from sequencer.stamp_one import frame_producer, validate_stamp_one

if TYPE_CHECKING:
    from sequencer.service_receive import _Drain

__all__ = ["OneFrameDrain"]

_SNDMORE = int(zmq.SNDMORE)
# The Cython send, as in service_ingest: half the cost per call of zmq.Socket.send.
_base_send = zmq.backend.Socket.send
_reply_encoder = msgspec.msgpack.Encoder()


class OneFrameDrain:
    """Mixin: the one-frame drain of the sequencer (state and the frame path live on the Sequencer)."""

    def _drain_one(self, d: _Drain) -> None:
        """A drain of one valid-looking frame (most drains at moderate rates): validated and, when
        new, stamped in one numba call, without the frame path's lists, dicts and arrays; a bad
        or old frame goes the frame path."""
        buf = d.buf  # its ingest header is overwritten by the stamp
        n = d.starts[1]
        producer = frame_producer(buf)
        last = self.dedup.last(producer)
        first, epoch, ts = self.next_seq, self.epoch, time.time_ns()
        info = self._one_info
        if not validate_stamp_one(buf, n, producer, last, first, ts, epoch, self._masks, self.stats.kind_counts,
                                  self._one_starts, info):
            self._send_replies(d, self._process_frames(buf, 1, d.starts, n, info.tolist()))
            return
        _bad, _code, _field, producer, p0, p1 = info.tolist()[0]
        if not self._journal_publish(buf, first, n, epoch, ts):
            reply = self._journal_failed_replies([(0, 0, 0, producer, p0, p1)], (0,), [None])[0]
        else:
            st = self._producer_stats(producer)
            st[0] += 1
            st[1] += n
            if p1 - p0 == n - 1:
                self.dedup.add_run(producer, p0, first, n, epoch)
            else:
                self._dedup_frame(buf, 0, n, producer, first, epoch)
            reply = (True, 0, "OK", p0, p1, epoch, first, first + n - 1, False, -1, "")
        for ident in d.idents:
            _base_send(self._ingest, ident, _SNDMORE)
            _base_send(self._ingest, _reply_encoder.encode((reply,)))

"""``ReplayClient``: the consumer's side of the replay service (a mixin of ``Subscriber``).

It owns the replay DEALER: it sends the replay requests the
:class:`~consumers.splice.Splicer` asks for (reconnecting after a timeout, as the lazy
pirate pattern does), hands the chunks and the end-of-replay answers back to the splicer,
and sends the periodic ``ConsumerReport`` shown in the sequencer's status.
"""

from __future__ import annotations

from typing import Any

import msgspec
import zmq

from consumers.frames import decode_stamped
from consumers.splice import ReplayWant, Splicer
from sequencer.log import get_logger
from sequencer.messages import REPLAY_DATA, REPLAY_DONE, ConsumerReport, ReplayRequest, decode_replay_done, encode
from sequencer.protocol import FrameError

__all__ = ["ReplayClient"]

_log = get_logger("subscriber")
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_NOBLOCK = int(zmq.NOBLOCK)


class ReplayClient:
    """Mixin: the replay DEALER of a :class:`~consumers.subscriber.Subscriber` (whose state it uses)."""

    _ctx: zmq.Context
    _dealer: zmq.Socket
    _splicer: Splicer
    _sockets_changed: bool
    replay_endpoint: str
    reports_sent: int
    name: str
    applied_seq: Any
    hwm: Any
    lag: Any
    epoch: Any

    def _new_dealer(self) -> zmq.Socket:
        s = self._ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(self.replay_endpoint)
        self._sockets_changed = True
        return s

    def _drain_replay(self, now: int, budget: int) -> int:
        dealer = self._dealer
        sp = self._splicer
        n = 0
        while n < budget and dealer.getsockopt(_EVENTS) & _POLLIN:
            parts = dealer.recv_multipart(_NOBLOCK, copy=False)
            n += 1
            tag = parts[0].bytes
            if tag == REPLAY_DATA and len(parts) == 3:
                try:
                    epoch, first, records = decode_stamped(parts[2].buffer)
                except FrameError as exc:
                    self._bad(f"replay chunk: {exc}")
                    continue
                sp.on_replay_data(int.from_bytes(parts[1].bytes, "little"), epoch, first, records, now)
            elif tag == REPLAY_DONE and len(parts) == 2:
                try:
                    d = decode_replay_done(parts[1].bytes)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    self._bad(f"replay done: {exc}")
                    continue
                if d.code:
                    _log.warning("replay %d..%d answered with code %d: %s", d.from_seq, d.last_seq, d.code, d.error)
                sp.on_replay_done(d.req_id, d.last_seq, d.hwm, d.epoch, d.complete, now, d.code, d.error)
            # Status replies and unknown tags are not for us: dropped.
        return n

    def _request(self, now: int) -> None:
        want = self._splicer.want_replay(now)
        if want is None:
            return
        if want.after_timeout:
            # Lazy pirate: a fresh socket drops queued requests and replies of the old one.
            _log.warning("replay answer timed out; reconnecting the replay socket (request %s)", want.reason)
            self._dealer.close(0)
            self._dealer = self._new_dealer()
        self._send_request(want)

    def _send_request(self, want: ReplayWant) -> None:
        req = ReplayRequest(want.req_id, want.from_seq, want.to_seq, want.max_records)
        try:
            self._dealer.send(encode(req), _NOBLOCK)
        except zmq.Again:
            pass  # no connection yet: the request times out and is sent again

    def _send_report(self) -> None:
        report = ConsumerReport(self.name, self.applied_seq, self.hwm, self.lag, self.epoch)
        try:
            self._dealer.send(encode(report), _NOBLOCK)
            self.reports_sent += 1
        except zmq.Again:
            pass

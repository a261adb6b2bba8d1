"""Stats the demo's processes push to the orchestrator (msgpack over a PUSH/PULL socket).

Each process sends its latest view a few times per second; the orchestrator keeps only the
newest message per process, so a lost or late message costs nothing.
"""

from __future__ import annotations

import time

import msgspec
import zmq

__all__ = [
    "PositionRow",
    "GateStats",
    "VenueStats",
    "ConsumerStats",
    "StatsMessage",
    "StatsPusher",
    "StatsPuller",
]


class PositionRow(msgspec.Struct, array_like=True, frozen=True):
    """One account/instrument position against its limit (instrument units)."""

    account: str
    instrument: str
    qty: float
    open_buy: float
    open_sell: float
    limit: float


class GateStats(msgspec.Struct, tag="gate", frozen=True):
    """The strategy process and its embedded gate."""

    ts_ns: int
    pid: int
    epoch: int
    applied_seq: int
    hwm: int
    lag: int
    hwm_age_ms: float
    recovering: bool
    checks: int
    approved: int
    refused: dict[str, int]
    last_refusal: str
    positions: list[PositionRow]
    ready: bool
    error: str = ""


class VenueStats(msgspec.Struct, tag="venue", frozen=True):
    """The simulated venue."""

    ts_ns: int
    pid: int
    applied_seq: int
    hwm: int
    lag: int
    orders: int
    acks: int
    fills: int
    cancels: int
    rejects: int
    prices: int
    resting: int
    last_prices: dict[str, str]
    ready: bool
    unacked_frames: int = 0


class ConsumerStats(msgspec.Struct, tag="consumer", frozen=True):
    """Any other consumer (the OMS process): how current it is."""

    ts_ns: int
    pid: int
    name: str
    epoch: int
    applied_seq: int
    hwm: int
    lag: int
    open_orders: int = 0
    anomalies: int = 0


StatsMessage = GateStats | VenueStats | ConsumerStats

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(StatsMessage)


class StatsPusher:
    """Child side: send a stats message at most every ``interval_s`` (never blocks)."""

    def __init__(self, endpoint: str | None, interval_s: float = 0.2, ctx: zmq.Context | None = None) -> None:
        self.interval_s = interval_s
        self._next = 0.0
        self._sock = None
        if endpoint:
            self._sock = (ctx or zmq.Context.instance()).socket(zmq.PUSH)
            self._sock.setsockopt(zmq.LINGER, 0)
            self._sock.setsockopt(zmq.SNDHWM, 16)
            self._sock.connect(endpoint)

    def due(self) -> bool:
        """True when the next message should be sent."""
        return self._sock is not None and time.monotonic() >= self._next

    def send(self, msg: msgspec.Struct) -> None:
        """Send now (dropped silently when the orchestrator is not reading)."""
        self._next = time.monotonic() + self.interval_s
        if self._sock is None:
            return
        try:
            self._sock.send(_encoder.encode(msg), zmq.NOBLOCK)
        except zmq.Again:
            pass

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None


class StatsPuller:
    """Orchestrator side: bind, drain pending messages without blocking."""

    def __init__(self, endpoint: str, ctx: zmq.Context | None = None) -> None:
        self._sock = (ctx or zmq.Context.instance()).socket(zmq.PULL)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind(endpoint)
        self.bad_messages = 0

    def drain(self, max_messages: int = 1000) -> list[StatsMessage]:
        """Every message pending now (at most ``max_messages``)."""
        out: list[StatsMessage] = []
        for _ in range(max_messages):
            try:
                buf = self._sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                out.append(_decoder.decode(buf))
            except (msgspec.DecodeError, msgspec.ValidationError):
                self.bad_messages += 1
        return out

    def wait(self, timeout_ms: int) -> bool:
        """Block up to ``timeout_ms`` for a message; True if one is pending."""
        return bool(self._sock.poll(timeout_ms))

    def close(self) -> None:
        self._sock.close(0)

"""Ask a running sequencer for its status over the replay socket, and print it."""

from __future__ import annotations

import msgspec
import zmq

from sequencer.messages import STATUS_REPLY, StatusReply, StatusRequest, decode_status, encode

__all__ = ["StatusTimeout", "request_status", "format_status"]


class StatusTimeout(RuntimeError):
    """No status answer within the timeout."""


def request_status(replay: str, timeout_s: float = 3.0, context: zmq.Context | None = None) -> StatusReply:
    """Send a :class:`StatusRequest` to ``replay`` and wait up to ``timeout_s`` for the reply."""
    ctx = context or zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(replay)
        sock.send(encode(StatusRequest()))
        deadline_ms = max(1, int(timeout_s * 1000))
        while sock.poll(deadline_ms, zmq.POLLIN):
            parts = sock.recv_multipart()
            if len(parts) == 2 and parts[0] == STATUS_REPLY:
                try:
                    return decode_status(parts[1])
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    raise StatusTimeout(f"undecodable status reply from {replay}: {exc}") from None
        raise StatusTimeout(f"no status answer from the sequencer at {replay} within {timeout_s:g} s")
    finally:
        sock.close(linger=0)


def format_status(status: StatusReply, as_json: bool = False) -> str:
    """The status as one JSON object line, or as aligned text."""
    if as_json:
        return msgspec.json.encode(status).decode() + "\n"
    lines = [
        f"epoch           {status.epoch}",
        f"hwm             {status.hwm}",
        f"first_seq       {status.first_seq}",
        f"durability      {status.durability}",
        f"uptime_s        {status.uptime_s:.1f}",
        f"journal         {status.journal}" + ("  ** JOURNAL WRITE FAILED **" if status.journal_failed else ""),
        "endpoints       " + " ".join(f"{k}={v}" for k, v in status.endpoints.items()),
        "counts          " + (" ".join(f"{k}={v}" for k, v in status.counts.items()) or "-"),
        "errors          " + (" ".join(f"{k}={v}" for k, v in status.errors.items()) or "-"),
        f"producers       {len(status.producers)}",
    ]
    for p in status.producers:
        lines.append(f"  {p.producer:>10}  last_producer_seq={p.last_producer_seq} frames={p.frames} "
                     f"records={p.records} duplicates={p.duplicates} errors={p.errors}")
    lines.append(f"consumers       {len(status.consumers)}")
    for c in status.consumers:
        lines.append(f"  {c.name}  applied_seq={c.applied_seq} hwm={c.hwm} lag={c.lag} epoch={c.epoch} age_s={c.age_s:.1f}")
    return "\n".join(lines) + "\n"

"""Time and duration parsing for the audit: ISO 8601 instants to ns, horizons like ``5s``.

Times are kept as integer nanoseconds since the Unix epoch (UTC), the unit of the records'
``ts_ns``. ``datetime`` stops at microseconds, so the fraction of a second is parsed here to
keep all nine digits.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

__all__ = ["TimeParseError", "parse_iso_ns", "parse_time_ns", "parse_duration_ns", "parse_horizons", "format_duration"]

_NS_PER_S = 1_000_000_000
_FRACTION = re.compile(r"^(?P<head>[^.,]*T?\d\d:\d\d:\d\d)[.,](?P<frac>\d+)(?P<tail>.*)$")
_DURATION = re.compile(r"^\s*(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>ns|us|ms|s|m|h)\s*$")
_UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": _NS_PER_S, "m": 60 * _NS_PER_S, "h": 3600 * _NS_PER_S}


class TimeParseError(ValueError):
    """A time or duration text that cannot be parsed; the message quotes it."""


def parse_iso_ns(text: str) -> int:
    """ISO 8601 instant -> ns since the epoch. No zone means UTC; ``Z`` and offsets are honoured.

    Up to nine fractional digits are kept exactly (``2024-01-02T03:04:05.123456789Z``).
    """
    raw = text.strip()
    if not raw:
        raise TimeParseError("empty time")
    frac_ns = 0
    m = _FRACTION.match(raw)
    if m:
        digits = m.group("frac")
        if len(digits) > 9:
            raise TimeParseError(f"{text!r}: more than 9 fractional digits")
        frac_ns = int(digits.ljust(9, "0"))
        raw = m.group("head") + m.group("tail")
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(raw)
    except ValueError:
        raise TimeParseError(f"{text!r} is not an ISO 8601 time (e.g. 2024-01-02T03:04:05.5Z)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    whole = dt - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (whole.days * 86400 + whole.seconds) * _NS_PER_S + frac_ns


def parse_time_ns(text: str) -> int:
    """An integer (ns since the epoch) or an ISO 8601 instant -> ns since the epoch."""
    raw = text.strip()
    if raw.lstrip("-").isdigit():
        return int(raw)
    return parse_iso_ns(raw)


def parse_duration_ns(text: str) -> int:
    """``500ms``, ``1s``, ``1.5s``, ``2m``, ``1h``, ``250us``, ``10ns`` -> ns (must be > 0)."""
    m = _DURATION.match(text)
    if not m:
        raise TimeParseError(f"{text!r} is not a duration (a number and one of ns, us, ms, s, m, h; e.g. 5s)")
    num, unit = m.group("num"), m.group("unit")
    whole, _, frac = num.partition(".")
    scale = _UNITS[unit]
    ns = int(whole) * scale + (int(frac) * scale) // (10 ** len(frac)) if frac else int(whole) * scale
    if ns <= 0:
        raise TimeParseError(f"{text!r}: a duration must be positive")
    return ns


def parse_horizons(text: str) -> list[tuple[str, int]]:
    """``"1s,5s,60s"`` -> ``[("1s", 10**9), ("5s", ...), ("60s", ...)]`` sorted by length.

    Labels are the texts as given; two horizons of the same length are an error.
    """
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise TimeParseError("no horizons given (e.g. 1s,5s,60s)")
    out = [(t, parse_duration_ns(t)) for t in items]
    seen: dict[int, str] = {}
    for label, ns in out:
        if ns in seen:
            raise TimeParseError(f"horizons {seen[ns]} and {label} are the same length")
        seen[ns] = label
    return sorted(out, key=lambda p: p[1])


def format_duration(ns: int) -> str:
    """Shortest exact label of a duration: ``1s``, ``1500ms``, ``2m``, ``250us``."""
    for unit in ("h", "m", "s", "ms", "us"):
        if ns % _UNITS[unit] == 0:
            return f"{ns // _UNITS[unit]}{unit}"
    return f"{ns}ns"

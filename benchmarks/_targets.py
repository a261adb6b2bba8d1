"""Ratios and machine-checkable targets.

A target is the text an issue states, for example ``">= 5M records/s"``, ``"p99 <= 150 us"``
or ``"< 1 s"``. When the text holds exactly one comparison whose unit can be converted to the
result's unit, :func:`target_met` answers True/False; otherwise (``"within 10% of idle"``,
two comparisons, unrelated units) it answers None: not machine-checkable, read the note.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

__all__ = ["Target", "parse_target", "target_met", "ratio", "unit_scale"]

_TIME = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3,
    "s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0,
}
# Nouns of rate units that count the same thing: one record is one event.
_NOUNS = {
    "records": "events", "record": "events", "rec": "events", "events": "events",
    "event": "events", "ev": "events",
    "msgs": "msgs", "msg": "msgs", "messages": "msgs", "message": "msgs",
    "frames": "frames", "frame": "frames",
    "checks": "checks", "check": "checks", "calls": "calls", "call": "calls",
    "B": "bytes", "bytes": "bytes",
}
_BYTE_PREFIX = {"kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 1024.0, "MiB": 1024.0**2, "GiB": 1024.0**3}
_SUFFIX = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}
_COMPARISON = re.compile(r"(>=|<=|≥|≤|>|<)\s*([0-9]+(?:\.[0-9]+)?)\s*([kKMG](?![a-zA-Z]))?\s*([^\s,;]*)")
_OPS = {"≥": ">=", "≤": "<="}


class Target(NamedTuple):
    """One parsed comparison: ``value <op> number`` in ``dimension`` (base units)."""

    op: str
    number: float
    dimension: str


def unit_scale(unit: str) -> tuple[str, float] | None:
    """``(dimension, factor to base units)`` of a unit, or None if it has none we know.

    Times convert to seconds; rates ``<noun>/s`` to ``<noun>/s`` with records and events
    being the same noun; bytes rates accept kB/MB/GB prefixes.
    """
    u = unit.strip()
    if not u:
        return None
    if u in _TIME:
        return ("s", _TIME[u])
    if u.endswith("/s"):
        noun = u[:-2].strip()
        factor = 1.0
        if noun in _BYTE_PREFIX:
            factor, noun = _BYTE_PREFIX[noun], "B"
        return (f"{_NOUNS.get(noun, noun)}/s", factor)
    return (_NOUNS.get(u, u), 1.0)


def parse_target(text: str | None) -> Target | None:
    """The single comparison in ``text``, or None when there is not exactly one."""
    if not text:
        return None
    found = _COMPARISON.findall(text)
    if len(found) != 1:
        return None
    op, num, suffix, unit = found[0]
    scale = unit_scale(unit)
    if scale is None:
        return None
    dimension, factor = scale
    return Target(_OPS.get(op, op), float(num) * _SUFFIX[suffix or ""] * factor, dimension)


def target_met(text: str | None, value: float | None, unit: str) -> bool | None:
    """Whether ``value`` (in ``unit``) meets the target text; None when not checkable."""
    target = parse_target(text)
    scale = unit_scale(unit)
    if target is None or scale is None or value is None or not math.isfinite(value):
        return None
    dimension, factor = scale
    if dimension != target.dimension:
        return None
    v = value * factor
    # Compare with a relative tolerance so "<= 35 us" holds for a value printed as 35.0 us.
    eps = 1e-9 * max(abs(v), abs(target.number))
    if target.op == ">=":
        return v >= target.number - eps
    if target.op == "<=":
        return v <= target.number + eps
    if target.op == ">":
        return v > target.number
    return v < target.number


def ratio(value: float | None, reference_value: float | None, higher_is_better: bool) -> float | None:
    """Speed relative to the reference: > 1 beats it, < 1 is that fraction of its speed.

    Higher-is-better (throughput): ``value / reference``. Lower-is-better (latency, time):
    ``reference / value``. None when either side is missing, zero, negative or not finite.
    """
    if value is None or reference_value is None:
        return None
    if not (math.isfinite(value) and math.isfinite(reference_value)):
        return None
    if value <= 0 or reference_value <= 0:
        return None
    return value / reference_value if higher_is_better else reference_value / value

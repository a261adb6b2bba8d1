"""Refusal reasons of the gate and their precedence.

``RefuseReason`` lives in :mod:`sequencer.codes` (its values travel in ``refused`` records);
it is re-exported here. Declaration order is precedence: when several reasons apply, the
first declared is reported, so the staleness reasons always win.
"""

from __future__ import annotations

from typing import Iterable

from sequencer.codes import RefuseReason, refuse_reason_name

__all__ = [
    "RefuseReason",
    "PRECEDENCE",
    "STALENESS_REASONS",
    "precedence",
    "first_reason",
    "refuse_reason_name",
    "truncate_detail",
]

PRECEDENCE: tuple[RefuseReason, ...] = tuple(RefuseReason)
_RANK = {r: n for n, r in enumerate(PRECEDENCE)}
STALENESS_REASONS = frozenset(
    {RefuseReason.STALE_SEQUENCE, RefuseReason.STALE_HWM, RefuseReason.RECOVERING, RefuseReason.STALE_PRICE}
)


def precedence(reason: RefuseReason) -> int:
    """Rank of ``reason``: 0 is reported first."""
    return _RANK[reason]


def first_reason(reasons: Iterable[RefuseReason]) -> RefuseReason | None:
    """The reason reported when all of ``reasons`` apply (``None`` for none)."""
    return min(reasons, key=_RANK.__getitem__, default=None)


def truncate_detail(detail: str, size: int = 40) -> bytes:
    """``detail`` as UTF-8 cut to at most ``size`` bytes on a character boundary."""
    raw = detail.encode("utf-8")
    if len(raw) <= size:
        return raw
    # Dropping the bytes of a split multi-byte character keeps the text valid UTF-8.
    return raw[:size].decode("utf-8", errors="ignore").encode("utf-8")

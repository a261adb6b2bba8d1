"""Result codes carried in records, replies and reports: one enum, one range per area.

Ranges (exchange-core style), so a code alone says which layer produced it:

* ``0``        OK
* ``100-199``  frame errors (ingest socket, journal, replay transport)
* ``200-299``  record validation errors at ingest
* ``300-399``  journal and sequencer faults
* ``400-499``  gate refusal reasons (:class:`RefuseReason`)
* ``500-599``  OMS / fold anomalies (:class:`Anomaly`)

The numeric values are part of the wire protocol (``docs/protocol.md``): never renumber.
"""

from __future__ import annotations

import enum

__all__ = ["ResultCode", "RefuseReason", "Anomaly", "LimitType", "refuse_reason_name"]


class ResultCode(enum.IntEnum):
    """Every code the sequencer can answer a producer or an operator with."""

    OK = 0

    EMPTY_FRAME = 100
    BAD_SIZE = 101
    BAD_MAGIC = 102
    BAD_VERSION = 103
    BAD_CHECKSUM = 104
    BAD_FRAME_TYPE = 105
    BAD_COUNT = 106
    BAD_FLAGS = 107
    BAD_MESSAGE = 108

    UNKNOWN_KIND = 200
    UNKNOWN_ACCOUNT = 201
    UNKNOWN_INSTRUMENT = 202
    UNKNOWN_VENUE = 203
    BAD_QTY = 204
    BAD_PRICE = 205
    BAD_SIDE = 206
    BAD_ORDER_ID = 207
    BAD_PRODUCER = 208
    PRODUCER_SEQ_NOT_INCREASING = 209
    BAD_SCOPE = 210
    BAD_TRADE_ID = 211
    BAD_TEXT = 212
    BAD_LIMIT = 213
    BAD_REASON_CODE = 214
    BAD_RECORD_FLAGS = 215
    PARTIAL_DUPLICATE = 216

    JOURNAL_WRITE_FAILED = 300
    JOURNAL_CORRUPT = 301
    SEQUENCER_HALTED = 302
    REPLAY_RANGE = 303


class RefuseReason(enum.IntEnum):
    """Why the gate refused an order; names are used verbatim in events, logs and reports.

    Declaration order is precedence: when several apply, the first listed is reported,
    so staleness reasons always come first.
    """

    STALE_SEQUENCE = 400
    STALE_HWM = 401
    RECOVERING = 402
    STALE_PRICE = 403
    INVALID_ORDER = 404
    INTERNAL_ERROR = 405
    MAX_ORDER_QTY = 406
    MAX_ORDER_NOTIONAL = 407
    MAX_POSITION = 408
    MAX_GROSS_EXPOSURE = 409
    MAX_OPEN_ORDERS = 410
    RATE_LIMIT = 411
    PRICE_COLLAR = 412
    RESTRICTED = 413
    DUPLICATE_ORDER_ID = 414
    HALTED = 415
    REDUCE_ONLY = 416


class Anomaly(enum.IntEnum):
    """Facts a fold records instead of crashing: each kept with its seq and order id."""

    UNKNOWN_ORDER_FILL = 500
    OVERFILL = 501
    FILL_AFTER_CANCEL = 502
    DUPLICATE_ACK = 503
    DUPLICATE_TRADE_ID = 504
    ACK_FOR_REFUSED = 505
    UNKNOWN_ORDER_EVENT = 506
    DUPLICATE_ORDER_ID = 507
    INVALID_TRANSITION = 508
    FILL_AFTER_REJECT = 509


class LimitType(enum.IntEnum):
    """What a sequenced ``limit`` event changes (its ``code`` field).

    Values travel scaled by 10**6 (``LIMIT_VALUE_SCALE``), so ``2.5`` BTC is ``2_500_000``.
    """

    MAX_ORDER_QTY = 1
    MAX_ORDER_NOTIONAL = 2
    MAX_POSITION = 3
    MAX_GROSS_EXPOSURE = 4
    MAX_OPEN_ORDERS = 5
    RATE_PER_SEC = 6
    RATE_PER_MIN = 7
    PRICE_COLLAR_BPS = 8
    RESTRICTED = 9
    MAX_LAG_EVENTS = 10
    MAX_HWM_AGE_MS = 11
    PRICE_TTL_MS = 12


def refuse_reason_name(code: int) -> str:
    """Name of a refusal code, or ``UNKNOWN(<code>)`` for a value this build does not know."""
    try:
        return RefuseReason(code).name
    except ValueError:
        return f"UNKNOWN({code})"

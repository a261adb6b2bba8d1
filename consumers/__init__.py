"""Consumers: subscribe to the ordered stream and fold it (shared machinery for every consumer).

``Subscriber`` keeps a fold current (late join, gap fill, HWM and lag); ``Fold``/``BookFold``
are the fold interface and the shared Book the OMS and the gate both fold.
"""

from consumers.book import ANOMALY_DTYPE, ORDER_DTYPE, TRADE_BLOCK_DTYPE, Book, BookError, order_leaves
from consumers.fold import BookFold, Fold
from consumers.hwm import HwmFile, HwmTracker
from consumers.snapshot import SnapshotError
from consumers.splice import ReplayWant, Splicer
from consumers.subscriber import Subscriber

__all__ = [
    "ANOMALY_DTYPE",
    "Book",
    "BookError",
    "BookFold",
    "Fold",
    "HwmFile",
    "HwmTracker",
    "ORDER_DTYPE",
    "ReplayWant",
    "SnapshotError",
    "Splicer",
    "Subscriber",
    "TRADE_BLOCK_DTYPE",
    "order_leaves",
]

"""Consumers: subscribe to the ordered stream and fold it (shared machinery for every consumer)."""

# Fold state and interface (book helper).
from consumers.book import ANOMALY_DTYPE, ORDER_DTYPE, TRADE_DTYPE, Book, BookError  # noqa: E402
from consumers.fold import BookFold, Fold  # noqa: E402
from consumers.snapshot import SnapshotError  # noqa: E402

# Subscribing and splicing (subscriber helper).
from consumers.hwm import HwmFile, HwmTracker  # noqa: E402
from consumers.splice import ReplayWant, Splicer  # noqa: E402
from consumers.subscriber import Subscriber  # noqa: E402

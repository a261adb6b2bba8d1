"""The demo's OMS consumer: ``oms.Oms`` behind a ``Subscriber``, reporting how current it is.

Equivalent to ``seqrisk oms`` plus a stats push to the orchestrator and a consumer report
to the sequencer every half second (what ``seqrisk status`` lists).

``python -m risk_gate.demo.oms_proc --publish EP --hwm EP --replay EP [--stats EP]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from risk_gate.demo._child import ConsumerReporter, StopFlag
from risk_gate.demo.stats import ConsumerStats, StatsPusher

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Fold the stream into an OMS until SIGTERM/SIGINT (or until the orchestrator is gone)."""
    p = argparse.ArgumentParser(prog="python -m risk_gate.demo.oms_proc", description=__doc__)
    for ep in ("publish", "hwm", "replay"):
        p.add_argument(f"--{ep}", required=True)
    p.add_argument("--hwm-file", default=None)
    p.add_argument("--config", default=None)
    p.add_argument("--stats", default=None)
    p.add_argument("--name", default="oms")
    p.add_argument("--summary-s", type=float, default=5.0, help="seconds between summary log lines")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--log-json", action="store_true")
    args = p.parse_args(argv)

    from consumers.subscriber import Subscriber
    from oms import Oms
    from sequencer.config import load_document, load_registry
    from sequencer.log import get_logger, setup_logging

    setup_logging(args.log_json, args.log_level)
    log = get_logger(args.name)
    stop = StopFlag()
    oms = Oms(load_registry(load_document(args.config)))
    sub = Subscriber(publish=args.publish, hwm=args.hwm, replay=args.replay, fold=oms, hwm_file=args.hwm_file, name=args.name)
    stats = StatsPusher(args.stats)
    reporter = ConsumerReporter(args.replay, args.name)
    next_summary = time.monotonic() + args.summary_s
    last_error = None
    try:
        while not stop.is_set():
            if not sub.poll(256):
                time.sleep(0.002)
            if sub.error and sub.error != last_error:
                last_error = sub.error
                log.error("subscriber: %s", sub.error, extra={"epoch": sub.epoch, "seq": sub.applied_seq})
            reporter.maybe_send(sub.applied_seq, sub.hwm, sub.epoch)
            now = time.monotonic()
            if stats.due() or now >= next_summary:
                open_orders = int(oms.book.open_orders.sum())
                anomalies = int(oms.book.n_anomalies)
                stats.send(ConsumerStats(
                    ts_ns=time.time_ns(), pid=os.getpid(), name=args.name, epoch=sub.epoch,
                    applied_seq=sub.applied_seq, hwm=sub.hwm, lag=sub.lag, open_orders=open_orders, anomalies=anomalies,
                ))
                if now >= next_summary:
                    next_summary = now + args.summary_s
                    log.info("applied %d lag %d open orders %d anomalies %d", sub.applied_seq, sub.lag, open_orders,
                             anomalies, extra={"epoch": sub.epoch, "seq": sub.applied_seq})
    finally:
        log.info("oms stopping", extra={"epoch": sub.epoch, "seq": sub.applied_seq})
        stats.close()
        reporter.close()
        sub.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

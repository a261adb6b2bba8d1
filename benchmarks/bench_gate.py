"""Gate ``check()`` latency: idle, with 10k open orders, with 512 pending events.

The ``check()`` series run the real thing on one host: a sequencer child process
(``python -m sequencer.service_cli sequencer``, 1 ms heartbeats, HWM file on) carrying one
reference price (and, for the 10k series, 10,000 open orders published to it), and gates in
this process that join it with a real ``consumers.Subscriber`` reading the HWM file, so every
``check()`` includes the subscriber's drain as deployed (a full poll after each heartbeat).
The publish series sends each decision to a Producer whose DEALER is connected to a ROUTER in
this process that never answers. The 512-pending series uses a local subscriber stand-in that
applies one queued 512-event frame on ``poll()``, so the frame is surely pending. Beside them,
in the same run: a minimal pure-Python 4-limit check (the floor,
``bench_ceilings.python_4limit_check``, timed right before each gate run:
``python_4limit_check_beside_gate_latency``), the publish step alone, and nautilus_trader's
RiskEngine when importable.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["run"]

PX = 5_000_000
T_IDLE = {"p50": "<= 1 us", "p99": "<= 5 us"}


class _LocalSub:
    """Subscriber stand-in: batches in ``pending`` are applied on ``poll``; HWM always current."""

    def __init__(self) -> None:
        self.fold: Any = None
        self.pending: list[np.ndarray] = []
        self.recovering = False
        self.error = None
        self.hwm_ts_ns = time.time_ns()
        self.hwm = 0

    @property
    def applied_seq(self) -> int:
        return self.fold.applied_seq

    def poll(self, max_frames: int = 64) -> int:
        if not self.pending:
            return 0
        n = 0
        while self.pending and n < max_frames:
            self.fold.apply(self.pending.pop(0))
            n += 1
        return n

    def close(self) -> None:
        pass


def _records(kind: int, n: int, first_seq: int, **fields: Any) -> np.ndarray:
    from sequencer.protocol import RECORD_DTYPE

    r = np.zeros(n, RECORD_DTYPE)
    r["kind"] = kind
    r["seq"] = np.arange(first_seq, first_seq + n)
    r["ts_ns"] = time.time_ns()
    for k, v in fields.items():
        r[k] = v
    return r


class _Stream:
    """A sequencer child process with its HWM file, fed through a Producer; gates join it."""

    def __init__(self, ctx: Any) -> None:
        import zmq

        from benchmarks._children import start_sequencer
        from sequencer.producer import Producer
        from sequencer.protocol import Kind

        self.sockdir = Path(tempfile.mkdtemp(prefix="sqbg-"))
        self.eps = {n: f"ipc://{self.sockdir}/{n}" for n in ("ingest", "publish", "hwm", "replay")}
        journal = ctx.tmpdir / f"gate-journal-{time.monotonic_ns()}"
        self.hwm_file = journal / "hwm"
        self.proc = start_sequencer(journal, self.eps, zmq.Context.instance())
        self.producer = Producer(self.eps["ingest"], name="bench-gate-stream")
        self.last = 0
        self.submit(_records(int(Kind.PRICE), 1, 0, instrument=1, price=PX))

    def submit(self, records: np.ndarray) -> None:
        """Publish ``records`` through the sequencer; returns once they are stamped."""
        self.producer.submit(records)
        replies = self.producer.flush(30.0)
        if not replies or not all(r.ok for r in replies):
            raise RuntimeError(f"the sequencer did not stamp the benchmark's records: {replies}")
        self.last = max(self.last, max(r.last_seq for r in replies))

    def add_open_orders(self, n: int) -> None:
        from sequencer.protocol import Kind

        self.submit(_records(int(Kind.NEW_ORDER), n, 0, account=1, instrument=1, venue=1, side=1, qty=1, price=PX,
                             order_id=np.arange(10**9, 10**9 + n)))

    def close(self) -> None:
        self.producer.close()
        self.proc.stop()
        shutil.rmtree(self.sockdir, ignore_errors=True)


def _config() -> Any:
    from risk_gate import GateConfig

    return GateConfig(
        max_lag_events=0, max_hwm_age_ms=60_000, price_ttl_ms=600_000, max_order_qty="10", max_order_notional="10000000",
        max_position="100000", max_gross_exposure="1e12", max_open_orders=10**7, rate_per_sec=1e9, rate_per_min=1e12,
        price_collar_bps=500,
    )


def _sink(ctx: Any) -> tuple[Any, Any]:
    """(Producer, ROUTER): decisions go to a ROUTER here that never answers."""
    import zmq

    from sequencer.producer import Producer

    ep = f"ipc://{ctx.tmpdir}/gate-sink-{time.monotonic_ns()}"
    sink = zmq.Context.instance().socket(zmq.ROUTER)
    sink.setsockopt(zmq.LINGER, 0)
    sink.bind(ep)
    return Producer(ep, name="bench-gate", resend_timeout_s=3600, max_pending=10**7), sink


def _joined(stream: _Stream, publish: bool, ctx: Any, kernel: bool = True):
    """(gate, sink): a gate with a real Subscriber (HWM file) once it is current with ``stream``."""
    from risk_gate import Gate

    producer, sink = _sink(ctx) if publish else (None, None)
    eps = stream.eps
    gate = Gate(eps["publish"], eps["hwm"], eps["replay"], limits=_config(), hwm_file=str(stream.hwm_file), producer=producer,
                publish_approvals=publish, publish_refusals=publish, kernel=kernel, subscriber_options={"report_interval_s": None})
    sub = gate.subscriber
    deadline = time.monotonic() + 30
    while not (gate.applied_seq == stream.last and sub.hwm >= stream.last and not sub.recovering):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the gate did not catch up with the sequencer: {sub.counters()}")
        gate.poll()
        time.sleep(0.0005)
    return gate, sink


def _gate(ctx: Any, publish: bool, open_orders: int = 0, kernel: bool = True):
    """(gate, stand-in subscriber, sink): a gate on a local subscriber stand-in."""
    from risk_gate import Gate
    from sequencer.protocol import Kind

    sub = _LocalSub()
    producer, sink = _sink(ctx) if publish else (None, None)
    gate = Gate(limits=_config(), subscriber=sub, producer=producer, publish_approvals=publish, publish_refusals=publish, kernel=kernel)
    sub.fold = gate.fold
    seq = 1
    gate.fold.apply(_records(int(Kind.PRICE), 1, seq, instrument=1, price=PX))
    seq += 1
    if open_orders:
        gate.fold.apply(_records(int(Kind.NEW_ORDER), open_orders, seq, account=1, instrument=1, venue=1, side=1, qty=1,
                                 price=PX, order_id=np.arange(10**9, 10**9 + open_orders)))
        seq += open_orders
    sub.hwm = seq - 1
    return gate, sub, sink


def _check_samples(gate: Any, n: int, first_oid: int, side: int = 1, decimal: bool = False) -> np.ndarray:
    from risk_gate import FixedOrder, Order

    if decimal:
        # Names and decimal strings: the conversion is memoized after the first of each shape.
        px = f"{PX / 100:.2f}"
        orders = [Order("acct-1", "BTC-USDT", "sim-1", "buy" if k % 2 else "sell", "0.0001", px, first_oid + k) for k in range(n)]
    else:
        orders = [FixedOrder(1, 1, 1, side if k % 2 else 3 - side, 1, PX, first_oid + k) for k in range(n)]
    check = gate.check
    out = np.empty(n, dtype=np.int64)
    clock = time.perf_counter_ns
    for k in range(n):
        o = orders[k]
        t0 = clock()
        check(o)
        out[k] = clock() - t0
    return out


def _publish_samples(gate: Any, n: int, first_oid: int) -> np.ndarray:
    """The publish step alone (what check() adds to the decision when publishing)."""
    from risk_gate import FixedOrder
    from sequencer.protocol import Kind

    publish = gate._publish_now
    new = int(Kind.NEW_ORDER)
    out = np.empty(n, dtype=np.int64)
    clock = time.perf_counter_ns
    for k in range(n):
        o = FixedOrder(1, 1, 1, 1, 1, PX, first_oid + k)
        t0 = clock()
        publish(new, o, 0, b"", 5, 5)
        out[k] = clock() - t0
    return out


def _pending_samples(gate: Any, sub: Any, n: int, first_oid: int) -> tuple[np.ndarray, np.ndarray]:
    """check() with 512 price events pending (one frame) vs applying the same frame alone."""
    from risk_gate import FixedOrder
    from sequencer.protocol import Kind

    checks = np.empty(n, dtype=np.int64)
    applies = np.empty(n, dtype=np.int64)
    clock = time.perf_counter_ns
    for k in range(n):
        seq = gate.fold.applied_seq + 1
        sub.pending.append(_records(int(Kind.PRICE), 512, seq, instrument=1, price=PX))
        sub.hwm = seq + 511
        o = FixedOrder(1, 1, 1, 1 + k % 2, 1, PX, first_oid + k)
        t0 = clock()
        gate.check(o)
        checks[k] = clock() - t0
        batch = _records(int(Kind.PRICE), 512, gate.fold.applied_seq + 1, instrument=1, price=PX)
        t0 = clock()
        gate.fold.apply(batch)
        applies[k] = clock() - t0
        sub.hwm = gate.fold.applied_seq
    return checks, applies


def _nautilus_rows(ctx: Any, n: int, repeats: int, floor_rows: dict[str, Any]) -> list[dict[str, Any]]:
    name = "nautilus_riskengine_pretrade_check_latency"
    try:
        import nautilus_trader  # noqa: F401
    except ImportError:
        return [ctx.skip(f"{name}_p50", "nautilus_trader is not importable in this interpreter (optional extra 'peers'); not measured", "us", higher_is_better=False)]
    from benchmarks._nautilus_peer import nautilus_version, pretrade_samples

    runs = [pretrade_samples(n) for _ in range(repeats)]
    note = f"nautilus_trader {nautilus_version()} RiskEngine._check_order + _check_orders_risk on one limit order (no venue account)"
    return ctx.latency_results(name, runs, references=floor_rows, note=note)


SLOW_PHASE = 1.25
"""A gate run is left out when the floor check beside it ran this much slower than its fastest run."""


def _normal_speed_runs(measured: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]):
    """``({series: gate runs kept}, floor runs kept, note)``.

    This VM flips between two speeds about 2x apart (the floor check measures ~0.7 or
    ~1.3-1.6 us p50 for minutes at a time, and everything with it). A gate run counts only
    when the floor check timed right before and right after it both ran within
    :data:`SLOW_PHASE` of the fastest floor run of this module, i.e. the machine was at its
    normal speed throughout; a series with fewer than 3 such runs keeps all of them. The note
    gives the counts and the all-runs median, so nothing is hidden.
    """
    p50 = {id(a): float(np.median(a)) for _name, before, _g, after in measured for a in (before, after)}
    fastest = min(p50.values())
    kept: dict[str, list[np.ndarray]] = {}
    everything: dict[str, list[np.ndarray]] = {}
    floors: list[np.ndarray] = []
    for name, before, samples, after in measured:
        everything.setdefault(name, []).append(samples)
        if max(p50[id(before)], p50[id(after)]) <= SLOW_PHASE * fastest:
            kept.setdefault(name, []).append(samples)
            floors.append(before)
    parts = []
    for name, runs in everything.items():
        short = name.removeprefix("gate_check_latency_")
        all_p50 = f"all runs p50 {np.median([np.median(r) for r in runs]) / 1e3:.3g} us"
        if len(kept.get(name, [])) < 3:
            parts.append(f"{short} {len(kept.get(name, []))}/{len(runs)} at normal speed, so all {len(runs)} used ({all_p50})")
            kept[name] = runs
        else:
            parts.append(f"{short} {len(kept[name])}/{len(runs)} runs kept ({all_p50})")
    if not floors:
        floors = [before for _n, before, _g, _a in measured]
    note = (f"runs at normal machine speed only (floor before and after within {SLOW_PHASE}x of its fastest run,"
            f" {fastest / 1e3:.3g} us p50): " + ", ".join(parts))
    return kept, floors, note


def run(ctx: Any) -> list[dict[str, Any]]:
    n = ctx.size(2_000, 50_000)
    repeats = 3 if ctx.quick else 5
    # More gate runs than the harness's 5: runs in the VM's slow phase are left out (_normal_speed_runs).
    series_repeats = 3 if ctx.quick else 9
    rows: list[dict[str, Any]] = [ctx.result("timer_overhead_perf_counter_ns_pair", ctx.timer_overhead_ns(), "ns", higher_is_better=False, note="included in every latency below")]
    from benchmarks import bench_ceilings as ceilings

    # The floor: the ceilings module's minimal pure-Python 4-limit check. Its run-wide row is
    # measured once (cached: at the start of a full run); this VM's speed drifts by up to 2x
    # over minutes, so the gate rows reference the same check timed right before each gate run
    # (python_4limit_check_beside_gate_latency), interleaved with them.
    rows += ceilings.python_4limit_check_latency(ctx)
    floor_check = ceilings.python_4limit_check()
    floor_args = (1, 1, 1, 10, 6_500_000)
    # (series, floor before, gate samples, floor after) per gate run.
    measured: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
    notes: dict[str, str] = {}
    oid = 1

    def floor_samples() -> np.ndarray:
        return ctx.latency_samples(floor_check, n, floor_args, warmup=min(500, n))

    def series(name: str, publish: bool, note: str, decimal: bool = False, kernel: bool = True) -> None:
        nonlocal oid
        notes[name] = note
        for _ in range(series_repeats):
            gate, sink = _joined(stream, publish, ctx, kernel)
            try:
                _check_samples(gate, min(500, n), oid, decimal=decimal)  # warm-up, excluded
                oid += 1000
                before = floor_samples()
                samples = _check_samples(gate, n, oid, decimal=decimal)
                oid += n
                measured.append((name, before, samples, floor_samples()))
            finally:
                gate.close()
                if sink is not None:
                    sink.close(0)

    real = "real Subscriber with the HWM file, sequencer child process on this host"
    stream = _Stream(ctx)
    try:
        series("gate_check_latency_idle_decision_only", False, f"all checks on, nothing pending, decision not published; {real}")
        series("gate_check_latency_idle_publish_each", True, "all checks on, nothing pending, new_order frame sent per check (DecisionFrame + Producer.submit_encoded)")
        series("gate_check_latency_idle_decimal_order", False, "as idle_decision_only with Order(names, decimal strings) instead of FixedOrder", decimal=True)
        series("gate_check_latency_idle_reference_path", False, "as idle_decision_only with Gate(kernel=False): every check in pure Python (check_order)", kernel=False)
        stream.add_open_orders(10_000)
        series("gate_check_latency_10k_open_orders", False, "as idle_decision_only with 10,000 open orders on the stream (in the Book)")
    finally:
        stream.close()
    kept, floor_runs, speed_note = _normal_speed_runs(measured)
    floor_all = ctx.latency_results("python_4limit_check_beside_gate_latency", floor_runs,
                                    note=f"the floor check, {n} timed calls right before each gate run kept below; {speed_note}")
    rows += floor_all
    floor_rows = {r["name"].rsplit("_", 1)[-1]: r for r in floor_all}
    for name, note in notes.items():
        rows.extend(ctx.latency_results(name, kept[name], references=floor_rows, targets=T_IDLE, note=f"{note}; {speed_note}"))
    pub_runs = []
    for _ in range(repeats):
        gate, _sub, sink = _gate(ctx, True, 0)
        _publish_samples(gate, min(500, n), oid)
        oid += 1000
        pub_runs.append(_publish_samples(gate, n, oid))
        oid += n
        gate.producer.close()
        sink.close(0)
    rows += ctx.latency_results("gate_publish_decision_latency", pub_runs, note="publishing alone: fill the preallocated frame + Producer.submit_encoded (zmq NOBLOCK send)")
    pend_n = ctx.size(50, 500)
    check_runs, apply_runs = [], []
    for _ in range(repeats):
        gate, sub, _ = _gate(ctx, False, 0)
        _pending_samples(gate, sub, 5, oid)
        oid += 100
        c, a = _pending_samples(gate, sub, pend_n, oid)
        oid += pend_n
        check_runs.append(c)
        apply_runs.append(a)
    rows += ctx.latency_results("gate_apply_512_events_latency", apply_runs, note="GateFold.apply of one 512-event frame alone")
    apply_ref = {r["name"].rsplit("_", 1)[-1]: r for r in rows if r["name"].startswith("gate_apply_512")}
    rows += ctx.latency_results("gate_check_latency_512_pending", check_runs, references=apply_ref, note="check() draining one 512-event frame first (reference: applying it alone)")
    rows += _nautilus_rows(ctx, n, repeats, floor_rows)
    return rows

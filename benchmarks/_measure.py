"""Measuring: repeated runs with warm-up excluded, per-call latency samples, percentiles.

Every number is a median over ``runs`` measured runs, reported with the min and max of the
same runs; ``warmup`` runs before them are executed and thrown away (JIT compilation, page
faults, socket connection set-up). Per-call latency samples time each call with a pair of
``time.perf_counter_ns()`` calls; :func:`timer_overhead_ns` measures what that pair costs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "Stats",
    "stats_of",
    "measure",
    "measure_rate",
    "latency_samples",
    "percentiles",
    "timer_overhead_ns",
    "PERCENTILES",
]

# Percentile keys reported for latency and the quantile each stands for.
PERCENTILES = {"p50": 50.0, "p99": 99.0, "p99.9": 99.9}


class Stats(NamedTuple):
    """The median of ``runs`` measured values with their min and max."""

    value: float
    min: float
    max: float
    runs: int
    warmup: int
    samples: tuple[float, ...]


def stats_of(values: Sequence[float], warmup: int = 0) -> Stats:
    """Median, min and max of already-measured values."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("no measured values")
    return Stats(statistics.median(vals), min(vals), max(vals), len(vals), warmup, tuple(vals))


def measure(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> Stats:
    """Run ``fn`` ``warmup`` times (discarded) then ``repeats`` times.

    If ``fn`` returns a number, that is the run's value (e.g. a rate it computed itself);
    if it returns None, the run's value is its wall time in seconds.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    values = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        got = fn()
        elapsed = time.perf_counter() - t0
        values.append(elapsed if got is None else float(got))
    return stats_of(values, warmup)


def measure_rate(fn: Callable[[], Any], items: int, repeats: int, warmup: int = 1) -> Stats:
    """Items per second of ``fn`` (which processes ``items`` items per call)."""
    if items <= 0:
        raise ValueError(f"items must be > 0, got {items}")

    def one() -> float:
        t0 = time.perf_counter()
        fn()
        return items / max(time.perf_counter() - t0, 1e-12)

    return measure(one, repeats, warmup)


def latency_samples(fn: Callable[..., Any], n: int, args: tuple = (), warmup: int = 0) -> np.ndarray:
    """``n`` per-call latencies of ``fn(*args)`` in ns (timer overhead included)."""
    for _ in range(warmup):
        fn(*args)
    out = np.empty(n, dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        fn(*args)
        out[i] = clock() - t0
    return out


def percentiles(samples_ns: np.ndarray | Sequence[int]) -> dict[str, float]:
    """p50/p99/p99.9, mean, min, max (ns) and n of latency samples."""
    a = np.asarray(samples_ns, dtype=np.float64)
    if a.size == 0:
        raise ValueError("no latency samples")
    out = {k: float(np.percentile(a, q)) for k, q in PERCENTILES.items()}
    out.update(mean=float(a.mean()), min=float(a.min()), max=float(a.max()), n=int(a.size))
    return out


def timer_overhead_ns(n: int = 200_000) -> float:
    """Median cost of one back-to-back ``perf_counter_ns()`` pair, measured the same way
    :func:`latency_samples` times a call (a loop storing into a numpy array)."""
    out = np.empty(n, dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        out[i] = clock() - t0
    return float(np.median(out))

"""The benchmark runner behind ``python -m benchmarks`` and ``seqrisk bench``.

It finds the area modules ``benchmarks/bench_<area>.py``, runs each one's ``run(ctx)`` in
turn with a fresh :class:`Context`, checks the rows they return, adds ratios and target
verdicts, and writes ``results.json`` and ``results.md``. A module that raises (or times
out) becomes an error row and the others still run.

Exit status: 0 when at least one result was measured; 1 when nothing was (no module found,
or every module failed or was skipped); 2 for a usage error (e.g. ``--only`` naming no
module). With ``--strict``, any module error also gives 1.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import _measure
from benchmarks._args import REPEATS_FULL, REPEATS_QUICK, TIMEOUT_FULL_S, TIMEOUT_QUICK_S, WARMUP, add_arguments
from benchmarks._measure import Stats
from benchmarks._report import (
    RATIO_DEFINITION,
    command_line,
    load_average,
    machine_facts,
    render_markdown,
    utc_now,
    write_outputs,
)
from benchmarks._results import ResultError, check_row, complete_rows, error_row

__all__ = [
    "Context",
    "Stats",
    "AREA_ORDER",
    "discover",
    "run_suite",
    "build_parser",
    "add_arguments",
    "main",
    "main_from_args",
]

# Areas run first-to-last in this order (ceilings first, as the other areas compare with
# them); any other ``bench_*.py`` found runs afterwards in name order.
AREA_ORDER = ("ceilings", "journal", "pipeline", "subscriber", "fold", "gate", "audit")
_PACKAGE_DIR = Path(__file__).resolve().parent


class ModuleTimeout(Exception):
    """An area module ran past its time limit."""


class Context:
    """What an area module's ``run(ctx)`` gets.

    ``quick`` (tiny sizes: a few seconds per module), ``tmpdir`` (a fresh directory removed
    after the module), ``repeats`` (measured runs per result), ``warmup`` (runs excluded
    before them), ``cache`` (shared by all modules of one run, e.g. for ceilings measured
    once), plus the measuring helpers below.
    """

    def __init__(self, *, quick: bool, tmpdir: Path, repeats: int, warmup: int = WARMUP,
                 cache: dict[str, Any] | None = None, module: str = "") -> None:
        self.quick = quick
        self.tmpdir = Path(tmpdir)
        self.repeats = repeats
        self.warmup = warmup
        self.cache: dict[str, Any] = {} if cache is None else cache
        self.module = module

    def size(self, quick: int, full: int) -> int:
        """``quick`` in a quick run, else ``full``."""
        return quick if self.quick else full

    def measure(self, fn: Callable[[], Any], repeats: int | None = None, warmup: int | None = None) -> Stats:
        """Median/min/max of ``fn``'s returned value (or its wall time when it returns None)."""
        return _measure.measure(fn, repeats or self.repeats, self.warmup if warmup is None else warmup)

    def measure_rate(self, fn: Callable[[], Any], items: int, repeats: int | None = None,
                     warmup: int | None = None) -> Stats:
        """Median/min/max items per second of ``fn`` processing ``items`` items per call."""
        return _measure.measure_rate(fn, items, repeats or self.repeats, self.warmup if warmup is None else warmup)

    def latency_samples(self, fn: Callable[..., Any], n: int, args: tuple = (), warmup: int = 0) -> np.ndarray:
        """``n`` per-call latencies of ``fn(*args)`` in ns (timer overhead included)."""
        return _measure.latency_samples(fn, n, args, warmup)

    def percentiles(self, samples_ns: np.ndarray | Sequence[int]) -> dict[str, float]:
        """p50/p99/p99.9 (and mean, min, max, n) of ns samples."""
        return _measure.percentiles(samples_ns)

    def timer_overhead_ns(self) -> float:
        """Median cost of a ``perf_counter_ns()`` pair on this machine (measured once per run)."""
        if "timer_overhead_ns" not in self.cache:
            self.cache["timer_overhead_ns"] = _measure.timer_overhead_ns(20_000 if self.quick else 200_000)
        return self.cache["timer_overhead_ns"]

    def result(self, name: str, stats: Stats | float, unit: str, *, higher_is_better: bool,
               reference: dict[str, Any] | str | None = None, reference_value: float | None = None,
               target: str | None = None, note: str = "") -> dict[str, Any]:
        """A result row. ``reference`` may be a row from this run (its name and value are
        copied) or a name (the harness fills the value from the row of that name)."""
        if isinstance(reference, dict):
            reference_value = reference.get("value") if reference_value is None else reference_value
            reference = reference.get("name")
        if isinstance(stats, Stats):
            vals = {"value": stats.value, "min": stats.min, "max": stats.max, "runs": stats.runs,
                    "warmup": stats.warmup}
        else:
            vals = {"value": float(stats), "min": None, "max": None, "runs": 1, "warmup": None}
        return {"name": name, "unit": unit, "higher_is_better": higher_is_better,
                "reference": reference, "reference_value": reference_value, "target": target,
                "note": note, **vals}

    def skip(self, name: str, reason: str, unit: str = "", *, higher_is_better: bool = True,
             target: str | None = None) -> dict[str, Any]:
        """A row that measured nothing and says why (e.g. an optional peer not installed)."""
        return {"name": name, "value": None, "unit": unit, "higher_is_better": higher_is_better,
                "target": target, "note": reason}

    def latency_results(self, name: str, runs: Sequence[np.ndarray], *, unit: str = "us",
                        references: dict[str, dict[str, Any]] | None = None,
                        targets: dict[str, str] | None = None, note: str = "") -> list[dict[str, Any]]:
        """One row per percentile (``<name>_p50``, ``_p99``, ``_p99.9``) from per-run ns samples.

        Each percentile is computed per run; the row's value is the median over runs with
        their min and max. ``references``/``targets`` are keyed by percentile ("p50", ...).
        """
        if not runs:
            raise ValueError("no latency runs")
        scale = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}[unit]
        per_run = [self.percentiles(r) for r in runs]
        n = min(p["n"] for p in per_run)
        tail = f"{n} samples per run; timer overhead {self.timer_overhead_ns():.0f} ns included"
        rows = []
        for key in _measure.PERCENTILES:
            st = _measure.stats_of([p[key] / scale for p in per_run])
            st = st._replace(warmup=self.warmup)
            ref = (references or {}).get(key)
            rows.append(self.result(
                f"{name}_{key}", st, unit, higher_is_better=False, reference=ref,
                target=(targets or {}).get(key), note=f"{note}; {tail}" if note else tail,
            ))
        return rows


def discover() -> list[str]:
    """Area names of every ``benchmarks/bench_<area>.py``, in :data:`AREA_ORDER` first."""
    found = sorted(p.stem[len("bench_"):] for p in _PACKAGE_DIR.glob("bench_*.py"))
    rank = {name: i for i, name in enumerate(AREA_ORDER)}
    return sorted(found, key=lambda n: (rank.get(n, len(rank)), n))


@contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`ModuleTimeout` in the main thread after ``seconds`` (POSIX only)."""
    usable = seconds and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def _expire(signum: int, frame: object) -> None:
        raise ModuleTimeout(f"timed out after {seconds:.0f} s")

    old = signal.signal(signal.SIGALRM, _expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _run_module(area: str, *, quick: bool, repeats: int, cache: dict[str, Any], tmp_base: Path | None,
                timeout: float | None, log: Callable[[str], None]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Import and run one area module; never raises for the module's own failures."""
    modname = f"benchmarks.bench_{area}"
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    status = "ok"
    tmp = Path(tempfile.mkdtemp(prefix=f"seqrisk-bench-{area}-", dir=tmp_base))
    try:
        with _time_limit(timeout):
            module = importlib.import_module(modname)
            ctx = Context(quick=quick, tmpdir=tmp, repeats=repeats, cache=cache, module=area)
            raw = module.run(ctx)
        if not isinstance(raw, list):
            raise ResultError(f"run(ctx) must return a list of dicts, got {type(raw).__name__}")
        for i, row in enumerate(raw):
            try:
                rows.append(check_row(row, area))
            except ResultError as exc:
                rows.append(error_row(area, f"{area}[{i}]", str(exc)))
                status = "partial"
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - isolate one module's failure
        log(f"benchmark module {area} failed:\n{traceback.format_exc()}")
        rows.append(error_row(area, f"{area} (module)", f"{type(exc).__name__}: {exc}"))
        status = "error"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        gc.collect()
    seconds = time.perf_counter() - t0
    measured = sum(r["status"] == "ok" for r in rows)
    if status == "ok" and measured == 0:
        status = "empty"
    return rows, {"name": area, "status": status, "seconds": round(seconds, 3), "results": measured}


def _merge(rows: list[dict[str, Any]], new: list[dict[str, Any]]) -> None:
    """Append ``new`` rows; a row repeating an earlier one (same name and value: a cached
    ceiling an area module returned again) is dropped, a clash of names is flagged."""
    seen = {r["name"]: r for r in rows if r["status"] != "error"}
    for r in new:
        old = seen.get(r["name"])
        if old is not None and r["status"] != "error":
            if old["value"] == r["value"] and old["unit"] == r["unit"]:
                continue
            r["note"] = f"{r['note']}; DUPLICATE NAME (also from {old['module']})".lstrip("; ")
        rows.append(r)
        seen.setdefault(r["name"], r)


def run_suite(*, quick: bool = False, only: Sequence[str] | None = None, repeats: int | None = None,
              tmp_base: Path | None = None, timeout: float | None = None,
              areas: Sequence[str] | None = None,
              log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
              progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run the selected area modules and return the results document.

    ``progress(doc)`` is called after each module with the document so far (``complete``
    false), so that an interrupted run keeps what it measured.
    """
    available = list(areas) if areas is not None else discover()
    if only:
        wanted = [o.removeprefix("bench_") for o in only]
        unknown = [w for w in wanted if w not in available]
        if unknown:
            raise ValueError(f"no benchmark module named {', '.join(unknown)} (have: {', '.join(available)})")
        available = [a for a in available if a in wanted]
    reps = repeats or (REPEATS_QUICK if quick else REPEATS_FULL)
    limit = timeout if timeout is not None else (TIMEOUT_QUICK_S if quick else TIMEOUT_FULL_S)
    cache: dict[str, Any] = {}
    doc: dict[str, Any] = {
        "date": utc_now(), "quick": quick, "repeats": reps, "warmup": WARMUP,
        "command": command_line(), "machine": machine_facts(),
        "ratio_definition": RATIO_DEFINITION,
    }
    doc["timer_overhead_ns"] = Context(quick=quick, tmpdir=Path("."), repeats=reps, cache=cache).timer_overhead_ns()
    rows: list[dict[str, Any]] = []
    modules = []
    for area in available:
        log(f"benchmarks: running {area} ...")
        got, info = _run_module(area, quick=quick, repeats=reps, cache=cache, tmp_base=tmp_base,
                                timeout=limit, log=log)
        log(f"benchmarks: {area} {info['status']} in {info['seconds']:.1f} s, {info['results']} result(s)")
        _merge(rows, got)
        modules.append(info)
        if progress is not None:
            progress({**doc, "complete": False, "modules": list(modules), "results": complete_rows(list(rows))})
    doc["machine"]["load_average_at_end"] = load_average()
    doc["complete"] = True
    doc["modules"] = modules
    doc["results"] = complete_rows(rows)
    return doc


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m benchmarks``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure every seqrisk speed target beside a ceiling measured in the same run.",
    )
    add_arguments(parser)
    return parser


def main_from_args(args: argparse.Namespace) -> int:
    """Run with parsed arguments; returns the exit status (see the module docstring)."""
    if args.list:
        print("\n".join(discover()))
        return 0
    if args.repeats is not None and args.repeats < 1:
        print("error: --repeats must be >= 1", file=sys.stderr)
        return 2
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: cannot create --out {args.out}: {exc}", file=sys.stderr)
        return 2
    try:
        doc = run_suite(quick=args.quick, only=args.only, repeats=args.repeats, tmp_base=args.tmpdir,
                        timeout=args.timeout, progress=lambda d: write_outputs(d, args.out))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: {args.out} holds the modules that finished", file=sys.stderr)
        return 130
    jpath, mpath = write_outputs(doc, args.out)
    print(render_markdown(doc, table_only=True))
    print(f"wrote {jpath} and {mpath}")
    measured = sum(r["status"] == "ok" for r in doc["results"])
    errors = sum(r["status"] == "error" for r in doc["results"])
    if measured == 0:
        print("error: no benchmark result was measured", file=sys.stderr)
        return 1
    if args.strict and errors:
        print(f"error: {errors} benchmark error(s) (--strict)", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks``."""
    return main_from_args(build_parser().parse_args(argv))

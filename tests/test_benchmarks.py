"""The benchmark harness: result schema, ratios, targets, outputs, isolation, ceilings smoke."""

from __future__ import annotations

import json
import math
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks import bench_ceilings as ceilings
from benchmarks import harness
from benchmarks._measure import measure, percentiles, stats_of
from benchmarks._report import fmt_num, render_markdown
from benchmarks._results import ResultError, check_row, complete_rows
from benchmarks._targets import parse_target, ratio, target_met
from benchmarks.harness import Context, run_suite


def _row(**kw):
    row = {"name": "x_throughput", "value": 10.0, "unit": "records/s", "higher_is_better": True}
    row.update(kw)
    return row


def _fake_area(monkeypatch, area, run):
    mod = types.ModuleType(f"benchmarks.bench_{area}")
    mod.run = run
    monkeypatch.setitem(sys.modules, f"benchmarks.bench_{area}", mod)


def _quiet(_msg):
    pass


# --- targets and ratios -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "unit", "met"),
    [
        (">= 5M records/s", 6e6, "records/s", True),
        (">= 5M records/s", 4.9e6, "events/s", False),
        (">= 250k events/s", 250_000, "events/s", True),
        ("p50 <= 35 us", 35.0, "us", True),
        ("p50 <= 35 us", 36_000, "ns", False),
        ("p99 <= 150 us", 0.1, "ms", True),
        ("< 1 s", 999, "ms", True),
        ("< 1 s", 1.0, "s", False),
        ("< 60 s", 59.0, "s", True),
        ("median <= 1 us", 0.8, "us", True),
    ],
)
def test_target_met_when_target_is_checkable_then_compared_in_value_unit(text, value, unit, met):
    assert target_met(text, value, unit) is met


@pytest.mark.parametrize(
    ("text", "unit"),
    [
        ("within 10% of idle", "us"),
        ("p50 <= 35 us, p99 <= 150 us", "us"),
        (">= 20M events/s", "us"),
        ("under a second", "s"),
        (None, "s"),
        ("", "s"),
    ],
)
def test_target_met_when_not_machine_checkable_then_none(text, unit):
    assert target_met(text, 1.0, unit) is None


@given(
    threshold=st.integers(1, 999),
    suffix=st.sampled_from(["", "k", "M"]),
    value=st.floats(0.0, 2e9, allow_nan=False),
)
@settings(max_examples=200)
def test_target_met_when_rate_threshold_then_same_as_direct_comparison(threshold, suffix, value):
    number = threshold * {"": 1, "k": 1e3, "M": 1e6}[suffix]
    got = target_met(f">= {threshold}{suffix} events/s", value, "records/s")
    assert got is (value >= number * (1 - 1e-9))
    assert parse_target(f"<= {threshold} us").number == pytest.approx(threshold * 1e-6)


def test_ratio_when_higher_or_lower_is_better_then_above_one_means_faster_than_reference():
    assert ratio(8.0, 4.0, True) == 2.0
    assert ratio(2.0, 4.0, True) == 0.5
    assert ratio(10.0, 5.0, False) == 0.5  # latency twice the reference: half as fast
    assert ratio(5.0, 10.0, False) == 2.0
    for bad in (None, 0.0, -1.0, math.nan, math.inf):
        assert ratio(bad, 1.0, True) is None
        assert ratio(1.0, bad, False) is None


# --- result rows --------------------------------------------------------------------------


def test_check_row_when_valid_then_defaults_filled_and_status_ok():
    out = check_row(_row(min=np.float64(9.0), max=11, runs=5, extra_key=1), "fold")
    assert out["status"] == "ok" and out["module"] == "fold"
    assert out["min"] == 9.0 and isinstance(out["min"], float)
    assert out["reference"] is None and out["target"] is None and out["note"] == ""
    assert out["extra"] == {"extra_key": 1}


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"name": "a", "value": 1.0, "unit": "s"}, "lacks higher_is_better"),
        (_row(value="fast"), "'value' must be a number"),
        (_row(value=math.inf), "must be finite"),
        (_row(value=None), "no value and no note"),
        (_row(higher_is_better=1), "must be a bool"),
        (_row(reference_value=3.0), "no reference name"),
        (_row(name=""), "non-empty string"),
        ("not a dict", "must be a dict"),
    ],
)
def test_check_row_when_schema_broken_then_error_names_the_problem(row, message):
    with pytest.raises(ResultError, match=message):
        check_row(row, "area")


def test_check_row_when_value_none_with_note_then_skipped(tmp_path):
    out = check_row(_row(value=None, note="nautilus_trader not installed"), "gate")
    assert out["status"] == "skipped"
    ctx = Context(quick=True, tmpdir=tmp_path, repeats=1)
    assert check_row(ctx.skip("peer_check_latency_p50", "not installed", "us"), "gate")["status"] == "skipped"


def test_complete_rows_when_reference_named_then_value_taken_from_same_run():
    ref = check_row(_row(name="raw_write", value=20.0), "ceilings")
    mine = check_row(_row(name="journal", value=5.0, reference="raw_write", target=">= 5 records/s"), "journal")
    lat = check_row(_row(name="lat", value=40.0, unit="us", higher_is_better=False,
                         reference="ping", reference_value=20.0, target="<= 35 us"), "pipeline")
    rows = complete_rows([ref, mine, lat])
    assert mine["reference_value"] == 20.0 and mine["ratio"] == 0.25 and mine["target_met"] is True
    assert lat["ratio"] == 0.5 and lat["target_met"] is False
    assert rows[0]["ratio"] is None


# --- measuring ----------------------------------------------------------------------------


def test_measure_when_warmup_then_warmup_calls_excluded_from_stats():
    values = iter([1000.0, 3.0, 1.0, 2.0])
    st_ = measure(lambda: next(values), repeats=3, warmup=1)
    assert (st_.value, st_.min, st_.max, st_.runs, st_.warmup) == (2.0, 1.0, 3.0, 3, 1)


def test_percentiles_when_known_samples_then_exact_quantiles():
    p = percentiles(np.arange(1, 1001))
    assert p["p50"] == pytest.approx(500.5)
    assert p["p99"] == pytest.approx(990.01)
    assert p["p99.9"] == pytest.approx(999.001)
    assert (p["min"], p["max"], p["n"]) == (1.0, 1000.0, 1000)
    with pytest.raises(ValueError):
        percentiles([])


def test_latency_results_when_runs_given_then_one_row_per_percentile_median_over_runs(tmp_path):
    ctx = Context(quick=True, tmpdir=tmp_path, repeats=3)
    runs = [np.full(100, 1000 * k, dtype=np.int64) for k in (1, 2, 3)]
    rows = ctx.latency_results("x_latency", runs, unit="us", targets={"p50": "<= 5 us"},
                               references={"p99": {"name": "ref_p99", "value": 4.0}})
    assert [r["name"] for r in rows] == ["x_latency_p50", "x_latency_p99", "x_latency_p99.9"]
    assert (rows[0]["value"], rows[0]["min"], rows[0]["max"], rows[0]["runs"]) == (2.0, 1.0, 3.0, 3)
    assert rows[0]["target"] == "<= 5 us" and rows[1]["reference"] == "ref_p99"
    assert "timer overhead" in rows[0]["note"]
    for r in rows:
        check_row(r, "x")


def test_stats_of_when_empty_then_error():
    with pytest.raises(ValueError):
        stats_of([])


# --- running modules ----------------------------------------------------------------------


def test_run_suite_when_one_module_raises_then_error_row_and_others_still_run(monkeypatch):
    seen = {}

    def good(ctx):
        seen["tmpdir"] = ctx.tmpdir
        assert ctx.tmpdir.is_dir() and ctx.quick and ctx.repeats == 2
        (ctx.tmpdir / "scratch").write_bytes(b"x")
        return [ctx.result("good_throughput", ctx.measure(lambda: 5.0), "records/s", higher_is_better=True,
                           target=">= 4 records/s")]

    def bad(ctx):
        raise RuntimeError("boom")

    def malformed(ctx):
        return [_row(name="fine"), {"name": "broken"}]

    for area, fn in (("zgood", good), ("zbad", bad), ("zmal", malformed)):
        _fake_area(monkeypatch, area, fn)
    doc = run_suite(quick=True, areas=["zbad", "zgood", "zmal"], log=_quiet)
    by = {r["name"]: r for r in doc["results"]}
    assert by["zbad (module)"]["status"] == "error" and "RuntimeError: boom" in by["zbad (module)"]["error"]
    assert by["good_throughput"]["value"] == 5.0 and by["good_throughput"]["target_met"] is True
    assert by["fine"]["status"] == "ok" and by["zmal[1]"]["status"] == "error"
    assert [m["status"] for m in doc["modules"]] == ["error", "ok", "partial"]
    assert not seen["tmpdir"].exists()


def test_run_suite_when_area_returns_a_cached_ceiling_row_again_then_kept_once(monkeypatch):
    shared = {"name": "ref_rate", "value": 7.0, "unit": "records/s", "higher_is_better": True}
    _fake_area(monkeypatch, "zref", lambda ctx: [dict(shared)])
    _fake_area(monkeypatch, "zuse", lambda ctx: [dict(shared), _row(name="ref_rate", value=8.0)])
    doc = run_suite(quick=True, areas=["zref", "zuse"], log=_quiet)
    names = [(r["name"], r["value"]) for r in doc["results"]]
    assert names == [("ref_rate", 7.0), ("ref_rate", 8.0)]
    assert "DUPLICATE NAME" in doc["results"][1]["note"]


def test_run_suite_when_module_runs_past_timeout_then_timed_out_error_row(monkeypatch):
    def slow(ctx):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            time.sleep(0.01)
        return []

    _fake_area(monkeypatch, "zslow", slow)
    t0 = time.monotonic()
    doc = run_suite(quick=True, areas=["zslow"], timeout=0.3, log=_quiet)
    assert time.monotonic() - t0 < 4
    assert "timed out" in doc["results"][0]["error"]


def test_run_suite_when_only_names_unknown_module_then_value_error():
    with pytest.raises(ValueError, match="no benchmark module named nope"):
        run_suite(quick=True, only=["nope"], areas=["ceilings"], log=_quiet)


def test_discover_when_called_then_ceilings_first_and_every_bench_file_listed():
    found = harness.discover()
    assert found[0] == "ceilings"
    files = {p.stem.removeprefix("bench_") for p in Path(harness.__file__).parent.glob("bench_*.py")}
    assert set(found) == files


def test_main_when_modules_run_then_json_and_markdown_written_and_table_printed(monkeypatch, tmp_path, capsys):
    _fake_area(monkeypatch, "zok", lambda ctx: [_row(name="zok_rate", reference="zref", reference_value=20.0)])
    _fake_area(monkeypatch, "zerr", lambda ctx: 1 / 0)
    monkeypatch.setattr(harness, "discover", lambda: ["zok", "zerr"])
    out = tmp_path / "out"
    assert harness.main(["--quick", "--out", str(out)]) == 0
    doc = json.loads((out / "results.json").read_text())
    for key in ("date", "quick", "machine", "results", "modules", "ratio_definition", "timer_overhead_ns"):
        assert key in doc
    for key in ("cores", "cpu_model", "python", "os", "versions"):
        assert key in doc["machine"]
    for pkg in ("numpy", "numba", "pyzmq", "msgspec", "libzmq"):
        assert doc["machine"]["versions"][pkg]
    row = next(r for r in doc["results"] if r["name"] == "zok_rate")
    assert row["ratio"] == 0.5 and doc["quick"] is True
    md = (out / "results.md").read_text()
    assert "| zok_rate | 10 | records/s | zref | 20 | 0.50 |" in md
    assert "ERROR: ZeroDivisionError" in md and "## Reproduce" in md and "python -m benchmarks --quick" in md
    assert "zok_rate" in capsys.readouterr().out
    assert harness.main(["--quick", "--strict", "--out", str(out)]) == 1


def test_run_suite_when_progress_given_then_called_after_each_module_with_partial_doc(monkeypatch):
    _fake_area(monkeypatch, "za", lambda ctx: [_row(name="a")])
    _fake_area(monkeypatch, "zb", lambda ctx: [_row(name="b")])
    seen = []
    doc = run_suite(quick=True, areas=["za", "zb"], log=_quiet,
                    progress=lambda d: seen.append([r["name"] for r in d["results"]]))
    assert seen == [["a"], ["a", "b"]] and doc["complete"] is True


def test_main_when_nothing_measured_then_exit_1_and_unknown_only_exit_2(monkeypatch, tmp_path):
    _fake_area(monkeypatch, "zerr", lambda ctx: 1 / 0)
    monkeypatch.setattr(harness, "discover", lambda: ["zerr"])
    assert harness.main(["--quick", "--out", str(tmp_path)]) == 1
    assert (tmp_path / "results.json").exists()
    assert harness.main(["--quick", "--out", str(tmp_path), "--only", "missing"]) == 2


def test_seqrisk_bench_when_list_then_same_runner_lists_modules(capsys):
    import argparse

    from benchmarks import cli
    from sequencer.cli import COMMAND_MODULES

    assert "benchmarks.cli" in COMMAND_MODULES
    parser = argparse.ArgumentParser(prog="seqrisk")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench", "--list"])
    assert args.func(args) == 0
    assert "ceilings" in capsys.readouterr().out.split()
    args = parser.parse_args(["bench", "--quick", "--out", "d", "--only", "ceilings", "journal"])
    assert (args.quick, args.out, args.only) == (True, Path("d"), ["ceilings", "journal"])


def test_render_markdown_when_skipped_row_then_note_says_skipped():
    row = check_row(_row(value=None, note="nautilus_trader not installed"), "gate")
    doc = {"results": complete_rows([row])}
    assert "skipped: nautilus_trader not installed" in render_markdown(doc, table_only=True)
    assert fmt_num(5_230_000) == "5.23M" and fmt_num(35.25) == "35.2" and fmt_num(None) == "—"


# --- ceilings smoke (tiny sizes) ----------------------------------------------------------


def test_ceilings_when_tiny_sizes_then_valid_positive_rows_and_child_stopped(tmp_path):
    ctx = Context(quick=True, tmpdir=tmp_path, repeats=1)
    rows = [
        ceilings.timer_overhead(ctx),
        ceilings.zmq_pubsub_throughput(ctx, 1, messages=300),
        ceilings.zmq_pubsub_throughput(ctx, 64, messages=50),
        *ceilings.zmq_ping_latency(ctx, count=50),
        *ceilings.zmq_oneway_latency(ctx, 5_000, count=100),
        ceilings.raw_write_throughput(ctx, 64, total_records=4096),
        ceilings.raw_write_throughput(ctx, 64, durability="always", total_records=256),
        ceilings.raw_write_throughput(ctx, 64, durability="batch", total_records=1024),
        ceilings.raw_fromfile_throughput(ctx, total_records=4096),
        ceilings.fold_floor_throughput(ctx, 4096),
        *ceilings.python_4limit_check_latency(ctx, 500),
    ]
    names = [check_row(r, "ceilings")["name"] for r in rows]
    assert len(set(names)) == len(names)
    for r in rows:
        assert r["value"] > 0
        if r["min"] is not None:
            assert r["min"] <= r["value"] <= r["max"]
    assert "raw_pyzmq_pubsub_ipc_batch64_throughput" in names
    assert "raw_os_write_batch64_always_throughput" in names
    assert not list(tmp_path.iterdir())  # files removed
    again = ceilings.zmq_pubsub_throughput(ctx, 1, messages=300)
    assert again is rows[1]  # cached: one measurement per run


def test_peer_publisher_when_closed_then_child_process_exited(tmp_path):
    from benchmarks._zmq_ref import PeerPublisher

    with PeerPublisher(tmp_path / ("long" * 30)) as peer:  # forces the short-path fallback
        proc = peer.proc
        assert peer.burst(160, 10) > 0
    assert proc.poll() is not None


def test_python_4limit_check_when_a_limit_is_exceeded_then_refuses():
    check = ceilings.python_4limit_check()
    assert check(1, 1, 1, 10, 100)
    assert not check(1, 1, 1, 2_000_000, 1)  # max order qty
    assert not check(1, 1, 1, 1_000, 10**13)  # max notional
    assert not check(1, 1, 1, 99_000, 1)  # worst-case long: 500 + 1000 open + 99000 > 100000
    assert check(1, 1, 2, 99_000, 1)  # worst-case short: -500 + 800 open + 99000 <= 100000


@given(n=st.integers(0, 200), accounts=st.integers(1, 4), instruments=st.integers(1, 4), seed=st.integers(0, 99))
@settings(max_examples=50, deadline=None)
def test_fold_floor_when_random_fills_then_numba_equals_reference(n, accounts, instruments, seed):
    from benchmarks._fold_floor import fold_positions, fold_positions_reference, make_fills, positions_array

    rec = make_fills(n, accounts, instruments, seed)
    rec["kind"][::3] = 1  # some non-fill records, which the fold ignores
    got = positions_array(accounts, instruments)
    want = positions_array(accounts, instruments)
    fold_positions(rec, got)
    fold_positions_reference(rec, want)
    assert np.array_equal(got, want)


def _flat(ns: float) -> np.ndarray:
    return np.full(100, ns)


def test_normal_speed_runs_when_floor_beside_a_run_is_slow_then_that_run_is_left_out():
    from benchmarks.bench_gate import _normal_speed_runs

    a = [("a", _flat(650), _flat(900 + k), _flat(660)) for k in range(3)]
    slow_before = ("a", _flat(1400), _flat(1800), _flat(660))
    slow_after = ("a", _flat(650), _flat(1700), _flat(1300))
    b = [("b", _flat(1500), _flat(3000), _flat(1400)), ("b", _flat(660), _flat(1500), _flat(660))]
    kept, floors, note = _normal_speed_runs(a + [slow_before, slow_after] + b)
    assert [float(np.median(r)) for r in kept["a"]] == [900, 901, 902]
    # Fewer than 3 runs at normal speed: every run of the series is used, and the note says so.
    assert [float(np.median(r)) for r in kept["b"]] == [3000, 1500]
    assert len(floors) == 4 and "a 3/5 runs kept" in note and "b 1/2 at normal speed, so all 2 used" in note

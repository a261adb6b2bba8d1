"""Markout, prices file, horizons and lag buckets of the audit."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journal_factory import T0_NS, JournalBuilder
from risk_gate.audit.buckets import histogram_bounds, histogram_bucket, lag_histogram_counts, markout_bucket
from risk_gate.audit.markout import compute_markouts
from risk_gate.audit.prices import PricePath, PricesError, load_prices
from risk_gate.audit.recheck import run_audit
from risk_gate.audit.times import TimeParseError, parse_duration_ns, parse_horizons, parse_iso_ns
from sequencer.registry import default_registry

REG = default_registry()
S = 1_000_000_000


def test_markout_when_synthetic_price_path_then_known_bps_per_bucket(tmp_path):
    prices = tmp_path / "p.csv"
    prices.write_text(
        "ts_ns,instrument,mid\n"
        f"{T0_NS},BTC-USDT,100\n"
        "2024-01-01T00:00:01Z,BTC-USDT,101\n"
        f"{T0_NS + 5 * S},BTC-USDT,99\n"
        f"{T0_NS + 8 * S},BTC-USDT,99\n"
    )
    b = JournalBuilder()
    b.price("BTC-USDT", "100", ts_ns=T0_NS)
    # Buy at lag 0, never filled: priced at its limit 100.
    b.new_order("acct-1", "BTC-USDT", "buy", "1", "100", ts_ns=T0_NS + S // 2)
    # Sell at true lag 5, filled in two parts at 100.25 and 100.75: average 100.5.
    b.price("BTC-USDT", "100", ts_ns=T0_NS + S // 2)
    b.price("BTC-USDT", "100", ts_ns=T0_NS + S // 2)
    b.price("BTC-USDT", "100", ts_ns=T0_NS + S // 2)
    b.price("BTC-USDT", "100", ts_ns=T0_NS + S // 2)
    b.price("BTC-USDT", "100", ts_ns=T0_NS + S // 2)
    sell = b.new_order("acct-1", "BTC-USDT", "sell", "1", "100", applied_seq=2, ts_ns=T0_NS + S // 2)
    b.fill(sell, "0.5", "100.25")
    b.fill(sell, "0.5", "100.75")
    # Market buy never filled: no price, left out.
    b.new_order("acct-1", "BTC-USDT", "buy", "1", ts_ns=T0_NS + S // 2)
    r = run_audit([b.records()], REG, prices=load_prices(prices, REG), horizons=parse_horizons("1s,5s,10s")).report
    m = r.markout_by_lag_bucket
    assert m is not None and m.horizons == ["1s", "5s", "10s"]
    assert (m.priced_orders, m.unpriced_orders) == (2, 1)
    by = {bk.bucket: bk for bk in m.buckets}
    assert set(by) == {"0", "1-9"}
    buy, sel = by["0"], by["1-9"]
    # buy @100: mid(1.5s) = 101 -> +100 bps; mid(5.5s) = 99 -> -100 bps; 10.5s is past the path (ends at 8s).
    assert buy.horizons["1s"].mean_bps == pytest.approx(100.0) and buy.horizons["1s"].count == 1
    assert buy.horizons["5s"].mean_bps == pytest.approx(-100.0)
    assert buy.horizons["10s"].count == 0 and buy.horizons["10s"].mean_bps is None
    # sell @100.5: (100.5 - 101) / 100.5 = -49.7512 bps; (100.5 - 99) / 100.5 = +149.2537 bps.
    assert sel.horizons["1s"].mean_bps == round(-0.5 / 100.5 * 1e4, 4)
    assert sel.horizons["5s"].mean_bps == round(1.5 / 100.5 * 1e4, 4)
    assert sel.orders == 1


def _reference_markout(ts, inst, side, price, lag, paths, h):
    """Plain-Python markout per bucket at one horizon: {bucket index: (count, mean)}."""
    acc: dict[int, list[float]] = {}
    for t, i, sd, p, lg in zip(ts, inst, side, price, lag):
        if not (p > 0) or i not in paths:
            continue
        rows = [(pt, pm) for pt, pm in zip(paths[i].ts.tolist(), paths[i].mid.tolist())]
        x = t + h
        if x > rows[-1][0]:
            continue
        before = [pm for pt, pm in rows if pt <= x]
        if not before:
            continue
        mid = before[-1]
        mk = (mid - p) / p * 1e4 * (1 if sd == 1 else -1)
        b = 0 if lg <= 0 else min(int(math.log10(lg)) + 1, 4)
        acc.setdefault(b, []).append(mk)
    return {b: (len(v), sum(v) / len(v)) for b, v in acc.items()}


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 20), st.floats(50, 150)), min_size=1, max_size=15),
    st.lists(st.tuples(st.integers(0, 20), st.sampled_from([1, 2]), st.sampled_from([0.0, 90.0, 100.0, 110.5]), st.integers(0, 2000)), max_size=20),
    st.integers(1, 10),
)
def test_markout_when_random_paths_then_equals_plain_reference(rows, orders, h):
    path = PricePath(np.array([t * S for t, _ in rows]), np.array([m for _, m in rows]))
    ts = np.array([t * S for t, *_ in orders], dtype=np.int64)
    side = np.array([sd for _, sd, _, _ in orders], dtype=np.int64)
    price = np.array([p if p else np.nan for _, _, p, _ in orders])
    lag = np.array([lg for *_, lg in orders], dtype=np.int64)
    inst = np.ones(len(orders), dtype=np.int64)
    m = compute_markouts(ts, inst, side, price, lag, {1: path}, [("h", h * S)])
    want = _reference_markout(ts.tolist(), inst.tolist(), side.tolist(), np.nan_to_num(price).tolist(), lag.tolist(), {1: path}, h * S)
    got = {
        ["0", "1-9", "10-99", "100-999", "1000+"].index(bk.bucket): (bk.horizons["h"].count, bk.horizons["h"].mean_bps)
        for bk in m.buckets
        if bk.horizons["h"].count
    }
    assert set(got) == set(want)
    for b, (n, mean) in want.items():
        assert got[b][0] == n
        assert got[b][1] == pytest.approx(mean, abs=1e-3)


def test_load_prices_when_iso_and_ns_rows_unsorted_then_sorted_per_instrument(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text("time,instrument,mid\n2024-01-01T00:00:02.000000001Z,ETH-USDT,2\n2024-01-01T00:00:01,ETH-USDT,1\n\n5,BTC-USDT,7.5\n")
    got = load_prices(f, REG)
    assert got[2].ts.tolist() == [T0_NS + S, T0_NS + 2 * S + 1]
    assert got[2].mid.tolist() == [1.0, 2.0]
    assert got[1].mid.tolist() == [7.5]


@pytest.mark.parametrize(
    "body, where, what",
    [
        ("ts_ns,instrument,mid\n1,BTC-USDT,100\n2,NOPE,100\n", ":3:", "unknown instrument"),
        ("ts_ns,instrument,mid\n1,BTC-USDT,100\nyesterday,BTC-USDT,1\n", ":3:", "time"),
        ("ts_ns,instrument,mid\n1,BTC-USDT,-4\n", ":2:", "positive"),
        ("ts_ns,instrument,mid\n1,BTC-USDT,abc\n", ":2:", "not a number"),
        ("ts_ns,instrument,mid\n1,BTC-USDT\n", ":2:", "3 columns"),
        ("1,BTC-USDT,100\n", ":1:", "header"),
        ("ts_ns,instrument,mid\n", "", "no price rows"),
        ("", "", "empty file"),
    ],
)
def test_load_prices_when_bad_row_then_error_names_line(tmp_path, body, where, what):
    f = tmp_path / "p.csv"
    f.write_text(body)
    with pytest.raises(PricesError) as exc:
        load_prices(f, REG)
    assert where in str(exc.value) and what in str(exc.value)


def test_times_when_parsing_iso_and_durations_then_exact_ns():
    assert parse_iso_ns("2024-01-01T00:00:00Z") == T0_NS
    assert parse_iso_ns("2024-01-01T01:00:00.123456789+01:00") == T0_NS + 123456789
    assert parse_duration_ns("1.5s") == 1_500_000_000 and parse_duration_ns("250us") == 250_000
    assert parse_horizons("60s,1s,500ms") == [("500ms", 5 * 10**8), ("1s", S), ("60s", 60 * S)]
    for bad in ("5", "1 sec", "0s"):
        with pytest.raises(TimeParseError):
            parse_duration_ns(bad)
    with pytest.raises(TimeParseError):
        parse_horizons("1s,1000ms")
    with pytest.raises(TimeParseError):
        parse_iso_ns("not a time")


@given(st.lists(st.integers(-5, 10**7), max_size=50))
def test_buckets_when_random_lags_then_bounds_contain_each_lag(lags):
    arr = np.array(lags, dtype=np.int64)
    for lag, k in zip(lags, histogram_bucket(arr).tolist()):
        lo, hi = histogram_bounds(k)
        assert lo <= max(lag, 0) <= hi
    counts = lag_histogram_counts(arr, arr)
    assert sum(c[2] for c in counts) == len(lags)
    for lag, k in zip(lags, markout_bucket(arr).tolist()):
        assert k == (0 if lag <= 0 else min(len(str(lag)), 4))

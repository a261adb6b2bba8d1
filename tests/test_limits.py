"""The [gate] config section and the LimitTable's scope resolution and limit events."""

from __future__ import annotations

import numpy as np
import pytest

from gate_support import rec
from risk_gate.limits import DEFAULT_BUDGETS, LimitTable, load_gate_config
from sequencer.codes import LimitType
from sequencer.config import ConfigError, check_config
from sequencer.protocol import Kind
from sequencer.registry import default_registry

REG = default_registry()


def table(gate: dict) -> LimitTable:
    return LimitTable(load_gate_config({"gate": gate}, REG), REG)


def test_load_when_section_missing_then_default_budgets():
    t = table({})
    assert t.budgets(1) == (DEFAULT_BUDGETS["max_lag_events"], DEFAULT_BUDGETS["max_hwm_age_ms"] * 1_000_000)
    r = t.resolved(1, 1)
    assert r.max_qty_lots == -1 and r.price_ttl_ns == DEFAULT_BUDGETS["price_ttl_ms"] * 1_000_000
    assert load_gate_config({}).publish_refusals is True


@pytest.mark.parametrize(
    ("gate", "path"),
    [
        ({"nope": 1}, "gate"),
        ({"accounts": {"acct-9": {}}}, "gate.accounts.acct-9"),
        ({"instruments": {"XRP": {}}}, "gate.instruments.XRP"),
        ({"instruments": {"BTC-USDT": {"rate_per_sec": 1}}}, "gate.instruments.BTC-USDT.rate_per_sec"),
        ({"max_order_qty": "-1"}, "gate.max_order_qty"),
        ({"max_order_qty": "0.0000001"}, "gate.max_order_qty"),
        ({"max_lag_events": "x"}, "gate.max_lag_events"),
        ({"restricted_instruments": ["BTC-USDT", "NOPE"]}, "gate.restricted_instruments[1]"),
        ({"accounts": {"acct-1": {"instruments": {"ETH-USDT": {"bogus": 1}}}}}, "gate.accounts.acct-1.instruments.ETH-USDT"),
    ],
)
def test_load_when_bad_value_then_error_names_key_path(gate, path):
    with pytest.raises(ConfigError) as err:
        load_gate_config({"gate": gate}, REG)
    assert str(err.value).startswith(path)


def test_check_config_when_gate_section_present_then_validated(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[gate]\nmax_order_qty = "1"\n[gate.accounts.acct-1]\nmax_open_orders = 3\n')
    assert "gate" in check_config(p)
    p.write_text("[gate]\nmax_open_orderz = 3\n")
    with pytest.raises(ConfigError, match="max_open_orderz"):
        check_config(p)


def test_resolve_when_several_scopes_set_then_most_specific_wins():
    t = table({
        "max_order_qty": "10",
        "instruments": {"BTC-USDT": {"max_order_qty": "2"}},
        "accounts": {"acct-1": {"max_order_qty": "5", "max_open_orders": 4, "instruments": {"BTC-USDT": {"max_order_qty": "1"}}}},
    })
    assert t.resolved(1, 1).max_qty_lots == 10_000  # pair: 1 BTC
    assert t.resolved(2, 1).max_qty_lots == 20_000  # instrument: 2 BTC
    assert t.resolved(1, 2).max_qty_lots == 5_000  # account: 5 ETH
    assert t.resolved(2, 2).max_qty_lots == 10_000  # global: 10 ETH
    assert t.resolved(1, 2).max_open_orders == 4 and t.resolved(2, 2).max_open_orders == -1


def test_resolve_when_notional_limit_then_floor_in_tick_lot_units():
    t = table({"max_order_notional": "100.5"})
    # BTC-USDT unit = 0.01 * 0.0001 = 1e-6 quote
    assert t.resolved(1, 1).max_notional_units == 100_500_000


def test_apply_when_limit_events_then_applied_in_seq_order_and_cache_dropped():
    t = table({"max_order_qty": "10"})
    assert t.resolved(1, 1).max_qty_lots == 100_000
    batch = np.concatenate([
        rec(Kind.PRICE, instrument=1, price=1),
        rec(Kind.LIMIT, code=int(LimitType.MAX_ORDER_QTY), account=1, instrument=1, aux1=3_000_000),
        rec(Kind.LIMIT, code=int(LimitType.MAX_ORDER_QTY), account=1, instrument=1, aux1=2_000_000),
        rec(Kind.LIMIT, code=999, aux1=1),
    ])
    batch["seq"] = np.arange(1, 5)
    assert t.apply(batch) == 2
    assert t.resolved(1, 1).max_qty_lots == 20_000
    assert t.resolved(2, 1).max_qty_lots == 100_000
    assert t.last_change_seq == 3 and t.ignored == 1
    before = t.state_hash()
    t2 = table({})
    t2.load_dict(t.to_dict())
    assert t2.state_hash() == before


def test_budgets_when_limit_event_changes_lag_budget_then_account_uses_it():
    t = table({"max_lag_events": 10})
    t.set(LimitType.MAX_LAG_EVENTS, 2, 0, 0)
    assert t.budgets(2)[0] == 0 and t.budgets(1)[0] == 10

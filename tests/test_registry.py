"""Fixed-point conversion and registry validation."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sequencer.registry import Instrument, Registry, RegistryError, default_registry

BTC = default_registry().instrument("BTC-USDT")
EURUSD = default_registry().instrument("EUR-USD")


@given(ticks=st.integers(-(10**15), 10**15))
def test_price_str_when_parsed_back_then_same_ticks(ticks):
    assert BTC.to_ticks(BTC.price_str(ticks)) == ticks


@given(lots=st.integers(-(10**12), 10**12))
def test_qty_str_when_parsed_back_then_same_lots(lots):
    for inst in default_registry().instruments:
        assert inst.to_lots(inst.qty_str(lots)) == lots


@pytest.mark.parametrize("price", ["100.005", "0.001", "1e-3", "100.0000001"])
def test_to_ticks_when_off_the_tick_grid_then_error_names_value_and_tick(price):
    with pytest.raises(RegistryError, match="not a multiple of the tick size 0.01"):
        BTC.to_ticks(price)


@pytest.mark.parametrize(
    ("qty", "lots"), [("1000", 1), ("5000", 5), (2000, 2), ("1E+3", 1), (Decimal("3000.000"), 3)]
)
def test_to_lots_when_whole_lots_then_exact(qty, lots):
    assert EURUSD.to_lots(qty) == lots


@pytest.mark.parametrize("qty", ["1500", "999", "0.5"])
def test_to_lots_when_partial_lot_then_error(qty):
    with pytest.raises(RegistryError, match="lot size 1000"):
        EURUSD.to_lots(qty)


@pytest.mark.parametrize("bad", ["NaN", "inf", "-Infinity", "abc", "", None, True, [1]])
def test_to_ticks_when_not_a_finite_decimal_then_error(bad):
    with pytest.raises(RegistryError):
        BTC.to_ticks(bad)


def test_to_ticks_when_float_then_uses_shortest_repr_not_binary_expansion():
    assert BTC.to_ticks(0.07) == 7
    assert BTC.to_ticks(100.1) == 10010


def test_formatting_when_tick_has_places_then_keeps_them():
    assert BTC.price_str(10050) == "100.50"
    assert EURUSD.price_str(108_123) == "1.08123"
    assert EURUSD.qty_str(3) == "3000"
    assert BTC.qty_str(-15) == "-0.0015"


def test_notional_when_multiplier_then_exact_product():
    inst = Instrument("FUT", 9, Decimal("0.25"), Decimal("1"), Decimal("50"))
    assert inst.notional(inst.to_ticks("4000.25"), 2) == Decimal("400025")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"accounts": {"a": 1, "b": 1}}, "id 1 is used by both"),
        ({"accounts": {"a": 0}}, "id must be an integer in 1..65535"),
        ({"venues": {"": 1}}, "name must not be empty"),
        ({"instruments": (Instrument("X", 1, Decimal("0"), Decimal("1")),)}, "tick must be positive"),
        ({"instruments": (Instrument("X", 1, Decimal("1"), Decimal("1")), Instrument("X", 2, Decimal("1"), Decimal("1")))}, "registered twice"),
    ],
)
def test_registry_when_ids_or_scales_invalid_then_error_names_them(kwargs, message):
    base = default_registry()
    args = {"instruments": base.instruments, "accounts": dict(base.accounts), "venues": dict(base.venues)}
    args.update(kwargs)
    with pytest.raises(RegistryError, match=message):
        Registry(**args)


def test_lookups_when_unknown_then_error_lists_known_names():
    reg = default_registry()
    with pytest.raises(RegistryError, match="unknown account 'acct-9' .known: acct-1, acct-2"):
        reg.account_id("acct-9")
    with pytest.raises(RegistryError, match="unknown instrument 'DOGE'"):
        reg.instrument("DOGE")
    assert reg.account_name(0) == "" and reg.venue_name(2) == "sim-2"


def test_valid_masks_when_default_then_only_registered_ids_true():
    acc, ins, ven = default_registry().valid_masks()
    assert acc.tolist() == [False, True, True]
    assert ins.tolist() == [False, True, True, True]
    assert ven.tolist() == [False, True, True]

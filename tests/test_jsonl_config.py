"""JSON-lines codec and config file validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sequencer.cli import main as cli_main
from sequencer.codes import LimitType, RefuseReason
from sequencer.config import ConfigError, load_document, load_registry, load_sequencer_config
from sequencer.jsonl import JsonlError, record_from_json, record_to_json, records_to_jsonl
from sequencer.protocol import Kind, Side
from sequencer.registry import default_registry

REG = default_registry()

_json_events = st.one_of(
    st.fixed_dictionaries(
        {
            "kind": st.just("new_order"),
            "account": st.sampled_from(["acct-1", "acct-2"]),
            "instrument": st.sampled_from(["BTC-USDT", "ETH-USDT"]),
            "venue": st.sampled_from(["sim-1", "sim-2"]),
            "order_id": st.integers(1, 2**40),
            "side": st.sampled_from(["buy", "sell"]),
            "qty": st.integers(1, 10**6).map(lambda n: f"{n / 1000:.3f}"),
            "price": st.integers(1, 10**8).map(lambda n: f"{n / 100:.2f}"),
            "gate_applied_seq": st.integers(0, 2**40),
            "gate_hwm": st.integers(0, 2**40),
            "producer_seq": st.integers(1, 2**40),
        }
    ),
    st.fixed_dictionaries(
        {
            "kind": st.just("fill"),
            "account": st.just("acct-1"),
            "instrument": st.just("EUR-USD"),
            "venue": st.just("sim-2"),
            "order_id": st.integers(1, 2**40),
            "side": st.sampled_from(["buy", "sell"]),
            "qty": st.integers(1, 100).map(lambda n: str(n * 1000)),
            "price": st.integers(1, 200_000).map(lambda n: f"{n / 100000:.5f}"),
            "trade_id": st.integers(1, 2**50),
        }
    ),
    st.fixed_dictionaries(
        {
            "kind": st.sampled_from(["halt", "resume", "reduce_only"]),
            "reason": st.text(max_size=12).filter(lambda s: "\0" not in s and len(s.encode()) <= 40),
        }
    ),
    st.fixed_dictionaries(
        {
            "kind": st.just("limit"),
            "limit": st.sampled_from([m.name.lower() for m in LimitType]),
            "value": st.integers(0, 10**12).map(lambda n: str(n / 10**6) if n % 7 else str(n)),
            "account": st.sampled_from(["acct-1", ""]),
        }
    ),
)


@given(event=_json_events)
def test_record_from_json_when_round_tripped_then_same_event(event):
    rec = record_from_json(event, REG)
    back = record_to_json(rec[0], REG)
    again = record_from_json({k: v for k, v in back.items() if k not in ("seq", "epoch", "ts_ns", "producer")}, REG)
    assert again.tobytes() == rec.tobytes()


def test_record_to_json_when_refused_then_reason_name_and_detail():
    rec = record_from_json(
        {"kind": "refused", "account": "acct-1", "instrument": "BTC-USDT", "venue": "sim-1", "order_id": 9,
         "side": "sell", "qty": "0.5", "price": "100.25", "reason": "MAX_POSITION", "detail": "pos 3 > 2"}, REG)
    out = record_to_json(rec[0], REG)
    assert int(rec["code"][0]) == RefuseReason.MAX_POSITION
    assert out["reason"] == "MAX_POSITION" and out["detail"] == "pos 3 > 2"
    assert out["qty"] == "0.5000" and out["price"] == "100.25" and out["side"] == "sell"
    assert out["gate_applied_seq"] == 0 and out["gate_hwm"] == 0


def test_records_to_jsonl_when_many_then_one_line_each():
    recs = np.concatenate([record_from_json({"kind": "price", "instrument": "ETH-USDT", "price": "2000.5"}, REG)] * 3)
    recs["seq"] = [1, 2, 3]
    lines = records_to_jsonl(recs, REG).decode().splitlines()
    assert [json.loads(x)["seq"] for x in lines] == [1, 2, 3]
    assert json.loads(lines[0])["price"] == "2000.50"


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"kind": "teleport"}, "kind"),
        ({"kind": "fill", "bogus": 1}, "bogus"),
        ({"kind": "fill", "instrument": "DOGE"}, "instrument"),
        ({"kind": "fill", "account": "nobody"}, "account"),
        ({"kind": "fill", "instrument": "BTC-USDT", "price": "1.001"}, "price"),
        ({"kind": "fill", "qty": "1"}, "qty"),
        ({"kind": "fill", "side": "long"}, "side"),
        ({"kind": "fill", "order_id": "7"}, "order_id"),
        ({"kind": "fill", "order_id": 2**64}, "order_id"),
        ({"kind": "ack", "trade_id": 5}, "trade_id"),
        ({"kind": "price", "gate_hwm": 5}, "gate_hwm"),
        ({"kind": "refused", "reason": "TOO_BIG"}, "reason"),
        ({"kind": "halt", "reason": "x" * 41}, "reason"),
        ({"kind": "limit", "limit": "max_vibes", "value": "1"}, "limit"),
        ({"kind": "limit", "limit": "max_order_qty"}, "value"),
        ({"kind": "limit", "limit": "max_order_qty", "value": "0.0000001"}, "value"),
        ({"kind": "price", "value": "1"}, "value"),
        ([1, 2], "event"),
    ],
)
def test_record_from_json_when_invalid_then_error_names_field(event, field):
    with pytest.raises(JsonlError) as info:
        record_from_json(event, REG)
    assert info.value.field == field


def test_record_from_json_when_side_and_reset_then_signed_qty_kept():
    rec = record_from_json({"kind": "position_reset", "account": "acct-2", "instrument": "BTC-USDT", "qty": "-1.5"}, REG)
    assert int(rec["qty"][0]) == -15000 and int(rec["side"][0]) == Side.NONE
    assert int(rec["kind"][0]) == Kind.POSITION_RESET


def _write(tmp_path, text):
    p = tmp_path / "seqrisk.toml"
    p.write_text(text)
    return p


def test_load_registry_when_config_given_then_custom_instruments_and_default_others(tmp_path):
    doc = load_document(_write(tmp_path, '[[instruments]]\nsymbol = "SOL-USDT"\nid = 7\ntick = "0.001"\nlot = "0.1"\n'))
    reg = load_registry(doc)
    assert reg.instrument("SOL-USDT").to_ticks("1.234") == 1234
    assert reg.accounts == {"acct-1": 1, "acct-2": 2}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[sequencr]\n", "unknown top-level key 'sequencr'"),
        ("[sequencer]\ndurability = 'sometimes'\n", "sequencer.durability"),
        ("[sequencer]\nbogus = 1\n", "unknown field `bogus`"),
        ("[sequencer]\nheartbeat_ms = 0\n", "heartbeat_ms must be"),
        ("[[instruments]]\nsymbol = 'X'\nid = 1\ntick = 'abc'\nlot = '1'\n", "instruments[0].tick"),
        ("[[accounts]]\nname = 'a'\nid = 70000\n", "id must be an integer in 1..65535"),
        ("[[venues]]\nname = 'v'\nidd = 3\n", "venues"),
        ("this is = = not toml", "not valid TOML"),
    ],
)
def test_config_when_invalid_then_error_names_key_path(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        doc = load_document(_write(tmp_path, text))
        load_sequencer_config(doc)
        load_registry(doc)


def test_config_check_cli_when_bad_key_then_exit_1_with_path(tmp_path, capsys):
    path = _write(tmp_path, "[sequencer]\nsync_ms = 'fast'\n")
    assert cli_main(["config", "check", str(path)]) == 1
    assert "sequencer.sync_ms" in capsys.readouterr().err
    good = _write(tmp_path, "[sequencer]\nsync_ms = 5\n")
    assert cli_main(["config", "check", str(good)]) == 0
    assert "ok" in capsys.readouterr().out

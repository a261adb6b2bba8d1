"""``seqrisk replay`` on journals built with ``sequencer.journal.Journal``; replay determinism."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from consumers.fold import fold_journal
from oms import Oms
from sequencer.cli import main
from sequencer.journal import Journal
from sequencer.protocol import RECORD_DTYPE, Kind, encode_frame
from test_kernels import events

_FIELDS = ("kind", "account", "instrument", "venue", "order_id", "side", "qty", "price", "aux1")
SMALL = [
    (Kind.PRICE, 0, 1, 0, 0, 0, 0, 5_000_000, 0),
    (Kind.NEW_ORDER, 1, 1, 1, 1, 1, 10_000, 5_000_000, 0),
    (Kind.ACK, 0, 0, 0, 1, 0, 0, 0, 0),
    (Kind.FILL, 1, 1, 1, 1, 1, 4_000, 5_000_000, 11),
    (Kind.FILL, 1, 1, 1, 1, 1, 4_000, 5_000_000, 11),
    (Kind.NEW_ORDER, 2, 2, 2, 2, 2, 2_000, 300_000, 0),
    (Kind.CANCEL, 0, 0, 0, 2, 0, 0, 0, 0),
    (Kind.HALT, 2, 0, 0, 0, 0, 0, 0, 0),
    (Kind.POSITION_RESET, 2, 2, 2, 0, 0, -1_000, 300_000, 0),
    (Kind.FILL, 1, 1, 2, 77, 2, 1_000, 5_010_000, 5),
]


def build(rows) -> np.ndarray:
    recs = np.zeros(len(rows), RECORD_DTYPE)
    for j, row in enumerate(rows):
        for name, value in zip(_FIELDS, row):
            recs[name][j] = value
    recs["seq"] = np.arange(1, len(rows) + 1)
    recs["ts_ns"] = 1_700_000_000_000_000_000 + recs["seq"]
    return recs


def write_journal(path, recs: np.ndarray, cuts=()) -> None:
    journal = Journal.open(path, durability="none")
    epoch = journal.next_epoch()
    recs = recs.copy()
    recs["epoch"] = epoch
    bounds = [0, *sorted(c for c in set(cuts) if 0 < c < len(recs)), len(recs)]
    for lo, hi in zip(bounds, bounds[1:]):
        journal.append(encode_frame(recs[lo:hi], epoch=epoch), int(recs["seq"][lo]), hi - lo, epoch)
    journal.close()


def run_replay(capsys, *argv) -> tuple[int, str, str]:
    code = main(["replay", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_replay_json_when_small_journal_then_exact_document(tmp_path, capsys):
    write_journal(tmp_path / "j", build(SMALL), cuts=[3, 7])
    code, out, _ = run_replay(capsys, tmp_path / "j", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["seq"] == 10
    assert doc["orders"] == [
        {"order_id": 1, "account": "acct-1", "instrument": "BTC-USDT", "venue": "sim-1", "side": "buy", "state": "partially_filled",
         "qty": "1.0000", "cum_qty": "0.4000", "leaves_qty": "0.6000", "avg_price": "50000.00", "price": "50000.00", "seq": 2},
        {"order_id": 2, "account": "acct-2", "instrument": "ETH-USDT", "venue": "sim-2", "side": "sell", "state": "canceled",
         "qty": "2.000", "cum_qty": "0.000", "leaves_qty": "0.000", "avg_price": None, "price": "3000.00", "seq": 6},
    ]
    assert doc["positions"] == [
        {"account": "acct-1", "instrument": "BTC-USDT", "qty": "0.3000", "avg_price": "50000.00", "realized_pnl": "10.000000",
         "venues": {"sim-1": "0.4000", "sim-2": "-0.1000"}},
        {"account": "acct-2", "instrument": "ETH-USDT", "qty": "-1.000", "avg_price": "3000.00", "realized_pnl": "0.00000",
         "venues": {"sim-2": "-1.000"}},
    ]
    assert doc["anomalies"] == [
        {"seq": 5, "kind": "duplicate_trade_id", "order_id": 1, "reason": "venue trade id 11 already applied; fill ignored", "code": 504},
        {"seq": 10, "kind": "unknown_order_fill", "order_id": 77, "reason": "fill (trade id 5) for an unknown order; position moved", "code": 500},
    ]
    assert doc["trading_states"] == {
        "all": "active",
        "accounts": {"acct-1": "active", "acct-2": "halted"},
        "instruments": {"BTC-USDT": "active", "ETH-USDT": "active", "EUR-USD": "active"},
    }


def test_replay_when_until_then_state_at_that_seq(tmp_path, capsys):
    write_journal(tmp_path / "j", build(SMALL))
    code, out, _ = run_replay(capsys, tmp_path / "j", "--json", "--until", 4)
    doc = json.loads(out)
    assert code == 0 and doc["seq"] == 4 and doc["anomalies"] == []
    assert [(o["order_id"], o["state"], o["cum_qty"]) for o in doc["orders"]] == [(1, "partially_filled", "0.4000")]


def test_replay_text_when_small_journal_then_lists_positions_orders_anomalies(tmp_path, capsys):
    write_journal(tmp_path / "j", build(SMALL))
    code, out, _ = run_replay(capsys, tmp_path / "j")
    assert code == 0
    assert out.startswith("seq 10\n")
    assert "acct-2=halted" in out
    assert "open orders (1 of 2):" in out and "#1 " in out
    assert "duplicate_trade_id" in out and "unknown_order_fill" in out


def test_replay_text_when_gate_component_then_same_trading_states_line_as_oms(tmp_path, capsys):
    write_journal(tmp_path / "j", build(SMALL))
    _, oms_out, _ = run_replay(capsys, tmp_path / "j")
    code, gate_out, _ = run_replay(capsys, tmp_path / "j", "--component", "gate")
    assert code == 0 and gate_out.startswith("gate view at seq 10\n")
    oms_line = oms_out.splitlines()[1]
    assert oms_line.startswith("trading states: all=") and "acct-2=halted" in oms_line
    assert gate_out.splitlines()[1] == oms_line


def test_replay_when_directory_missing_then_exit_1_with_message(tmp_path, capsys):
    code, out, err = run_replay(capsys, tmp_path / "nope")
    assert code == 1 and out == "" and "no such journal directory" in err


@settings(max_examples=15, deadline=None)
@given(recs=events(max_size=50), cuts=st.lists(st.integers(1, 49), max_size=5))
def test_fold_journal_when_folded_twice_or_framed_differently_then_same_state_hash(tmp_path_factory, recs, cuts):
    one = tmp_path_factory.mktemp("j1")
    many = tmp_path_factory.mktemp("j2")
    assume(len(recs) > 0)
    write_journal(one, recs)
    write_journal(many, recs, cuts)
    first = fold_journal(Oms(), one).state_hash()
    assert fold_journal(Oms(), one).state_hash() == first
    assert fold_journal(Oms(), many).state_hash() == first

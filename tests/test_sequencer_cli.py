"""``seqrisk submit`` and ``seqrisk status`` against a running sequencer."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from support import REPO_ROOT, running_sequencer, sequencer_endpoints

pytestmark = pytest.mark.slow

EVENTS = [
    {"kind": "price", "instrument": "BTC-USDT", "price": "65000.50"},
    {"kind": "new_order", "account": "acct-1", "instrument": "BTC-USDT", "venue": "sim-1", "order_id": 7,
     "side": "buy", "qty": "0.5", "price": "65000.00", "gate_applied_seq": 1, "gate_hwm": 1},
    {"kind": "halt", "account": "acct-2", "reason": "ops"},
]


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sequencer.service_cli", *args], capture_output=True, text=True,
                          input=stdin, cwd=str(REPO_ROOT), timeout=60)


def write_jsonl(path, events) -> str:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return str(path)


def test_submit_when_same_file_resubmitted_then_idempotent_with_original_seqs(tmp_path):
    f = write_jsonl(tmp_path / "ev.jsonl", EVENTS)
    with running_sequencer(tmp_path) as seq:
        first = cli("submit", "--ingest", seq.ingest, "--producer", "desk-a", f)
        assert first.returncode == 0, first.stderr
        lines = [json.loads(x) for x in first.stdout.splitlines()]
        assert [x["seq"] for x in lines] == [1, 2, 3] and [x["producer_seq"] for x in lines] == [1, 2, 3]
        again = cli("submit", "--ingest", seq.ingest, "--producer", "desk-a", "-", stdin=open(f).read())
        assert again.returncode == 0, again.stderr
        lines2 = [json.loads(x) for x in again.stdout.splitlines()]
        assert [(x["seq"], x["epoch"]) for x in lines2] == [(x["seq"], x["epoch"]) for x in lines]
        assert all(x["duplicate"] for x in lines2)
        other = cli("submit", "--ingest", seq.ingest, f)  # no --producer: a new producer each run
        assert [json.loads(x)["seq"] for x in other.stdout.splitlines()] == [4, 5, 6]
        assert seq.status().hwm == 6


BAD_LINES = [
    ({"kind": "price", "instrument": "BTC-USDT", "price": "1.001"}, "price"),
    ({"kind": "nope"}, "kind"),
    ({"kind": "ack"}, "order_id"),
    ({"kind": "halt", "account": "acct-1", "instrument": "ETH-USDT"}, "scope"),
]


def test_submit_when_a_line_is_invalid_then_nonzero_exit_naming_line_and_field_and_nothing_stamped(tmp_path):
    with running_sequencer(tmp_path) as seq:
        for n, (bad, field) in enumerate(BAD_LINES):
            f = write_jsonl(tmp_path / f"bad{n}.jsonl", [EVENTS[0], bad, EVENTS[2]])
            res = cli("submit", "--ingest", seq.ingest, "--producer", "desk-b", f)
            assert res.returncode != 0
            assert "line 2" in res.stderr and field in res.stderr, res.stderr
            assert res.stdout == ""
        assert seq.status().hwm == 0


def test_status_when_asked_then_text_and_json_and_timeout_is_an_error(tmp_path):
    with running_sequencer(tmp_path) as seq:
        write_jsonl(tmp_path / "ev.jsonl", EVENTS)
        assert cli("submit", "--ingest", seq.ingest, str(tmp_path / "ev.jsonl")).returncode == 0
        as_json = cli("status", "--replay", seq.replay, "--json")
        assert as_json.returncode == 0, as_json.stderr
        doc = json.loads(as_json.stdout)
        assert {"epoch", "hwm", "durability", "uptime_s", "counts"} <= set(doc)
        assert doc["hwm"] == 3 and doc["counts"] == {"new_order": 1, "price": 1, "halt": 1}
        text = cli("status", "--replay", seq.replay)
        assert text.returncode == 0 and "hwm             3" in text.stdout and "durability      batch" in text.stdout
    dead = cli("status", "--replay", sequencer_endpoints(tmp_path / "nobody")["replay"], "--timeout", "0.5")
    assert dead.returncode != 0 and "no status answer" in dead.stderr


def test_sequencer_when_config_is_invalid_then_exit_2_with_key_path(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[sequencer]\nheartbeat_ms = 'fast'\n")
    res = cli("sequencer", "--config", str(cfg), "--journal", str(tmp_path / "j"))
    assert res.returncode == 2 and "sequencer.heartbeat_ms" in res.stderr

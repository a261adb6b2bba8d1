"""``seqrisk audit`` and ``seqrisk replay --at-time/--component gate`` end to end on journals on disk."""

from __future__ import annotations

import json

import pytest

from journal_factory import T0_NS, JournalBuilder
from risk_gate.audit.report import decode_report
from sequencer.cli import main


def _journal(tmp_path, n_orders: int = 60):
    """A journal of several frames with stale approvals, refusals, a limit change and a halt."""
    b = JournalBuilder()
    b.price("BTC-USDT", "100")
    b.price("ETH-USDT", "10")
    b.limit("max_position", "3", account="acct-1", instrument="BTC-USDT")
    for n in range(n_orders):
        lag = n % 4
        oid = b.new_order("acct-1" if n % 3 else "acct-2", "BTC-USDT", "buy" if n % 2 else "sell", "0.5", "100", lag=lag)
        if n % 5 == 0:
            b.fill(oid, "0.5", "100.01")
        elif n % 5 == 1:
            b.cancel(oid)
        if n % 7 == 0:
            b.refused("acct-2", "ETH-USDT", "buy", "1", "10", reason="MAX_ORDER_QTY")
        if n == n_orders // 2:
            b.halt(instrument="BTC-USDT")
        if n == n_orders // 2 + 2:
            b.resume(instrument="BTC-USDT")
    return b, b.write(tmp_path / "journal", frame_records=16)


def test_audit_cli_when_journal_on_disk_then_writes_report_md_and_plots(tmp_path, capsys):
    b, jdir = _journal(tmp_path)
    prices = tmp_path / "prices.csv"
    prices.write_text("ts_ns,instrument,mid\n" + "".join(f"{T0_NS + k * 10**8},BTC-USDT,{100 + k % 3}\n" for k in range(400)))
    out = tmp_path / "out"
    rc = main(["audit", str(jdir), "--out", str(out), "--prices", str(prices), "--horizons", "100ms,1s", "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "exposure window:" in printed and str(out / "report.md") in printed
    assert {p.name for p in out.iterdir()} == {"report.json", "report.md", "lag.png", "markout.png"}
    r = decode_report((out / "report.json").read_bytes())
    assert r.events == b.last_seq and r.last_seq == b.last_seq
    assert r.decisions.approved == 60 and r.decisions.refused == 9
    assert r.decisions.refused_by_reason["MAX_ORDER_QTY"] == 9
    assert r.max_true_lag == 3 and r.recheck.approvals_behind == 45
    assert r.limit_changes == 1
    assert r.markout_by_lag_bucket is not None and r.markout_by_lag_bucket.horizons == ["100ms", "1s"]
    md = (out / "report.md").read_text()
    assert md.startswith("# seqrisk audit") and r.verdict.text in md
    assert (out / "lag.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_audit_cli_when_run_twice_then_report_json_byte_identical(tmp_path):
    _, jdir = _journal(tmp_path)
    assert main(["audit", str(jdir), "--out", str(tmp_path / "a"), "--no-progress", "--no-plots"]) == 0
    assert main(["audit", str(jdir), "--out", str(tmp_path / "b"), "--no-progress", "--no-plots"]) == 0
    a = (tmp_path / "a" / "report.json").read_bytes()
    assert a == (tmp_path / "b" / "report.json").read_bytes()
    assert (tmp_path / "a" / "report.md").read_bytes() == (tmp_path / "b" / "report.md").read_bytes()
    doc = json.loads(a)
    assert list(doc) == sorted(doc)


def _corrupt_middle(jdir):
    seg = sorted(p for p in jdir.iterdir() if p.suffix not in (".idx", ".lock") and p.is_file() and p.stat().st_size > 4096)[0]
    data = bytearray(seg.read_bytes())
    frame = 32 + 16 * 128  # frames of 16 records
    off = 3 * frame + 32 + 5 * 128 + 20  # a byte inside the 4th frame (seqs 49..64)
    data[off] ^= 0xFF
    seg.write_bytes(bytes(data))
    return seg


def test_audit_cli_when_frame_corrupt_then_stops_naming_segment_offset_seq(tmp_path, capsys):
    _, jdir = _journal(tmp_path)
    seg = _corrupt_middle(jdir)
    rc = main(["audit", str(jdir), "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1
    assert seg.name in err and "offset 6240" in err and "seq 49" in err
    assert not (tmp_path / "out" / "report.json").exists()


def test_audit_cli_when_until_stops_before_corruption_then_report_written(tmp_path):
    _, jdir = _journal(tmp_path)
    _corrupt_middle(jdir)
    assert main(["audit", str(jdir), "--out", str(tmp_path / "out"), "--until", "40", "--no-progress", "--no-plots"]) == 0
    r = decode_report((tmp_path / "out" / "report.json").read_bytes())
    assert (r.last_seq, r.events, r.until) == (40, 40, 40)


@pytest.mark.parametrize(
    "extra, rc, what",
    [
        (["--horizons", "5 sec"], 2, "not a duration"),
        (["--until", "0"], 2, "--until"),
        (["--prices", "missing.csv"], 2, "cannot open"),
    ],
)
def test_audit_cli_when_bad_arguments_then_exit_2_with_message(tmp_path, capsys, extra, rc, what):
    _, jdir = _journal(tmp_path, 4)
    assert main(["audit", str(jdir), "--out", str(tmp_path / "out"), "--no-progress", *extra]) == rc
    assert what in capsys.readouterr().err


def test_replay_when_component_gate_at_time_then_gate_view_with_reservations(tmp_path, capsys):
    b = JournalBuilder()
    b.price("BTC-USDT", "100")  # seq 1
    b.limit("max_order_qty", "2")  # seq 2
    b.new_order("acct-1", "BTC-USDT", "buy", "1", "100")  # seq 3, applied 2
    b.new_order("acct-1", "BTC-USDT", "buy", "0.5", "100", applied_seq=2)  # seq 4
    b.halt(account="acct-2")  # seq 5
    b.new_order("acct-1", "BTC-USDT", "sell", "0.25", "101", applied_seq=2)  # seq 6
    t6 = int(b.records()["ts_ns"][5])
    b.fill(1, "1", "100")  # seq 7
    jdir = b.write(tmp_path / "j")
    iso = "2024-01-01T00:00:00.006Z"
    assert t6 == T0_NS + 6_000_000
    assert main(["replay", str(jdir), "--at-time", iso, "--component", "gate", "--json"]) == 0
    v = json.loads(capsys.readouterr().out)
    assert v["seq"] == 6 and v["component"] == "gate"
    assert v["trading_states"]["accounts"]["acct-2"] == "halted"
    [res] = v["reservations"]
    assert (res["applied_seq"], res["last_decision_seq"], res["behind"]) == (2, 6, 4)
    assert [o["order_id"] for o in res["orders"]] == [1, 2, 3]
    assert {"limit": "max_order_qty", "account": "*", "instrument": "*", "value": "2"} in v["limits"]
    [pos] = v["positions"]
    assert (pos["qty"], pos["open_buy"], pos["open_sell"], pos["worst_long"]) == ("0.0000", "1.5000", "0.2500", "1.5000")
    assert main(["replay", str(jdir), "--at-time", iso]) == 0  # the OMS view, stopped at the same seq
    assert capsys.readouterr().out.startswith("seq 6")
    assert main(["replay", str(jdir), "--component", "gate"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("gate view at seq 7") and "reservations implied by the stream" in text
    assert main(["replay", str(jdir), "--at-time", "yesterday"]) == 2
    assert main(["replay", str(jdir), "--at-time", iso, "--until", "3"]) == 2


def test_iter_journal_when_sealed_segment_corrupt_and_unindexed_then_until_before_it_still_reads(tmp_path):
    from risk_gate.audit.recheck import AuditError, iter_journal

    b = JournalBuilder()
    for _ in range(200):
        b.price("BTC-USDT", "100")
    jdir = b.write(tmp_path / "j", frame_records=16, segment_bytes=16384)
    first = sorted(jdir.glob("*.seg"))[0]
    data = bytearray(first.read_bytes())
    data[32 + 16 * 128 + 32 + 100] ^= 0xFF  # inside the second frame: seqs 17..32
    first.write_bytes(bytes(data))
    for idx in jdir.glob("*.idx"):
        idx.unlink()  # the reader must walk (and check) the sealed segment when it opens
    for until in (10, 16):
        _, chunks = iter_journal(jdir, until)
        assert sum(len(c) for c in chunks) == until
    for until in (17, None):
        with pytest.raises(AuditError, match=rf"{first.name} at byte offset 2080 \(seq 17\)"):
            _, chunks = iter_journal(jdir, until)
            sum(len(c) for c in chunks)

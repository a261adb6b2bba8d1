"""``seqrisk journal verify|cat|info``: exit codes, messages and output."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journal_frames import fill
from sequencer.cli import main
from sequencer.journal import Journal
from sequencer.jsonl import record_from_json
from sequencer.registry import default_registry

_settings = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def journal_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "journal"
    with Journal.open(path, durability="none", segment_bytes=2048) as j:
        fill(j, [3, 5, 1, 8], epoch=j.next_epoch())
        fill(j, [4, 2], epoch=j.next_epoch())
    return path


def test_verify_when_intact_then_exit_0_with_summary(journal_dir, capsys):
    assert main(["journal", "verify", str(journal_dir)]) == 0
    out = capsys.readouterr().out
    assert "ok" in out and "seqs 1..23" in out and "23 records" in out
    assert "1 (1..17), 2 (18..23)" in out


@_settings
@given(data=st.data())
def test_verify_when_a_byte_is_flipped_then_exit_1_naming_segment_offset_seq(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("flip")
    with Journal.open(path, durability="none", segment_bytes=1024) as j:
        fill(j, [2, 1, 3, 1], epoch=j.next_epoch())
    segs = sorted(path.glob("*.seg"))
    seg = data.draw(st.sampled_from(segs), label="segment")
    raw = bytearray(seg.read_bytes())
    pos = data.draw(st.integers(0, len(raw) - 1), label="byte")
    raw[pos] ^= data.draw(st.integers(1, 255), label="mask")
    seg.write_bytes(bytes(raw))
    capsys_err = _run_capture(["journal", "verify", str(path)])
    code, err = capsys_err
    assert code == 1
    assert f"segment={seg.name}" in err and "offset=" in err and "seq=" in err and "reason=" in err


def _run_capture(argv):
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


def test_verify_when_run_as_a_process_then_exit_code_and_message_name_the_bad_frame(journal_dir, tmp_path):
    import shutil

    work = tmp_path / "j"
    shutil.copytree(journal_dir, work)
    first = sorted(work.glob("*.seg"))[0]
    raw = bytearray(first.read_bytes())
    raw[32 + 50] ^= 0xFF
    first.write_bytes(bytes(raw))
    proc = subprocess.run(
        [sys.executable, "-m", "sequencer.cli", "journal", "verify", str(work)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    assert f"segment={first.name} offset=0 seq=1 reason=checksum mismatch" in proc.stderr


def test_verify_when_torn_tail_then_exit_1_saying_open_cuts_it(journal_dir, tmp_path, capsys):
    import shutil

    work = tmp_path / "j"
    shutil.copytree(journal_dir, work)
    last = sorted(work.glob("*.seg"))[-1]
    last.write_bytes(last.read_bytes()[:-10])
    assert main(["journal", "verify", str(work)]) == 1
    assert "torn tail" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", ["verify", "cat", "info"])
def test_journal_command_when_dir_missing_or_not_a_journal_then_exit_2_with_clear_error(cmd, tmp_path, capsys):
    assert main(["journal", cmd, str(tmp_path / "missing")]) == 2
    assert "no such journal directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["journal", cmd, str(tmp_path / "empty")]) == 2
    assert "not a journal" in capsys.readouterr().err


def test_cat_when_range_given_then_json_lines_of_exactly_that_range(journal_dir, capsys):
    assert main(["journal", "cat", str(journal_dir), "--from", "4", "--to", "19"]) == 0
    lines = capsys.readouterr().out.splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["seq"] for e in events] == list(range(4, 20))
    assert {e["epoch"] for e in events} == {1, 2}
    assert events[0]["kind"] == "price" and events[0]["instrument"] == "BTC-USDT"
    rec = record_from_json(events[0], default_registry())
    assert int(rec["price"][0]) == 100 + 4 % 997


def test_cat_when_no_range_then_every_record(journal_dir, capsys):
    assert main(["journal", "cat", str(journal_dir)]) == 0
    seqs = [json.loads(line)["seq"] for line in capsys.readouterr().out.splitlines()]
    assert seqs == list(range(1, 24))


def test_cat_when_config_names_instruments_then_symbols_come_from_it(journal_dir, tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[instruments]]\nsymbol = "XBT"\nid = 1\ntick = "0.5"\nlot = "1"\n')
    assert main(["journal", "cat", str(journal_dir), "--to", "1", "--config", str(cfg)]) == 0
    event = json.loads(capsys.readouterr().out)
    assert event["instrument"] == "XBT" and event["price"] == "50.5"
    assert main(["journal", "cat", str(journal_dir), "--config", str(tmp_path / "nope.toml")]) == 2
    assert "config" in capsys.readouterr().err


def test_info_when_json_then_segments_seq_range_epochs_and_kinds(journal_dir, capsys):
    assert main(["journal", "info", str(journal_dir), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["first_seq"], doc["last_seq"], doc["records"]) == (1, 23, 23)
    assert doc["epochs"] == [{"epoch": 1, "first_seq": 1, "last_seq": 17}, {"epoch": 2, "first_seq": 18, "last_seq": 23}]
    assert doc["kinds"] == {"price": 23}
    segs = doc["segments"]
    assert len(segs) >= 2 and sum(s["records"] for s in segs) == 23
    assert [s["first_seq"] for s in segs] == sorted(s["first_seq"] for s in segs)
    assert doc["corrupt"] is None


def test_info_when_text_then_lists_every_segment(journal_dir, capsys):
    assert main(["journal", "info", str(journal_dir)]) == 0
    out = capsys.readouterr().out
    assert "seqs      1..23" in out and "1: 1..17, 2: 18..23" in out and "price=23" in out
    assert out.count(".seg") == len(list(journal_dir.glob("*.seg")))


def test_info_when_corrupt_mid_journal_then_exit_1_and_reports_it(journal_dir, tmp_path, capsys):
    import shutil

    work = tmp_path / "j"
    shutil.copytree(journal_dir, work)
    last = sorted(work.glob("*.seg"))[-1]
    raw = bytearray(last.read_bytes())
    raw[40] ^= 1
    last.write_bytes(bytes(raw))
    assert main(["journal", "info", str(work), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert last.name in doc["corrupt"]
    assert main(["journal", "cat", str(work)]) == 1
    captured = capsys.readouterr()
    assert last.name in captured.err
    assert len(captured.out.splitlines()) == doc["last_seq"]
    assert np.all(np.diff([json.loads(x)["seq"] for x in captured.out.splitlines()]) == 1)

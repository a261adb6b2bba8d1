"""`seqrisk config check` on the example config, the demo's built-in config, and bad files."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk_gate.demo.config import DEFAULT_CONFIG, DemoConfig, load_demo_config
from sequencer.cli import main as seqrisk

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "seqrisk.toml"


def _check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    rc = seqrisk(["config", "check", str(path)])
    out = capsys.readouterr()
    return rc, out.out + out.err


def test_check_when_complete_example_config_then_ok_and_every_section_checked(capsys: pytest.CaptureFixture[str]) -> None:
    rc = seqrisk(["config", "check", str(EXAMPLE)])
    out = capsys.readouterr().out
    assert rc == 0
    for section in ("sequencer", "instruments", "accounts", "venues", "gate", "demo"):
        assert section in out


def test_check_when_demo_builtin_config_then_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = _check(tmp_path, DEFAULT_CONFIG, capsys)
    assert rc == 0, out


@pytest.mark.parametrize(
    ("patch", "expect"),
    [
        ("[sequncer]\n", "unknown top-level key 'sequncer'"),
        ('[sequencer]\ndurability = "sometimes"\n', "sequencer.durability"),
        ("[sequencer]\nheartbeat_ms = 0\n", "heartbeat_ms"),
        ("[sequencer]\nbogus = 1\n", "bogus"),
        ("[gate]\nmax_lag_evnts = 3\n", "max_lag_evnts"),
        ("[gate]\nmax_open_orders = \"many\"\n", "gate.max_open_orders"),
        ("[gate]\nmax_position = -1\n", "gate.max_position"),
        ("[gate.accounts.acct-9]\nmax_open_orders = 1\n", "gate.accounts.acct-9"),
        ("[gate.accounts.acct-1.instruments.DOGE]\nmax_position = 1\n", "gate.accounts.acct-1.instruments.DOGE"),
        ("[gate.instruments.BTC-USDT]\nmax_open_orders = 1\n", "gate.instruments.BTC-USDT.max_open_orders"),
        ("[demo]\norders_per_s = 0\n", "demo"),
        ("[demo]\nstall_at = 1.5\n", "stall_at"),
        ("[demo]\nspeed = 3\n", "demo"),
        ('[[instruments]]\nsymbol = "X"\nid = 1\ntick = "abc"\nlot = 1\n', "instruments[0].tick"),
        ("[sequencer\n", "not valid TOML"),
    ],
)
def test_check_when_bad_key_or_value_then_exit_1_naming_the_key_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], patch: str, expect: str
) -> None:
    rc, out = _check(tmp_path, patch, capsys)
    assert rc == 1
    assert "config error" in out
    assert expect in out


def test_check_when_file_missing_then_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = seqrisk(["config", "check", str(tmp_path / "nope.toml")])
    assert rc == 1
    assert "no such config file" in capsys.readouterr().err


def test_demo_section_when_absent_then_defaults() -> None:
    assert load_demo_config({}) == DemoConfig()


@settings(max_examples=40, deadline=None)
@given(rate=st.floats(allow_nan=True, allow_infinity=True), frac=st.floats(-2, 3))
def test_demo_section_when_random_values_then_valid_or_config_error(rate: float, frac: float) -> None:
    from sequencer.config import ConfigError

    doc = {"demo": {"orders_per_s": rate, "kill_at": frac}}
    ok = 0 < rate <= 10_000 and 0 <= frac <= 1
    if ok:
        assert load_demo_config(doc).orders_per_s == rate
    else:
        with pytest.raises(ConfigError, match="demo"):
            load_demo_config(doc)

"""The one TOML configuration file: endpoints, registry, limits and budgets.

Each top-level section is owned and validated by one package; this module parses the file,
rejects unknown sections, and validates the sections the sequencer owns (``sequencer``,
``instruments``, ``accounts``, ``venues``). ``check_config`` runs every owner's validator.
Errors name the key path, e.g. ``gate.accounts.acct-1.max_lag_events: expected int``.
"""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path
from typing import Any, Literal

import msgspec

from sequencer.registry import Instrument, Registry, RegistryError, default_registry, to_decimal

__all__ = [
    "ConfigError",
    "SequencerConfig",
    "InstrumentSpec",
    "NamedId",
    "DEFAULT_ENDPOINTS",
    "SECTION_OWNERS",
    "load_document",
    "load_registry",
    "load_sequencer_config",
    "check_config",
    "convert_section",
]

DEFAULT_ENDPOINTS = {
    "ingest": "tcp://127.0.0.1:5701",
    "publish": "tcp://127.0.0.1:5702",
    "hwm": "tcp://127.0.0.1:5703",
    "replay": "tcp://127.0.0.1:5704",
}

# Top-level section -> "module:function" that validates it (imported lazily so the
# sequencer does not import the packages built on top of it).
SECTION_OWNERS: dict[str, str] = {
    "sequencer": "sequencer.config:load_sequencer_config",
    "instruments": "sequencer.config:load_registry",
    "accounts": "sequencer.config:load_registry",
    "venues": "sequencer.config:load_registry",
    "gate": "risk_gate.limits:load_gate_config",
    "demo": "risk_gate.demo.config:load_demo_config",
    "audit": "",
}


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and key path."""


class SequencerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[sequencer]``: where the service listens and how it journals."""

    ingest: str = DEFAULT_ENDPOINTS["ingest"]
    publish: str = DEFAULT_ENDPOINTS["publish"]
    hwm: str = DEFAULT_ENDPOINTS["hwm"]
    replay: str = DEFAULT_ENDPOINTS["replay"]
    journal: str = "journal"
    durability: Literal["always", "batch", "none"] = "batch"
    heartbeat_ms: float = 1.0
    sync_ms: float = 2.0
    hwm_file: str = ""
    segment_mb: int = 64
    max_batch_records: int = 4096

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat_ms <= 1000:
            raise ValueError("heartbeat_ms must be in (0, 1000]")
        if not 0 < self.sync_ms <= 1000:
            raise ValueError("sync_ms must be in (0, 1000]")
        if not 1 <= self.segment_mb <= 4096:
            raise ValueError("segment_mb must be in 1..4096")
        if not 1 <= self.max_batch_records <= 65536:
            raise ValueError("max_batch_records must be in 1..65536")


class InstrumentSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One ``[[instruments]]`` entry; decimals as strings keep them exact."""

    symbol: str
    id: int
    tick: str | int | float
    lot: str | int | float
    multiplier: str | int | float = "1"


class NamedId(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One ``[[accounts]]`` or ``[[venues]]`` entry; ``id`` defaults to position + 1."""

    name: str
    id: int | None = None


def load_document(path: str | Path | None) -> dict[str, Any]:
    """Parse a TOML config file; ``None`` gives an empty document (built-in defaults)."""
    if path is None:
        return {}
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - set(SECTION_OWNERS))
    if unknown:
        raise ConfigError(f"{p}: unknown top-level key {unknown[0]!r} (known: {', '.join(sorted(SECTION_OWNERS))})")
    return doc


def convert_section(value: Any, typ: type, path: str) -> Any:
    """``msgspec.convert`` with the error rewritten to name the key path."""
    try:
        return msgspec.convert(value, typ, strict=False)
    except msgspec.ValidationError as exc:
        msg = str(exc)
        where = ""
        if " - at `$" in msg:
            msg, _, where = msg.rpartition(" - at `$")
            where = where.rstrip("`")
        raise ConfigError(f"{path}{where}: {msg}") from None


def load_sequencer_config(doc: dict[str, Any]) -> SequencerConfig:
    """The ``[sequencer]`` section, with defaults for what is missing."""
    return convert_section(doc.get("sequencer", {}), SequencerConfig, "sequencer")


def load_registry(doc: dict[str, Any]) -> Registry:
    """The registry from ``instruments``/``accounts``/``venues``; each missing one takes its default."""
    base = default_registry()
    try:
        if "instruments" in doc:
            specs = convert_section(doc["instruments"], list[InstrumentSpec], "instruments")
            instruments = tuple(
                Instrument(
                    s.symbol,
                    s.id,
                    to_decimal(s.tick, f"instruments[{n}].tick"),
                    to_decimal(s.lot, f"instruments[{n}].lot"),
                    to_decimal(s.multiplier, f"instruments[{n}].multiplier"),
                )
                for n, s in enumerate(specs)
            )
        else:
            instruments = base.instruments
        accounts = _named_ids(doc, "accounts") if "accounts" in doc else dict(base.accounts)
        venues = _named_ids(doc, "venues") if "venues" in doc else dict(base.venues)
        return Registry(instruments, accounts, venues)
    except RegistryError as exc:
        raise ConfigError(str(exc)) from None


def _named_ids(doc: dict[str, Any], section: str) -> dict[str, int]:
    entries = convert_section(doc[section], list[NamedId], section)
    return {e.name: (e.id if e.id is not None else n + 1) for n, e in enumerate(entries)}


def check_config(path: str | Path) -> list[str]:
    """Validate every section of a config file; returns the sections checked, raises ConfigError."""
    doc = load_document(path)
    checked = []
    for section in sorted(set(SECTION_OWNERS)):
        target = SECTION_OWNERS[section]
        if not target:
            continue
        module, _, func = target.partition(":")
        getattr(importlib.import_module(module), func)(doc)
        checked.append(section)
    return checked

"""Gate configuration (the ``[gate]`` TOML section) and the table of limits in force.

Every limit is a decimal in the unit of its kind (instrument units for quantities and
positions, quote currency for notionals, events for lag, milliseconds for ages, orders for
counts and rates, basis points for the collar) and travels in ``limit`` records scaled by
10**6 (``aux1``, ``code`` = :class:`~sequencer.codes.LimitType`). A limit is set at one of
four scopes; the most specific one set wins::

    (account, instrument)  >  (0, instrument)  >  (account, 0)  >  (0, 0)

Account-wide kinds (lag and HWM budgets, gross exposure, open orders, rates) only look at
``(account, 0)`` then ``(0, 0)``. Unset means "no limit", except the three budgets, which
always have a value (built-in defaults below).
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from typing import Any, Callable, NamedTuple

import msgspec
import numpy as np
import xxhash

from sequencer.codes import LimitType
from sequencer.config import ConfigError, convert_section, load_registry
from sequencer.protocol import Kind
from sequencer.registry import Registry, RegistryError, to_decimal

__all__ = [
    "LIMIT_VALUE_SCALE",
    "DEFAULT_BUDGETS",
    "ACCOUNT_WIDE",
    "LimitSet",
    "AccountLimits",
    "GateConfig",
    "Resolved",
    "LimitTable",
    "load_gate_config",
]

LIMIT_VALUE_SCALE = 10**6
DEFAULT_BUDGETS = {"max_lag_events": 100, "max_hwm_age_ms": 250, "price_ttl_ms": 10_000}
ACCOUNT_WIDE = frozenset(
    {
        LimitType.MAX_LAG_EVENTS,
        LimitType.MAX_HWM_AGE_MS,
        LimitType.MAX_GROSS_EXPOSURE,
        LimitType.MAX_OPEN_ORDERS,
        LimitType.RATE_PER_SEC,
        LimitType.RATE_PER_MIN,
    }
)
_Num = str | int | float


class LimitSet(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Budgets and limits at one scope; ``None`` = not set here (a wider scope applies)."""

    max_lag_events: int | None = None
    max_hwm_age_ms: _Num | None = None
    price_ttl_ms: _Num | None = None
    max_order_qty: _Num | None = None
    max_order_notional: _Num | None = None
    max_position: _Num | None = None
    max_gross_exposure: _Num | None = None
    max_open_orders: int | None = None
    rate_per_sec: _Num | None = None
    rate_per_min: _Num | None = None
    price_collar_bps: _Num | None = None
    restricted: bool | None = None


class AccountLimits(LimitSet, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """``[gate.accounts.NAME]``: the account's limits, restricted instruments, per-instrument limits."""

    restricted_instruments: list[str] = []
    instruments: dict[str, LimitSet] = {}


class GateConfig(LimitSet, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """The ``[gate]`` section: global budgets and limits, endpoints, audit trail switches.

    Endpoints left empty take the ``[sequencer]`` section's (the gate connects where the
    sequencer listens).
    """

    name: str = "gate"
    ingest: str = ""
    publish: str = ""
    hwm: str = ""
    replay: str = ""
    hwm_file: str = ""
    publish_approvals: bool = True
    publish_refusals: bool = True
    decision_log: str = ""
    max_drain_frames: int = 64
    restricted_instruments: list[str] = []
    instruments: dict[str, LimitSet] = {}
    accounts: dict[str, AccountLimits] = {}


_FIELD_TYPE = {
    "max_lag_events": LimitType.MAX_LAG_EVENTS,
    "max_hwm_age_ms": LimitType.MAX_HWM_AGE_MS,
    "price_ttl_ms": LimitType.PRICE_TTL_MS,
    "max_order_qty": LimitType.MAX_ORDER_QTY,
    "max_order_notional": LimitType.MAX_ORDER_NOTIONAL,
    "max_position": LimitType.MAX_POSITION,
    "max_gross_exposure": LimitType.MAX_GROSS_EXPOSURE,
    "max_open_orders": LimitType.MAX_OPEN_ORDERS,
    "rate_per_sec": LimitType.RATE_PER_SEC,
    "rate_per_min": LimitType.RATE_PER_MIN,
    "price_collar_bps": LimitType.PRICE_COLLAR_BPS,
    "restricted": LimitType.RESTRICTED,
}


def _scaled(value: Any, path: str) -> int:
    if isinstance(value, bool):
        return LIMIT_VALUE_SCALE if value else 0
    try:
        d = to_decimal(value, path) * LIMIT_VALUE_SCALE
    except RegistryError as exc:
        raise ConfigError(str(exc)) from None
    if d < 0:
        raise ConfigError(f"{path}: must be >= 0, got {value}")
    if d != d.to_integral_value():
        raise ConfigError(f"{path}: {value} has more than 6 decimal places")
    return int(d)


def _collect(ls: LimitSet, account: int, instrument: int, path: str, out: dict[tuple[int, int, int], int]) -> None:
    for fname, lt in _FIELD_TYPE.items():
        value = getattr(ls, fname)
        if value is None:
            continue
        if instrument and lt in ACCOUNT_WIDE:
            raise ConfigError(f"{path}.{fname}: is account-wide; it cannot be set per instrument")
        out[(int(lt), account, instrument)] = _scaled(value, f"{path}.{fname}")


def _instrument_id(reg: Registry, symbol: str, path: str) -> int:
    try:
        return reg.instrument(symbol).id
    except RegistryError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _config_values(cfg: GateConfig, reg: Registry) -> dict[tuple[int, int, int], int]:
    values: dict[tuple[int, int, int], int] = {}
    _collect(cfg, 0, 0, "gate", values)
    for fname, default in DEFAULT_BUDGETS.items():
        values.setdefault((int(_FIELD_TYPE[fname]), 0, 0), default * LIMIT_VALUE_SCALE)
    restricted = int(LimitType.RESTRICTED)
    for n, sym in enumerate(cfg.restricted_instruments):
        values[(restricted, 0, _instrument_id(reg, sym, f"gate.restricted_instruments[{n}]"))] = LIMIT_VALUE_SCALE
    for sym, ls in cfg.instruments.items():
        _collect(ls, 0, _instrument_id(reg, sym, f"gate.instruments.{sym}"), f"gate.instruments.{sym}", values)
    for name, al in cfg.accounts.items():
        path = f"gate.accounts.{name}"
        try:
            aid = reg.account_id(name)
        except RegistryError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        _collect(al, aid, 0, path, values)
        for n, sym in enumerate(al.restricted_instruments):
            iid = _instrument_id(reg, sym, f"{path}.restricted_instruments[{n}]")
            values[(restricted, aid, iid)] = LIMIT_VALUE_SCALE
        for sym, ls in al.instruments.items():
            ipath = f"{path}.instruments.{sym}"
            _collect(ls, aid, _instrument_id(reg, sym, ipath), ipath, values)
    return values


def _check_tables(section: Any) -> None:
    """Convert the keyed sub-tables one by one so an error names the key (msgspec says ``[...]``)."""
    if not isinstance(section, dict):
        return
    for sym, sub in _table(section, "instruments", "gate").items():
        convert_section(sub, LimitSet, f"gate.instruments.{sym}")
    for name, sub in _table(section, "accounts", "gate").items():
        path = f"gate.accounts.{name}"
        if isinstance(sub, dict):
            for sym, isub in _table(sub, "instruments", path).items():
                convert_section(isub, LimitSet, f"{path}.instruments.{sym}")
            convert_section({k: v for k, v in sub.items() if k != "instruments"}, AccountLimits, path)


def _table(section: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    value = section.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{path}.{key}: expected a table, got {type(value).__name__}")
    return value


def load_gate_config(doc: dict[str, Any], registry: Registry | None = None) -> GateConfig:
    """Validate the ``[gate]`` section of a parsed config document (names against the registry)."""
    section = doc.get("gate", {})
    _check_tables(section)
    cfg = convert_section(section, GateConfig, "gate")
    if not cfg.name:
        raise ConfigError("gate.name: must not be empty")
    if not 1 <= cfg.max_drain_frames <= 1 << 16:
        raise ConfigError("gate.max_drain_frames: must be in 1..65536")
    _config_values(cfg, registry if registry is not None else load_registry(doc))
    return cfg


class Resolved(NamedTuple):
    """The limits in force for one (account, instrument), in fixed point; ``-1`` = no limit."""

    max_lag_events: int
    max_hwm_age_ns: int
    price_ttl_ns: int
    max_qty_lots: int
    max_notional_units: int  # price ticks x lots (one unit = tick x lot x multiplier)
    max_position_lots: int
    max_gross_exposure: float  # quote currency; -1.0 = none
    max_open_orders: int
    rate_per_sec: float  # -1.0 = none
    rate_per_min: float
    collar_bps_e6: int
    restricted: bool


def _floor_div(value_e6: int, step: Decimal) -> int:
    return int((Decimal(value_e6) / LIMIT_VALUE_SCALE / step).to_integral_value(rounding=ROUND_FLOOR))


class LimitTable:
    """Limits in force: the config, then sequenced ``limit`` events applied in seq order.

    ``resolved(account, instrument)`` is cached until the next limit event.
    """

    def __init__(self, config: GateConfig | None = None, registry: Registry | None = None) -> None:
        from sequencer.registry import default_registry

        self.registry = registry if registry is not None else default_registry()
        self.config = config if config is not None else GateConfig()
        self._values: dict[tuple[int, int, int], int] = _config_values(self.config, self.registry)
        self._cache: dict[int, Resolved] = {}
        self._budgets: dict[int, tuple[int, int]] = {}
        self._ttls: dict[int, list[int]] = {}
        self.changes = 0  # limit events applied
        # Called after every change of a value (set, load_dict): the check kernel drops the
        # limit rows it loaded, so its hot path needs no "changed?" test.
        self.on_change: list[Callable[[], None]] = []
        self.last_change_seq = 0
        self.ignored = 0  # limit events with a code this build does not know

    def value(self, lt: LimitType, account: int, instrument: int) -> int | None:
        """The scaled (x10**6) value in force for ``lt``, or ``None`` when unset."""
        v = self._values
        t = int(lt)
        if lt in ACCOUNT_WIDE:
            scopes: tuple[tuple[int, int], ...] = ((account, 0), (0, 0))
        else:
            scopes = ((account, instrument), (0, instrument), (account, 0), (0, 0))
        for a, i in scopes:
            got = v.get((t, a, i))
            if got is not None:
                return got
        return None

    def set(self, lt: LimitType, account: int, instrument: int, value_e6: int, seq: int = 0) -> None:
        """Set one limit (what a ``limit`` event does)."""
        self._values[(int(lt), account, instrument)] = int(value_e6)
        self._cache.clear()
        self._budgets.clear()
        self._ttls.clear()
        self.changes += 1
        self.last_change_seq = seq
        for hook in self.on_change:
            hook()

    def apply(self, records: np.ndarray) -> int:
        """Apply the ``limit`` records of a batch in seq order; returns how many were applied."""
        limits = records[records["kind"] == Kind.LIMIT]
        n = 0
        for seq, code, account, instrument, aux1 in zip(
            limits["seq"].tolist(), limits["code"].tolist(), limits["account"].tolist(),
            limits["instrument"].tolist(), limits["aux1"].tolist(),
        ):
            try:
                lt = LimitType(code)
            except ValueError:
                self.ignored += 1
                continue
            self.set(lt, account, instrument, aux1, seq)
            n += 1
        return n

    def budgets(self, account: int) -> tuple[int, int]:
        """``(max_lag_events, max_hwm_age_ns)`` for ``account`` (0 = the global budgets)."""
        got = self._budgets.get(account)
        if got is None:
            lag = self.value(LimitType.MAX_LAG_EVENTS, account, 0) or 0
            age = self.value(LimitType.MAX_HWM_AGE_MS, account, 0) or 0
            # ms x 10**6 is exactly nanoseconds.
            got = self._budgets[account] = (lag // LIMIT_VALUE_SCALE, age)
        return got

    def price_ttls(self, account: int) -> list[int]:
        """Price TTL in ns for ``account`` per instrument id (index 0 unused), cached until the next change."""
        got = self._ttls.get(account)
        if got is None:
            ids = [i.id for i in self.registry.instruments]
            got = [0] * (max(ids, default=0) + 1)
            for j in ids:
                got[j] = self.resolved(account, j).price_ttl_ns
            self._ttls[account] = got
        return got

    def resolved(self, account: int, instrument: int) -> Resolved:
        """The fixed-point limits for ``(account, instrument)`` (instrument must be registered)."""
        key = (account << 32) | instrument
        got = self._cache.get(key)
        if got is None:
            got = self._cache[key] = self._resolve(account, instrument)
        return got

    def _resolve(self, account: int, instrument: int) -> Resolved:
        inst = self.registry.instrument(instrument)
        unit = inst.tick * inst.lot * inst.multiplier

        def get(lt: LimitType) -> int | None:
            return self.value(lt, account, instrument)

        def lots(lt: LimitType) -> int:
            v = get(lt)
            return -1 if v is None else _floor_div(v, inst.lot)

        def rate(lt: LimitType) -> float:
            v = get(lt)
            return -1.0 if v is None else v / LIMIT_VALUE_SCALE

        notional = get(LimitType.MAX_ORDER_NOTIONAL)
        gross = get(LimitType.MAX_GROSS_EXPOSURE)
        max_open = get(LimitType.MAX_OPEN_ORDERS)
        collar = get(LimitType.PRICE_COLLAR_BPS)
        # Values are ms x 10**6, which is exactly nanoseconds.
        return Resolved(
            max_lag_events=(get(LimitType.MAX_LAG_EVENTS) or 0) // LIMIT_VALUE_SCALE,
            max_hwm_age_ns=get(LimitType.MAX_HWM_AGE_MS) or 0,
            price_ttl_ns=get(LimitType.PRICE_TTL_MS) or 0,
            max_qty_lots=lots(LimitType.MAX_ORDER_QTY),
            max_notional_units=-1 if notional is None else _floor_div(notional, unit),
            max_position_lots=lots(LimitType.MAX_POSITION),
            max_gross_exposure=-1.0 if gross is None else gross / LIMIT_VALUE_SCALE,
            max_open_orders=-1 if max_open is None else max_open // LIMIT_VALUE_SCALE,
            rate_per_sec=rate(LimitType.RATE_PER_SEC),
            rate_per_min=rate(LimitType.RATE_PER_MIN),
            collar_bps_e6=-1 if collar is None else collar,
            restricted=bool(get(LimitType.RESTRICTED)),
        )

    def items(self) -> list[tuple[str, int, int, str]]:
        """Every limit set, as ``(limit name, account id, instrument id, decimal value)``, sorted."""
        return [
            (LimitType(t).name.lower(), a, i, str(Decimal(v) / LIMIT_VALUE_SCALE))
            for (t, a, i), v in sorted(self._values.items())
        ]

    def state_hash(self) -> str:
        """Stable hash of every value set (order independent)."""
        h = xxhash.xxh3_64()
        for (t, a, i), v in sorted(self._values.items()):
            h.update(f"{t},{a},{i},{v};".encode())
        return h.hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """Serializable form (for snapshots): the values and counters."""
        return {
            "values": [[t, a, i, v] for (t, a, i), v in sorted(self._values.items())],
            "changes": self.changes,
            "last_change_seq": self.last_change_seq,
            "ignored": self.ignored,
        }

    def load_dict(self, data: dict[str, Any]) -> None:
        """Replace the values with a :meth:`to_dict` form."""
        self._values = {(int(t), int(a), int(i)): int(v) for t, a, i, v in data["values"]}
        self._cache.clear()
        self._budgets.clear()
        self._ttls.clear()
        self.changes = int(data["changes"])
        self.last_change_seq = int(data["last_change_seq"])
        self.ignored = int(data["ignored"])
        for hook in self.on_change:
            hook()

"""Instrument, account and venue registry: names to small integer ids, decimals to fixed point.

Prices travel as integer *ticks* and quantities as integer *lots* of their instrument.
Converting a decimal that is not a whole number of ticks or lots is an error, never a rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Iterable

import numpy as np

__all__ = [
    "Instrument",
    "Registry",
    "RegistryError",
    "MAX_ACCOUNT_ID",
    "MAX_VENUE_ID",
    "MAX_INSTRUMENT_ID",
    "to_decimal",
    "default_registry",
]

MAX_ACCOUNT_ID = 65535
MAX_VENUE_ID = 65535
MAX_INSTRUMENT_ID = 65535


class RegistryError(ValueError):
    """A name, id or decimal value the registry cannot accept; the message names it."""


def to_decimal(value: object, what: str) -> Decimal:
    """Parse ``value`` (str, int or Decimal; a float goes through its shortest repr) exactly."""
    if isinstance(value, bool):
        raise RegistryError(f"{what}: expected a decimal number, got {value!r}")
    try:
        d = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)  # type: ignore[arg-type]
    except (InvalidOperation, TypeError, ValueError):
        raise RegistryError(f"{what}: {value!r} is not a decimal number") from None
    if not d.is_finite():
        raise RegistryError(f"{what}: {value!r} is not finite")
    return d


def _whole_multiple(d: Decimal, step: Decimal, what: str, step_name: str) -> int:
    q = d / step
    if q != q.to_integral_value():
        raise RegistryError(f"{what}: {d} is not a multiple of the {step_name} {step}")
    return int(q)


@dataclass(frozen=True)
class Instrument:
    """One tradable instrument and its fixed-point scales."""

    symbol: str
    id: int
    tick: Decimal
    lot: Decimal
    multiplier: Decimal = Decimal(1)

    def to_ticks(self, price: object, what: str = "price") -> int:
        """Decimal price -> integer ticks; raises if not on the tick grid."""
        return _whole_multiple(to_decimal(price, what), self.tick, f"{what} for {self.symbol}", "tick size")

    def to_lots(self, qty: object, what: str = "qty") -> int:
        """Decimal quantity -> integer lots; raises if not a whole number of lots."""
        return _whole_multiple(to_decimal(qty, what), self.lot, f"{what} for {self.symbol}", "lot size")

    def price_str(self, ticks: int) -> str:
        """Integer ticks -> decimal string with the tick's number of places."""
        return _fmt(Decimal(int(ticks)) * self.tick, self.tick)

    def qty_str(self, lots: int) -> str:
        """Integer lots -> decimal string with the lot's number of places."""
        return _fmt(Decimal(int(lots)) * self.lot, self.lot)

    def notional(self, ticks: int, lots: int) -> Decimal:
        """Exact quote-currency notional of ``lots`` at ``ticks``."""
        return Decimal(int(ticks)) * self.tick * Decimal(int(lots)) * self.lot * self.multiplier

    @property
    def unit_notional(self) -> float:
        """Quote-currency value of one tick times one lot (for float exposure sums)."""
        return float(self.tick * self.lot * self.multiplier)


def _fmt(value: Decimal, step: Decimal) -> str:
    places = max(0, -step.normalize().as_tuple().exponent)  # type: ignore[operator]
    return f"{value:.{places}f}"


@dataclass(frozen=True)
class Registry:
    """The id maps every record is interpreted with."""

    instruments: tuple[Instrument, ...]
    accounts: dict[str, int]
    venues: dict[str, int]
    _by_symbol: dict[str, Instrument] = field(init=False, repr=False, compare=False)
    _by_id: dict[int, Instrument] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_ids("instrument", [(i.symbol, i.id) for i in self.instruments], MAX_INSTRUMENT_ID)
        _check_ids("account", list(self.accounts.items()), MAX_ACCOUNT_ID)
        _check_ids("venue", list(self.venues.items()), MAX_VENUE_ID)
        for inst in self.instruments:
            for name in ("tick", "lot", "multiplier"):
                if getattr(inst, name) <= 0:
                    raise RegistryError(f"instrument {inst.symbol}: {name} must be positive, got {getattr(inst, name)}")
        object.__setattr__(self, "_by_symbol", {i.symbol: i for i in self.instruments})
        object.__setattr__(self, "_by_id", {i.id: i for i in self.instruments})

    def instrument(self, key: str | int) -> Instrument:
        """Look an instrument up by symbol or id."""
        found = self._by_id.get(key) if isinstance(key, int) else self._by_symbol.get(key)
        if found is None:
            raise RegistryError(f"unknown instrument {key!r}")
        return found

    def account_id(self, name: str) -> int:
        """Id of a registered account name."""
        return _lookup("account", self.accounts, name)

    def venue_id(self, name: str) -> int:
        """Id of a registered venue name."""
        return _lookup("venue", self.venues, name)

    def account_name(self, aid: int) -> str:
        """Name of an account id (``""`` for 0, meaning none / all)."""
        return _reverse("account", self.accounts, aid)

    def venue_name(self, vid: int) -> str:
        """Name of a venue id (``""`` for 0)."""
        return _reverse("venue", self.venues, vid)

    @property
    def max_account_id(self) -> int:
        return max(self.accounts.values(), default=0)

    @property
    def max_venue_id(self) -> int:
        return max(self.venues.values(), default=0)

    @property
    def max_instrument_id(self) -> int:
        return max((i.id for i in self.instruments), default=0)

    def valid_masks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boolean arrays ``valid[id]`` for accounts, instruments and venues (for kernels)."""
        acc = np.zeros(self.max_account_id + 1, dtype=np.bool_)
        acc[list(self.accounts.values())] = True
        ins = np.zeros(self.max_instrument_id + 1, dtype=np.bool_)
        ins[[i.id for i in self.instruments]] = True
        ven = np.zeros(self.max_venue_id + 1, dtype=np.bool_)
        ven[list(self.venues.values())] = True
        return acc, ins, ven

    def unit_notionals(self) -> np.ndarray:
        """float64 array ``[instrument_id] -> value of one tick x one lot`` (0 where unknown)."""
        out = np.zeros(self.max_instrument_id + 1, dtype=np.float64)
        for inst in self.instruments:
            out[inst.id] = inst.unit_notional
        return out


def _check_ids(what: str, pairs: Iterable[tuple[str, int]], max_id: int) -> None:
    seen_names: set[str] = set()
    seen_ids: dict[int, str] = {}
    for name, ident in pairs:
        if not name:
            raise RegistryError(f"{what} name must not be empty")
        if name in seen_names:
            raise RegistryError(f"{what} {name!r} is registered twice")
        if not isinstance(ident, int) or isinstance(ident, bool) or not 1 <= ident <= max_id:
            raise RegistryError(f"{what} {name!r}: id must be an integer in 1..{max_id}, got {ident!r}")
        if ident in seen_ids:
            raise RegistryError(f"{what} id {ident} is used by both {seen_ids[ident]!r} and {name!r}")
        seen_names.add(name)
        seen_ids[ident] = name


def _lookup(what: str, table: dict[str, int], name: str) -> int:
    try:
        return table[name]
    except KeyError:
        raise RegistryError(f"unknown {what} {name!r} (known: {', '.join(sorted(table))})") from None


def _reverse(what: str, table: dict[str, int], ident: int) -> str:
    if ident == 0:
        return ""
    for name, i in table.items():
        if i == ident:
            return name
    raise RegistryError(f"unknown {what} id {ident}")


def default_registry() -> Registry:
    """The built-in registry used without ``--config`` (and by the demo); see docs/config.md."""
    return Registry(
        instruments=(
            Instrument("BTC-USDT", 1, Decimal("0.01"), Decimal("0.0001")),
            Instrument("ETH-USDT", 2, Decimal("0.01"), Decimal("0.001")),
            Instrument("EUR-USD", 3, Decimal("0.00001"), Decimal("1000")),
        ),
        accounts={"acct-1": 1, "acct-2": 2},
        venues={"sim-1": 1, "sim-2": 2},
    )

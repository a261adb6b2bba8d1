"""The JSON-lines form of events, for humans and tools (``journal cat``, ``submit``).

One JSON object per event. Prices and quantities are decimal strings in the instrument's
units; ids appear by name. ``docs/protocol.md`` lists every key per kind.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import numpy as np

from sequencer.codes import LimitType, RefuseReason, refuse_reason_name
from sequencer.protocol import KIND_BY_NAME, KIND_NAMES, RECORD_DTYPE, TEXT_SIZE, Kind, Side
from sequencer.registry import Registry, RegistryError, to_decimal

__all__ = ["JsonlError", "record_to_json", "records_to_jsonl", "record_from_json", "LIMIT_VALUE_SCALE"]

LIMIT_VALUE_SCALE = 10**6

_SIDE_NAMES = {Side.NONE: None, Side.BUY: "buy", Side.SELL: "sell"}
_SIDE_BY_NAME = {"buy": Side.BUY, "sell": Side.SELL}
_ORDER_KINDS = (Kind.NEW_ORDER, Kind.REFUSED)
_TEXT_REASON_KINDS = (Kind.REJECT, Kind.HALT, Kind.RESUME, Kind.REDUCE_ONLY)
_STAMP_KEYS = {"seq", "epoch", "ts_ns", "producer"}
_KNOWN_KEYS = {
    "kind", "account", "instrument", "venue", "order_id", "side", "qty", "price", "trade_id",
    "gate_applied_seq", "gate_hwm", "reason", "detail", "limit", "value", "producer_seq",
} | _STAMP_KEYS

_json_encoder = msgspec.json.Encoder()


class JsonlError(ValueError):
    """A JSON event that cannot become a record; ``field`` names the offending key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _text(raw: bytes) -> str:
    return raw.rstrip(b"\0").decode("utf-8", errors="replace")


def record_to_json(rec: np.void, reg: Registry) -> dict[str, Any]:
    """One record as a JSON-ready dict (keys in protocol order, absent keys omitted)."""
    kind = int(rec["kind"])
    iid = int(rec["instrument"])
    inst = None
    if iid:
        try:
            inst = reg.instrument(iid)
        except RegistryError:
            inst = None
    out: dict[str, Any] = {
        "seq": int(rec["seq"]),
        "epoch": int(rec["epoch"]),
        "ts_ns": int(rec["ts_ns"]),
        "kind": KIND_NAMES.get(kind, f"unknown({kind})"),
    }
    if rec["account"]:
        out["account"] = _name_or_id(reg.account_name, int(rec["account"]))
    if iid:
        out["instrument"] = inst.symbol if inst else iid
    if rec["venue"]:
        out["venue"] = _name_or_id(reg.venue_name, int(rec["venue"]))
    if rec["order_id"]:
        out["order_id"] = int(rec["order_id"])
    side = _SIDE_NAMES.get(int(rec["side"]))
    if side:
        out["side"] = side
    if kind == Kind.LIMIT:
        out["limit"] = _limit_name(int(rec["code"]))
        out["value"] = str(Decimal(int(rec["aux1"])) / LIMIT_VALUE_SCALE)
    else:
        if rec["qty"] or kind in (Kind.NEW_ORDER, Kind.REFUSED, Kind.FILL, Kind.POSITION_RESET):
            out["qty"] = inst.qty_str(int(rec["qty"])) if inst else str(int(rec["qty"]))
        if rec["price"] or kind in (Kind.FILL, Kind.PRICE):
            out["price"] = inst.price_str(int(rec["price"])) if inst else str(int(rec["price"]))
    if kind == Kind.FILL:
        out["trade_id"] = int(rec["aux1"])
    if kind in _ORDER_KINDS:
        out["gate_applied_seq"] = int(rec["aux1"])
        out["gate_hwm"] = int(rec["aux2"])
    if kind == Kind.REFUSED:
        out["reason"] = refuse_reason_name(int(rec["code"]))
        out["detail"] = _text(bytes(rec["text"]))
    elif kind in _TEXT_REASON_KINDS:
        out["reason"] = _text(bytes(rec["text"]))
    out["producer"] = int(rec["producer"])
    out["producer_seq"] = int(rec["producer_seq"])
    return out


def records_to_jsonl(records: np.ndarray, reg: Registry) -> bytes:
    """Many records as JSON lines (each line ends with ``\\n``)."""
    return b"".join(_json_encoder.encode(record_to_json(r, reg)) + b"\n" for r in records)


def _name_or_id(fn: Any, ident: int) -> str | int:
    try:
        return fn(ident)
    except RegistryError:
        return ident


def _limit_name(code: int) -> str:
    try:
        return LimitType(code).name.lower()
    except ValueError:
        return f"unknown({code})"


def record_from_json(obj: Any, reg: Registry) -> np.ndarray:
    """Parse one JSON event into a one-element unstamped record array; raises :class:`JsonlError`.

    ``seq``, ``epoch``, ``ts_ns`` and ``producer`` are accepted and ignored: the sequencer
    assigns them (so ``journal cat`` output can be resubmitted).
    """
    if not isinstance(obj, dict):
        raise JsonlError("event", f"expected a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - _KNOWN_KEYS)
    if unknown:
        raise JsonlError(unknown[0], "unknown key")
    rec = np.zeros(1, dtype=RECORD_DTYPE)
    kind = _kind(obj)
    rec["kind"] = kind
    inst = None
    if "instrument" in obj:
        inst = _registry_call("instrument", reg.instrument, obj["instrument"])
        rec["instrument"] = inst.id
    if obj.get("account") not in (None, ""):
        rec["account"] = _registry_call("account", reg.account_id, obj["account"])
    if obj.get("venue") not in (None, ""):
        rec["venue"] = _registry_call("venue", reg.venue_id, obj["venue"])
    rec["order_id"] = _int(obj, "order_id", 0)
    rec["producer_seq"] = _int(obj, "producer_seq", 0)
    if "side" in obj:
        side = _SIDE_BY_NAME.get(obj["side"]) if isinstance(obj["side"], str) else None
        if side is None:
            raise JsonlError("side", f"must be \"buy\" or \"sell\", got {obj['side']!r}")
        rec["side"] = side
    for key in ("qty", "price"):
        if key in obj:
            if inst is None:
                raise JsonlError(key, "needs an instrument to convert to fixed point")
            conv = inst.to_lots if key == "qty" else inst.to_ticks
            rec[key] = _registry_call(key, conv, obj[key], key)
    _kind_specific(obj, kind, rec)
    return rec


def _kind(obj: dict[str, Any]) -> Kind:
    name = obj.get("kind")
    if name not in KIND_BY_NAME:
        raise JsonlError("kind", f"{name!r} is not one of {', '.join(KIND_BY_NAME)}")
    return KIND_BY_NAME[name]


def _kind_specific(obj: dict[str, Any], kind: Kind, rec: np.ndarray) -> None:
    if "trade_id" in obj:
        _only(kind, (Kind.FILL,), "trade_id")
        rec["aux1"] = _int(obj, "trade_id", 0)
    for key, aux in (("gate_applied_seq", "aux1"), ("gate_hwm", "aux2")):
        if key in obj:
            _only(kind, _ORDER_KINDS, key)
            rec[aux] = _int(obj, key, 0)
    if kind == Kind.REFUSED:
        name = obj.get("reason")
        if name not in RefuseReason.__members__:
            raise JsonlError("reason", f"{name!r} is not a RefuseReason ({', '.join(RefuseReason.__members__)})")
        rec["code"] = RefuseReason[name]
        rec["text"] = _encode_text(obj.get("detail", ""), "detail")
    elif "reason" in obj:
        _only(kind, _TEXT_REASON_KINDS, "reason")
        rec["text"] = _encode_text(obj["reason"], "reason")
    if kind == Kind.LIMIT:
        name = obj.get("limit")
        if not isinstance(name, str) or name.upper() not in LimitType.__members__:
            raise JsonlError("limit", f"{name!r} is not one of {', '.join(m.lower() for m in LimitType.__members__)}")
        rec["code"] = LimitType[name.upper()]
        if "value" not in obj:
            raise JsonlError("value", "a limit event needs a value")
        value = _registry_call("value", to_decimal, obj["value"], "value") * LIMIT_VALUE_SCALE
        if value != value.to_integral_value():
            raise JsonlError("value", f"{obj['value']} has more than 6 decimal places")
        rec["aux1"] = int(value)
    elif "limit" in obj or "value" in obj:
        raise JsonlError("limit" if "limit" in obj else "value", f"only allowed on limit events, not {KIND_NAMES[kind]}")


def _only(kind: Kind, kinds: tuple[Kind, ...], key: str) -> None:
    if kind not in kinds:
        raise JsonlError(key, f"not allowed on {KIND_NAMES[kind]} events")


def _int(obj: dict[str, Any], key: str, default: int) -> int:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise JsonlError(key, f"must be an integer, got {value!r}")
    if not -(2**63) <= value < 2**63:
        raise JsonlError(key, f"{value} does not fit in 64 bits")
    return value


def _encode_text(value: Any, key: str) -> bytes:
    if not isinstance(value, str):
        raise JsonlError(key, f"must be a string, got {value!r}")
    raw = value.encode("utf-8")
    if len(raw) > TEXT_SIZE or b"\0" in raw:
        raise JsonlError(key, f"must be at most {TEXT_SIZE} UTF-8 bytes without NUL, got {len(raw)}")
    return raw


def _registry_call(field: str, fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except RegistryError as exc:
        raise JsonlError(field, str(exc)) from None

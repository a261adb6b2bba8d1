"""Result rows: the schema area modules return, checked and completed by the harness.

An area module's ``run(ctx)`` returns a list of dicts with the keys in :data:`REQUIRED` and
optionally :data:`OPTIONAL`. The harness checks each one (a malformed row becomes an error
row naming what was wrong, the module's other rows are kept), fills ``reference_value`` from
a row of the same run when only the reference's name is given, and adds ``ratio``,
``target_met``, ``module`` and ``status``.
"""

from __future__ import annotations

import math
from typing import Any

from benchmarks._targets import ratio, target_met

__all__ = ["REQUIRED", "OPTIONAL", "ResultError", "check_row", "error_row", "complete_rows"]

REQUIRED = ("name", "value", "unit", "higher_is_better")
OPTIONAL = ("reference", "reference_value", "target", "min", "max", "runs", "warmup", "note")
_NUMERIC = ("value", "reference_value", "min", "max")


class ResultError(ValueError):
    """A result row that does not follow the schema."""


def _number(row: dict[str, Any], key: str) -> float | None:
    v = row.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        try:
            v = float(v)  # numpy scalars
        except (TypeError, ValueError):
            raise ResultError(f"{key!r} must be a number, got {type(v).__name__}") from None
    v = float(v)
    if not math.isfinite(v):
        raise ResultError(f"{key!r} must be finite, got {v}")
    return v


def check_row(row: object, module: str) -> dict[str, Any]:
    """A checked copy of one row in the harness's form; raises :class:`ResultError`."""
    if not isinstance(row, dict):
        raise ResultError(f"a result must be a dict, got {type(row).__name__}")
    missing = [k for k in REQUIRED if k not in row]
    if missing:
        raise ResultError(f"result {row.get('name', '?')!r} lacks {', '.join(missing)}")
    name = row["name"]
    if not isinstance(name, str) or not name.strip():
        raise ResultError("'name' must be a non-empty string")
    out: dict[str, Any] = {"name": name, "module": module}
    try:
        for key in _NUMERIC:
            out[key] = _number(row, key)
    except ResultError as exc:
        raise ResultError(f"result {name!r}: {exc}") from None
    out["unit"] = str(row["unit"])
    if not isinstance(row["higher_is_better"], bool):
        raise ResultError(f"result {name!r}: 'higher_is_better' must be a bool")
    out["higher_is_better"] = row["higher_is_better"]
    note = str(row.get("note") or "")
    if out["value"] is None and not note:
        # A row without a value is a skip (e.g. an optional peer not installed); say why.
        raise ResultError(f"result {name!r} has no value and no note saying why")
    out["reference"] = str(row["reference"]) if row.get("reference") else None
    if out["reference_value"] is not None and out["reference"] is None:
        raise ResultError(f"result {name!r} has a reference_value but no reference name")
    out["target"] = str(row["target"]) if row.get("target") else None
    out["runs"] = int(row["runs"]) if row.get("runs") is not None else None
    out["warmup"] = int(row["warmup"]) if row.get("warmup") is not None else None
    out["note"] = note
    extra = {k: v for k, v in row.items() if k not in REQUIRED and k not in OPTIONAL}
    if extra:
        out["extra"] = extra
    out["status"] = "ok" if out["value"] is not None else "skipped"
    out["error"] = None
    return out


def error_row(module: str, name: str, message: str) -> dict[str, Any]:
    """A row saying a module (or one of its results) failed; nothing measured."""
    return {
        "name": name, "module": module, "value": None, "unit": "", "higher_is_better": True,
        "reference": None, "reference_value": None, "target": None, "min": None, "max": None,
        "runs": None, "warmup": None, "note": "", "status": "error", "error": message,
        "ratio": None, "target_met": None,
    }


def complete_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill reference values from same-run rows by name, then ratio and target_met."""
    by_name = {r["name"]: r for r in rows if r["status"] == "ok"}
    for r in rows:
        if r["status"] == "error":
            continue
        if r["reference"] and r["reference_value"] is None and r["reference"] in by_name:
            ref = by_name[r["reference"]]
            if ref["unit"] == r["unit"]:
                r["reference_value"] = ref["value"]
        r["ratio"] = ratio(r["value"], r["reference_value"], r["higher_is_better"])
        r["target_met"] = target_met(r["target"], r["value"], r["unit"])
    return rows

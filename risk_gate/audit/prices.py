"""The prices file of ``seqrisk audit --prices``: mid prices per instrument over time.

Format (CSV, UTF-8, header row required)::

    ts_ns,instrument,mid
    1704164645000000000,BTC-USDT,42000.50
    2024-01-02T03:04:06Z,BTC-USDT,42001.00

The first column holds either integer nanoseconds since the Unix epoch or an ISO 8601 time
(no zone = UTC); its header may be ``ts_ns``, ``time``, ``ts`` or ``timestamp``. Then the
instrument by symbol (as in the registry) and the mid as a positive decimal. Rows need not
be sorted; for equal times of one instrument the later row wins. Any bad row stops the
audit with an error naming the file, line number and what is wrong.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from risk_gate.audit.times import TimeParseError, parse_time_ns
from sequencer.registry import Registry, RegistryError

__all__ = ["PricesError", "PricePath", "load_prices", "TIME_HEADERS"]

TIME_HEADERS = ("ts_ns", "time", "ts", "timestamp")


class PricesError(ValueError):
    """A prices file that cannot be used; the message names the file and line."""


class PricePath:
    """Mid prices of one instrument: ``ts`` (int64 ns, sorted) and ``mid`` (float64)."""

    __slots__ = ("ts", "mid")

    def __init__(self, ts: np.ndarray, mid: np.ndarray) -> None:
        order = np.argsort(ts, kind="stable")
        self.ts = np.ascontiguousarray(ts[order], dtype=np.int64)
        self.mid = np.ascontiguousarray(mid[order], dtype=np.float64)

    def asof(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(mid, known)``: the last mid at or before each ``t``; ``known`` is False where
        ``t`` is before the first row or after the last one (the path does not cover it)."""
        t = np.asarray(t, dtype=np.int64)
        idx = np.searchsorted(self.ts, t, side="right") - 1
        known = (idx >= 0) & (t <= self.ts[-1])
        mid = np.full(len(t), np.nan)
        mid[known] = self.mid[idx[known]]
        return mid, known


def load_prices(path: str | Path, registry: Registry) -> dict[int, PricePath]:
    """Parse a prices CSV into ``{instrument_id: PricePath}``; raises :class:`PricesError`."""
    p = Path(path)
    try:
        fh = p.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise PricesError(f"{p}: cannot open prices file: {exc.strerror}") from None
    ts_by: dict[int, list[int]] = {}
    mid_by: dict[int, list[float]] = {}
    with fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise PricesError(f"{p}: empty file; expected a header row ts_ns,instrument,mid") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise PricesError(f"{p}:1: {exc}") from None
        _check_header(p, [h.strip().lower() for h in header])
        lineno = 1
        try:
            for row in reader:
                lineno = reader.line_num
                if not row or all(not c.strip() for c in row):
                    continue
                iid, ts, mid = _parse_row(row, registry)
                ts_by.setdefault(iid, []).append(ts)
                mid_by.setdefault(iid, []).append(mid)
        except _RowError as exc:
            raise PricesError(f"{p}:{lineno}: {exc}") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise PricesError(f"{p}:{reader.line_num}: {exc}") from None
    if not ts_by:
        raise PricesError(f"{p}: no price rows after the header")
    return {iid: PricePath(np.array(ts_by[iid], dtype=np.int64), np.array(mid_by[iid])) for iid in sorted(ts_by)}


class _RowError(ValueError):
    pass


def _check_header(p: Path, header: list[str]) -> None:
    if len(header) != 3 or header[0] not in TIME_HEADERS or header[1:] != ["instrument", "mid"]:
        raise PricesError(
            f"{p}:1: header must be ts_ns,instrument,mid (first column may be named "
            f"{'/'.join(TIME_HEADERS)}), got {','.join(header)!r}"
        )


def _parse_row(row: list[str], registry: Registry) -> tuple[int, int, float]:
    if len(row) != 3:
        raise _RowError(f"expected 3 columns (time, instrument, mid), got {len(row)}")
    t_txt, sym, mid_txt = (c.strip() for c in row)
    try:
        ts = parse_time_ns(t_txt)
    except TimeParseError as exc:
        raise _RowError(f"time: {exc}") from None
    try:
        iid = registry.instrument(sym).id
    except RegistryError as exc:
        raise _RowError(f"instrument: {exc}") from None
    try:
        mid = float(mid_txt)
    except ValueError:
        raise _RowError(f"mid: {mid_txt!r} is not a number") from None
    if not math.isfinite(mid) or mid <= 0:
        raise _RowError(f"mid: {mid_txt!r} must be a positive finite number")
    return iid, ts, mid

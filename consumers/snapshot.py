"""Versioned snapshot files for folds: a header plus named numpy arrays, no pickle.

A snapshot is an uncompressed ``.npz`` (zip of ``.npy``) whose ``__header__`` member is UTF-8
JSON: ``{"magic": "seqrisk-snapshot", "format": SNAPSHOT_FORMAT, "fold": <fold type>,
"state_version": <fold's own version>, "applied_seq": N, "meta": {...}}``. Reading checks
magic, format version, fold type and state version, and names the file and the mismatch.
Files are written to a temporary name and renamed, so a crash never leaves half a snapshot.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SNAPSHOT_MAGIC", "SNAPSHOT_FORMAT", "SnapshotError", "write_snapshot", "read_snapshot"]

SNAPSHOT_MAGIC = "seqrisk-snapshot"
SNAPSHOT_FORMAT = 1
_HEADER = "__header__"


class SnapshotError(ValueError):
    """A snapshot file this build cannot restore; the message names the file and why."""


def write_snapshot(
    path: str | Path, fold: str, state_version: int, applied_seq: int, meta: dict[str, Any], arrays: dict[str, np.ndarray]
) -> None:
    """Write ``arrays`` and the header atomically to ``path``."""
    path = Path(path)
    header = {
        "magic": SNAPSHOT_MAGIC,
        "format": SNAPSHOT_FORMAT,
        "fold": fold,
        "state_version": state_version,
        "applied_seq": int(applied_seq),
        "meta": meta,
    }
    if _HEADER in arrays:
        raise ValueError(f"array name {_HEADER!r} is reserved")
    members = {_HEADER: np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays}
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **members)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_snapshot(path: str | Path, fold: str, state_version: int) -> tuple[int, dict[str, Any], dict[str, np.ndarray]]:
    """Read a snapshot written by :func:`write_snapshot`: ``(applied_seq, meta, arrays)``."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            if fh.read(4) != b"PK\x03\x04":
                raise SnapshotError(f"{path}: cannot read snapshot: not a seqrisk snapshot (not an npz archive)")
        with np.load(path, allow_pickle=False) as npz:
            if _HEADER not in npz.files:
                raise SnapshotError(f"{path}: not a seqrisk snapshot (no header)")
            header = _parse_header(path, npz[_HEADER])
            _check(path, header, fold, state_version)
            arrays = {name: npz[name] for name in npz.files if name != _HEADER}
    except SnapshotError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise SnapshotError(f"{path}: cannot read snapshot: {exc}") from None
    return header["applied_seq"], header.get("meta", {}), arrays


def _parse_header(path: Path, raw: np.ndarray) -> dict[str, Any]:
    try:
        header = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SnapshotError(f"{path}: snapshot header is not valid JSON: {exc}") from None
    if not isinstance(header, dict) or header.get("magic") != SNAPSHOT_MAGIC:
        raise SnapshotError(f"{path}: not a seqrisk snapshot (bad magic)")
    return header


def _check(path: Path, header: dict[str, Any], fold: str, state_version: int) -> None:
    if header.get("format") != SNAPSHOT_FORMAT:
        raise SnapshotError(f"{path}: snapshot format version {header.get('format')}, this build reads version {SNAPSHOT_FORMAT}")
    if header.get("fold") != fold:
        raise SnapshotError(f"{path}: snapshot of fold type {header.get('fold')!r}, expected {fold!r}")
    if header.get("state_version") != state_version:
        raise SnapshotError(
            f"{path}: {fold} state version {header.get('state_version')}, this build restores version {state_version}"
        )
    if not isinstance(header.get("applied_seq"), int) or header["applied_seq"] < 0:
        raise SnapshotError(f"{path}: snapshot header has no valid applied_seq")

"""Structured logging for long-running commands: readable by default, JSON lines on request.

Every line names its component; services add ``epoch`` and ``seq`` through ``extra=``::

    log = get_logger("sequencer")
    log.info("started", extra={"epoch": 3, "seq": 120})
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

import msgspec

__all__ = ["add_logging_arguments", "setup_logging", "get_logger"]

_CONTEXT_KEYS = ("component", "epoch", "seq")
_STD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_json = msgspec.json.Encoder()


def add_logging_arguments(parser: argparse.ArgumentParser) -> None:
    """``--log-json`` and ``--log-level``, shared by every command."""
    parser.add_argument("--log-json", action="store_true", help="log JSON lines instead of readable text")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="minimum level logged (default INFO)"
    )


def _extras(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in _STD_ATTRS and not k.startswith("_")}


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = _extras(record)
        comp = extras.pop("component", record.name)
        ctx = " ".join(f"{k}={extras.pop(k)}" for k in _CONTEXT_KEYS[1:] if k in extras)
        rest = " ".join(f"{k}={v}" for k, v in extras.items())
        ts = time.strftime("%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"
        parts = [ts, record.levelname, f"[{comp}]", ctx, record.getMessage(), rest]
        line = " ".join(p for p in parts if p)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": record.created,
            "level": record.levelname,
            "component": record.name,
            "msg": record.getMessage(),
        }
        out.update(_extras(record))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return _json.encode(out).decode()


def setup_logging(json_lines: bool = False, level: str = "INFO") -> None:
    """Configure the root logger once for a command (to stderr)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if json_lines else _TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def get_logger(component: str) -> logging.Logger:
    """The logger of one component (its name is the ``component`` of every line)."""
    return logging.getLogger(component)

"""Machine facts and the two outputs: ``results.json`` and ``results.md``."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["machine_facts", "load_average", "fmt_num", "render_markdown", "write_outputs", "RATIO_DEFINITION"]

RATIO_DEFINITION = (
    "ratio = value / reference when higher is better (throughput), reference / value when "
    "lower is better (latency, time); so ratio 1.0 means as fast as the reference, 0.5 half "
    "as fast, above 1 faster."
)
_PACKAGES = ("numpy", "numba", "pyzmq", "msgspec", "xxhash", "seqrisk", "nautilus_trader")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024**2, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def load_average() -> list[float] | None:
    """The 1, 5 and 15-minute load averages, or None where unknown."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_facts() -> dict[str, Any]:
    """Where and with what the numbers were measured."""
    versions: dict[str, str | None] = {}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    try:
        import zmq

        versions["libzmq"] = zmq.zmq_version()
    except ImportError:
        versions["libzmq"] = None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "memory_gb": _mem_total_gb(),
        "load_average_at_start": load_average(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": platform.platform(),
        "versions": versions,
        "git_commit": _git_commit(),
    }


def fmt_num(x: float | None) -> str:
    """A compact human form: 3 significant digits, k/M/G above 10 000."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    a = abs(x)
    for threshold, div, suffix in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if a >= threshold:
            y = x / div
            return f"{y:.3g}{suffix}" if abs(y) < 100 else f"{y:.0f}{suffix}"
    if a >= 100:
        return f"{x:.0f}"
    return f"{x:.3g}"


def _met(v: bool | None) -> str:
    return "—" if v is None else ("yes" if v else "NO")


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(rows: list[dict[str, Any]]) -> list[str]:
    head = "| benchmark | value | unit | reference | ref. value | ratio | target | met | min | max | runs | note |"
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        if r["status"] == "error":
            note = f"ERROR: {r['error']}"
            cells = [r["name"], "—", "", "", "", "", "", "", "", "", "", note]
        else:
            ratio = "—" if r.get("ratio") is None else f"{r['ratio']:.2f}"
            note = r["note"] if r["status"] == "ok" else f"skipped: {r['note']}"
            cells = [
                r["name"], fmt_num(r["value"]), r["unit"], r["reference"] or "",
                fmt_num(r["reference_value"]) if r["reference"] else "", ratio,
                r["target"] or "", _met(r.get("target_met")) if r["target"] else "",
                fmt_num(r["min"]), fmt_num(r["max"]),
                "" if r["runs"] is None else str(r["runs"]), note,
            ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


def render_markdown(doc: dict[str, Any], table_only: bool = False) -> str:
    """``results.md``: the table, the machine facts, how to read it and how to reproduce."""
    table = _table(doc["results"])
    if table_only:
        return "\n".join(table) + "\n"
    m = doc["machine"]
    v = m["versions"]
    vers = ", ".join(f"{k} {val}" for k, val in v.items() if val)
    quick = " --quick" if doc["quick"] else ""
    mods = ", ".join(f"{x['name']} {x['seconds']:.1f} s ({x['status']})" for x in doc["modules"])
    loads = [x[0] for x in (m.get("load_average_at_start"), m.get("load_average_at_end")) if x]
    busy = []
    if loads and m.get("cores_usable") and max(loads) > 0.5 * m["cores_usable"]:
        busy = [f"**Warning:** the 1-minute load average reached {max(loads)} on {m['cores_usable']} usable"
                " cores: other work shared the CPUs, so latency tails and throughput are disturbed.", ""]
    out = [
        "# seqrisk benchmark results",
        "",
        *busy,
        f"{doc['date']} — {'QUICK smoke run (tiny sizes, numbers not representative)' if doc['quick'] else 'full run'}"
        f"{'' if doc.get('complete', True) else ' — INCOMPLETE (still running or interrupted)'}"
        f", {doc['repeats']} measured runs per result after {doc['warmup']} warm-up run(s) (excluded).",
        "",
        *table,
        "",
        "## How to read it",
        "",
        f"- value is the median of the measured runs; min and max are over the same runs. {RATIO_DEFINITION}",
        "- reference is a ceiling or peer measured in this same run on this machine (see `docs/benchmarks.md`).",
        "- met: whether the value meets the issue's target when the target is machine-checkable"
        " (— when it is not, e.g. relative targets); a quick run's sizes are too small to judge targets.",
        f"- timer overhead (one `time.perf_counter_ns()` pair) on this machine: {fmt_num(doc.get('timer_overhead_ns'))} ns;"
        " per-call latency samples include it.",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu_model']}, {m['cores']} cores ({m['cores_usable']} usable), memory {m['memory_gb']} GB",
        f"- load average at start: {m['load_average_at_start']}, at end: {m.get('load_average_at_end')}",
        f"- {m['python']} on {m['os']}",
        f"- {vers}",
        f"- git commit: {m['git_commit']}",
        f"- modules: {mods}",
        "",
        "## Reproduce",
        "",
        "```",
        f"python -m benchmarks{quick} --out DIR    # or: seqrisk bench{quick} --out DIR",
        "```",
        "",
    ]
    return "\n".join(out)


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    try:
        return _json_safe(obj.item())  # numpy scalars
    except AttributeError:
        return str(obj)


def write_outputs(doc: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write ``results.json`` and ``results.md`` into ``out_dir`` (created if needed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    jpath = out_dir / "results.json"
    mpath = out_dir / "results.md"
    jpath.write_text(json.dumps(_json_safe(doc), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    mpath.write_text(render_markdown(doc), encoding="utf-8")
    return jpath, mpath


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def command_line() -> str:
    """How this process was started, for the record."""
    argv = list(sys.argv)
    if argv and Path(argv[0]).name == "__main__.py" and Path(argv[0]).parent.name == "benchmarks":
        argv[0:1] = ["-m", "benchmarks"]
    return " ".join([Path(sys.executable).name, *argv])

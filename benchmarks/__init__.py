"""The benchmark suite: ``python -m benchmarks`` (or ``seqrisk bench``).

Area modules ``benchmarks/bench_<area>.py`` expose ``run(ctx) -> list[dict]``; the harness
(:mod:`benchmarks.harness`) discovers and runs them, computes ratios against the references
measured in the same run, and writes ``results.json`` and ``results.md``.
``docs/benchmarks.md`` describes the result schema and the ceilings.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AREA_ORDER", "Context", "Stats", "discover", "run_suite"]


def __getattr__(name: str) -> Any:
    # Lazy so that ``seqrisk --help`` (which imports benchmarks.cli) stays light.
    if name in __all__:
        from benchmarks import harness

        return getattr(harness, name)
    raise AttributeError(f"module 'benchmarks' has no attribute {name!r}")

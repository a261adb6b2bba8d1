"""``lag.png`` and ``markout.png`` drawn with matplotlib (Agg backend, no display needed).

matplotlib is the ``audit`` extra; it is imported only here, inside the functions, so the
rest of the audit (and ``report.json``) works without it.
"""

from __future__ import annotations

from pathlib import Path

from risk_gate.audit.report import LagBucket, Markout

__all__ = ["plot_lag_histogram", "plot_markout"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    # A fixed hash salt keeps the PNG bytes stable from run to run.
    matplotlib.rcParams["svg.hashsalt"] = "seqrisk"
    return plt


def _label(lo: int, hi: int | None) -> str:
    if hi is None:
        return f"{lo}+"
    return str(lo) if lo == hi else f"{lo}-{hi}"


def plot_lag_histogram(buckets: list[LagBucket], path: Path) -> None:
    """Bars of approvals per lag bucket: observed lag (HWM - applied) and true lag (seq - 1 - applied)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    labels = [_label(b.lo, b.hi) for b in buckets] or ["0"]
    xs = range(len(labels))
    obs = [b.observed for b in buckets] or [0]
    tru = [b.true for b in buckets] or [0]
    w = 0.4
    ax.bar([x - w / 2 for x in xs], obs, width=w, label="observed lag (HWM seen - applied)")
    ax.bar([x + w / 2 for x in xs], tru, width=w, label="true lag (order seq - 1 - applied)")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, rotation=45, ha="right")
    ax.set_xlabel("lag at approval (events)")
    ax.set_ylabel("approvals")
    ax.set_title("Gate lag at approval")
    nonzero = [v for v in obs + tru if v > 0]
    if nonzero and max(nonzero) > 100 * min(nonzero):
        # Lag-0 approvals usually outnumber the rest by orders of magnitude.
        ax.set_yscale("log")
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def plot_markout(markout: Markout, path: Path) -> None:
    """One markout curve (mean bps against horizon) per true-lag bucket."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    xs = [ns / 1e9 for ns in markout.horizons_ns]
    for b in markout.buckets:
        ys = [b.horizons[h].mean_bps for h in markout.horizons]
        pts = [(x, y) for x, y in zip(xs, ys) if y is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"lag {b.bucket} ({b.orders} orders)")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("horizon (s)")
    ax.set_ylabel("mean markout (bps, + = in the order's favour)")
    ax.set_title("Markout by true lag at approval")
    if markout.buckets:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)

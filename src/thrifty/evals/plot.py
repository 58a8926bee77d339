"""Score against cost per question, one point per run, as a PNG (the `plot` extra).

Driven through matplotlib's Agg canvas, like `thrifty.costs.plot`. Judged 1–10 suites are drawn
at rating / 10 so they share the axis with pass/fail accuracy; runs whose cost is unknown (not
answered through thrifty) sit on the left edge, marked with an open symbol.
"""

from __future__ import annotations

from pathlib import Path

from thrifty.costs.money import to_decimal
from thrifty.evals.report import Summary

_COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


class MissingExtra(RuntimeError):
    """matplotlib is not installed; the message is the install hint."""


def cost_per_item_usd(s: Summary) -> float | None:
    """Mean model cost of a question, in USD; None when no item's cost is known."""
    if s.cost_nanos is None or not s.cost_known:
        return None
    return float(to_decimal(s.cost_nanos)) / s.cost_known


def write_png(summaries: list[Summary], path: Path) -> None:
    """Plot each run's score (with its 95% interval) against its cost per question."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ModuleNotFoundError as exc:
        raise MissingExtra("plotting needs matplotlib: pip install 'thrifty[plot]'") from exc

    figure = Figure(figsize=(9, 5.5), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    suites = sorted({s.run.suite for s in summaries})
    models = sorted({s.run.model for s in summaries})
    known = [c for s in summaries if (c := cost_per_item_usd(s)) is not None]
    left_edge = 0.0
    for s in summaries:
        scale = 10.0 if s.run.rated else 1.0
        y, low, high = s.score / scale, s.low / scale, s.high / scale
        cost = cost_per_item_usd(s)
        color = _COLORS[suites.index(s.run.suite) % len(_COLORS)]
        marker = _MARKERS[models.index(s.run.model) % len(_MARKERS)]
        x = left_edge if cost is None else cost
        axes.errorbar(
            [x],
            [y],
            yerr=[[y - low], [high - y]],
            fmt=marker,
            color=color,
            markersize=9,
            capsize=4,
            markerfacecolor="none" if cost is None else color,
        )
        label = f"{s.run.suite} · {s.run.model}" + (" (cost unknown)" if cost is None else "")
        axes.annotate(label, (x, y), textcoords="offset points", xytext=(8, 6), fontsize=8)
    axes.set_ylim(-0.02, 1.05)
    axes.set_ylabel("score (share correct; judged suites: rating / 10), 95% CI")
    axes.set_xlabel("model cost per question (USD, x-thrifty-cost-usd)")
    if known:
        axes.set_xlim(left=0, right=max(known) * 1.35 or 1e-9)
    axes.ticklabel_format(axis="x", style="sci", scilimits=(-3, 3))
    axes.grid(alpha=0.3)
    axes.set_title("thrifty eval: score vs cost (up and to the left is better)", fontsize=11)
    figure.savefig(path, format="png")

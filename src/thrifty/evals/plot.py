"""Score against cost per question, one point per run, as a PNG (the `plot` extra).

Driven through matplotlib's Agg canvas, like `thrifty.costs.plot`. Judged 1–10 suites are drawn
at rating / 10 so they share the axis with pass/fail accuracy; runs whose cost is unknown (not
answered through thrifty) sit on the left edge, marked with an open symbol.

Runs are named in a legend beside the axes, not next to their points: runs of similar score and
cost sit on top of each other, and labels placed by the points would collide.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from thrifty.costs.money import to_decimal
from thrifty.evals.report import Summary

if TYPE_CHECKING:
    from matplotlib.figure import Figure

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
    eval_figure(summaries).savefig(path, format="png")


def eval_figure(summaries: list[Summary]) -> Figure:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ModuleNotFoundError as exc:
        from thrifty.extras import install_hint

        raise MissingExtra(f"plotting needs matplotlib: {install_hint('plot')}") from exc

    figure = Figure(figsize=(10, 5.5), dpi=110, layout="constrained")
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
        shown = f"{s.score:.1f}/10" if s.run.rated else f"{s.score:.0%}"
        label = f"{s.run.suite} · {s.run.model}: {shown}" + (
            " (cost unknown)" if cost is None else ""
        )
        axes.errorbar(
            [x],
            [y],
            yerr=[[y - low], [high - y]],
            fmt=marker,
            color=color,
            markersize=9,
            capsize=4,
            markerfacecolor="none" if cost is None else color,
            label=label,
        )
    axes.set_ylim(-0.02, 1.05)
    axes.set_ylabel("score (share correct; judged suites: rating / 10), 95% CI")
    axes.set_xlabel("model cost per question (USD, x-thrifty-cost-usd)")
    if known:
        axes.set_xlim(left=0, right=max(known) * 1.15 or 1e-9)
    axes.ticklabel_format(axis="x", style="sci", scilimits=(-3, 3))
    axes.grid(alpha=0.3)
    if summaries:
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, title="suite · model")
    axes.set_title("thrifty eval: score vs cost (up and to the left is better)", fontsize=11)
    return figure

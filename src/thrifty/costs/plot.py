"""Cumulative spend of the three scenarios by month, as a PNG (the `plot` extra).

matplotlib is imported here, lazily, and driven through its Agg canvas directly rather than
pyplot, so writing a plot changes no process-wide backend or figure state.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from .money import format_amount
from .tco import SCENARIOS, Projection

_COLORS = {"local": "#1b9e77", "cloud": "#d95f02", "hybrid": "#7570b3"}


class MissingExtra(RuntimeError):
    """An optional dependency is not installed; the message is the one-line install hint."""


def _crossing(projection: Projection, month: int) -> tuple[float, float]:
    """Where local's curve meets the cloud's, interpolated within the payback month."""
    local, cloud = projection.cumulative["local"], projection.cumulative["cloud"]
    if month == 0:
        return 0.0, float(local[0])
    before, after = local[month - 1] - cloud[month - 1], local[month] - cloud[month]
    fraction = float(before / (before - after))  # before > 0 ≥ after
    spent = local[month - 1] + (local[month] - local[month - 1]) * Decimal(fraction)
    return month - 1 + fraction, float(spent)


def write_png(projection: Projection, path: Path) -> None:
    """Plot cumulative cash spent vs months, marking where local meets the cloud."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter
    except ModuleNotFoundError as exc:
        raise MissingExtra("plotting needs matplotlib: pip install 'thrifty[plot]'") from exc

    cur = projection.currency
    figure = Figure(figsize=(9, 5.5), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for name in SCENARIOS:
        curve = [float(value) for value in projection.cumulative[name]]
        axes.plot(range(len(curve)), curve, label=name, color=_COLORS[name], linewidth=2)

    month = projection.payback_month
    if month is None:
        note = f"local does not pay back within {projection.config.years} years"
        axes.text(0.02, 0.96, note, transform=axes.transAxes, va="top", fontsize=10)
    else:
        at, spent = _crossing(projection, month)
        axes.plot([at], [spent], marker="o", markersize=9, color="black", zorder=5)
        axes.annotate(
            f"break-even: month {at:.1f}\n{format_amount(Decimal(spent), cur)}",
            xy=(at, spent),
            xytext=(12, -36),
            textcoords="offset points",
            arrowprops={"arrowstyle": "->"},
        )

    even = projection.break_even_requests_per_day
    subtitle = "break-even traffic: " + ("none" if even is None else f"{even:,.0f} requests/day")
    axes.set_title(
        f"Cumulative spend, {projection.config.years} years ({subtitle})\n"
        "hardware paid when bought; power, ops and cloud tokens monthly",
        fontsize=11,
    )
    axes.set_xlabel("month")
    axes.set_ylabel(f"cumulative cost ({cur})")
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:,.0f}"))
    axes.set_xlim(0, 12 * projection.config.years)
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    figure.savefig(path, format="png")

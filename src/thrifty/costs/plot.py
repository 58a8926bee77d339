"""Money plots as PNGs (the `plot` extra): the TCO projection (`thrifty tco --plot`) and the
usage history against the all-cloud baseline (`thrifty usage --plot`).

matplotlib is imported here, lazily, and driven through its Agg canvas directly rather than
pyplot, so writing a plot changes no process-wide backend or figure state.

A plot must tell the truth at a glance: a saving is shaded green and called "saved" only where
the actual cost is below the baseline; where it is above, the gap is shaded red and called extra
cost, and the title says "more than all-cloud", never "saved" with a minus sign.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from .money import format_amount
from .tco import SCENARIOS, Projection

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from thrifty.store.reports import Bucket, UsageReport

_COLORS = {"local": "#1b9e77", "cloud": "#d95f02", "hybrid": "#7570b3"}
SAVED_COLOR = "#1b9e77"
EXTRA_COLOR = "#d7301f"
_ROUTE_COLORS = {"cache": "#4c72b0", "local": "#1b9e77", "": "#999999"}
_OTHER_COLORS = ("#d95f02", "#7570b3", "#e7298a", "#e6ab02", "#a6761d", "#666666")
_BUCKET_NAMES = {60: "minute", 300: "5 min", 900: "15 min", 3600: "hour", 86400: "day"}


class MissingExtra(RuntimeError):
    """An optional dependency is not installed; the message is the one-line install hint."""


def _missing_matplotlib(exc: ModuleNotFoundError) -> MissingExtra:
    from thrifty.extras import install_hint

    return MissingExtra(f"plotting needs matplotlib: {install_hint('plot')}")


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
        raise _missing_matplotlib(exc) from exc

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


# -- usage: cumulative cost against the all-cloud baseline, and the route mix ------------------


def _places(largest: float) -> int:
    """Decimals that show about three significant digits of amounts up to ``largest``."""
    if largest <= 0:
        return 2
    digits = 0
    while largest < 100 and digits < 9:
        largest *= 10
        digits += 1
    return max(digits, 2) if digits else 0


def _when(ts: float | None) -> str:
    return "now" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def write_usage_png(
    report: UsageReport,
    series: list[Bucket],
    bucket: int,
    path: Path,
    currency: str,
    cny_per_usd: Decimal,
) -> None:
    usage_figure(report, series, bucket, currency, cny_per_usd).savefig(path, format="png")


def usage_figure(
    report: UsageReport,
    series: list[Bucket],
    bucket: int,
    currency: str,
    cny_per_usd: Decimal,
) -> Figure:
    """Cumulative cost vs the all-cloud baseline above, requests per route per bucket below."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter, MaxNLocator
    except ModuleNotFoundError as exc:
        raise _missing_matplotlib(exc) from exc
    from thrifty.costs.money import convert_nanos, to_decimal

    def amount(nanos: int) -> float:
        return float(to_decimal(convert_nanos(nanos, "USD", currency, cny_per_usd=cny_per_usd)))

    width = timedelta(seconds=bucket)
    edges = [datetime.fromtimestamp(series[0].start, UTC)]
    edges += [datetime.fromtimestamp(b.start, UTC) + width for b in series]
    cost, baseline = [0.0], [0.0]
    running_cost = running_baseline = 0
    for b in series:
        running_cost += b.cost_nanos
        running_baseline += b.baseline_nanos
        cost.append(amount(running_cost))
        baseline.append(amount(running_baseline))

    figure = Figure(figsize=(10, 7), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    money, mix = figure.subplots(2, 1, sharex=True, height_ratios=[3, 2])

    total = report.total
    saved = amount(total.saved_nanos)
    money.plot(edges, baseline, label="all-cloud baseline", color="#d95f02", ls="--", lw=2)
    money.plot(
        edges, cost, label="actual cost", color=SAVED_COLOR if saved >= 0 else EXTRA_COLOR, lw=2.5
    )
    below = [c < b for c, b in zip(cost, baseline, strict=True)]
    above = [c > b for c, b in zip(cost, baseline, strict=True)]
    if any(below):
        money.fill_between(
            edges, cost, baseline, where=below, interpolate=True,
            color=SAVED_COLOR, alpha=0.15, label="saved",
        )  # fmt: skip
    if any(above):
        money.fill_between(
            edges, cost, baseline, where=above, interpolate=True,
            color=EXTRA_COLOR, alpha=0.25, label="extra cost (above all-cloud)",
        )  # fmt: skip
    places = _places(max(baseline[-1], cost[-1]))
    money.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.{places}f}"))
    money.set_ylabel(f"cumulative cost ({currency})")
    money.set_ylim(bottom=0)
    money.grid(alpha=0.3)
    money.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    outcome = (
        f"saved {saved:,.{places}f}"
        if saved >= 0
        else f"{-saved:,.{places}f} {currency} MORE than all-cloud"
    )
    money.set_title(
        f"thrifty usage {_when(report.since)} → {_when(report.until)} UTC: "
        f"{total.requests:,} requests\n"
        f"spent {amount(total.cost_nanos):,.{places}f} {currency} against "
        f"{amount(total.baseline_nanos):,.{places}f} all-cloud; {outcome}",
        fontsize=11,
        color="black" if saved >= 0 else EXTRA_COLOR,
    )

    counts: dict[str, int] = {}
    for b in series:
        for route, n in b.requests.items():
            counts[route] = counts.get(route, 0) + n
    others = iter(_OTHER_COLORS * (1 + len(counts) // len(_OTHER_COLORS)))
    bottom = [0] * len(series)
    starts = edges[:-1]
    for route in sorted(counts, key=lambda r: (-counts[r], r)):
        heights = [b.requests.get(route, 0) for b in series]
        color = _ROUTE_COLORS.get(route) or next(others)
        label = route or "refused"
        mix.bar(starts, heights, width * 0.9, bottom=bottom, align="edge", label=label, color=color)
        bottom = [low + high for low, high in zip(bottom, heights, strict=True)]
    per = _BUCKET_NAMES.get(bucket, f"{bucket // 3600} h" if bucket < 86400 else "week")
    mix.set_ylabel(f"requests per {per}")
    mix.yaxis.set_major_locator(MaxNLocator(integer=True))
    mix.grid(alpha=0.3, axis="y")
    mix.legend(loc="upper left", bbox_to_anchor=(1.01, 1), title="route", fontsize=9)
    locator = AutoDateLocator()
    mix.xaxis.set_major_locator(locator)
    mix.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    mix.set_xlim(edges[0], edges[-1])
    return figure

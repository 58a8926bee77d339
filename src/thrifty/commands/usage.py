"""`thrifty usage`: what the gateway answered, where, what it cost and what it saved."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from thrifty.commands.options import config_option

if TYPE_CHECKING:
    from thrifty.store.reports import Bucket, UsageReport

_EPILOG = """\b
Examples:
  thrifty usage                          # the last 7 days, in total
  thrifty usage --since 24h --by route   # cache / local / cloud, side by side
  thrifty usage --since 2025-06-01 --until 2025-07-01 --by day --currency CNY
  thrifty usage --by tenant --format csv > tenants.csv
  thrifty usage --since 30d --plot usage.png   # cost vs all-cloud baseline, and the route mix
  thrifty usage --format json | jq .total.saved
"""


# (row_dict key, column title); money columns are exact nine-decimal strings
_TABLE = (
    ("requests", "requests"),
    ("errors", "errors"),
    ("prompt_tokens", "prompt tok"),
    ("completion_tokens", "compl tok"),
    ("cost", "cost"),
    ("baseline", "baseline"),
    ("saved", "saved"),
    ("cache_hit_rate", "cache"),
    ("latency_p50_ms", "p50 ms"),
    ("latency_p95_ms", "p95 ms"),
)
_ROUTE_COLORS = {"cache": "#4c72b0", "local": "#1b9e77", "": "#999999"}
_OTHER_COLORS = ("#d95f02", "#7570b3", "#e7298a", "#e6ab02", "#a6761d", "#666666")
_BUCKET_NAMES = {60: "minute", 300: "5 min", 900: "15 min", 3600: "hour", 86400: "day"}


def _when(ts: float | None) -> str:
    if ts is None:
        return "now"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "cache_hit_rate":
        return f"{value:.1%}"
    if key.startswith("latency_"):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _requests(n: int) -> str:
    return f"{n:,} request" + ("" if n == 1 else "s")


def render_table(report: UsageReport, data: dict[str, Any]) -> str:
    """The report as aligned text; money exact, in the report's currency."""
    currency = data["currency"]
    rate = f" at {data['cny_per_usd']} CNY/USD" if currency == "CNY" else ""
    grouping = report.by or ""
    lines = [
        f"thrifty usage: {_when(report.since)} → {_when(report.until)} UTC"
        + (f", by {grouping}" if grouping else "")
        + f", money in {currency}{rate}",
        "",
    ]
    named = [*data["rows"], {**data["total"], "key": "total"}]
    keys = [row["key"] if row["key"] != "" else "(none)" for row in named]
    cells = [[_cell(key, row[key]) for key, _ in _TABLE] for row in named]
    first = max(len(grouping), *(len(key) for key in keys))
    widths = [
        max(len(title), *(len(row[i]) for row in cells)) for i, (_, title) in enumerate(_TABLE)
    ]
    header = f"{grouping:<{first}}" + "".join(
        f"  {title:>{width}}" for (_, title), width in zip(_TABLE, widths, strict=True)
    )
    lines.append(header)
    for index, (key, row) in enumerate(zip(keys, cells, strict=True)):
        if index == len(keys) - 1 and len(keys) > 1:
            lines.append("-" * len(header))
        lines.append(
            f"{key:<{first}}"
            + "".join(f"  {cell:>{width}}" for cell, width in zip(row, widths, strict=True))
        )
    total = report.total
    lines += ["", "saved = baseline - cost, over requests where both are known."]
    unknown = []
    if total.cost_unknown:
        unknown.append(f"{_requests(total.cost_unknown)} without a price (cost unknown)")
    if total.baseline_unknown:
        unknown.append(
            f"{_requests(total.baseline_unknown)} without a baseline (refused, failed or unpriced)"
        )
    if unknown:
        lines.append("Left out of money sums: " + "; ".join(unknown) + ".")
    lines.append("cache = share answered from the cache; p50/p95 latency by nearest rank.")
    return "\n".join(lines)


def render_csv(data: dict[str, Any]) -> str:
    """One line per group then a ``(total)`` line; money as decimal strings and as nanos."""
    rows = [*data["rows"], {**data["total"], "key": "(total)"}]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _window(since: str, until: str | None, now: float) -> tuple[float, float | None]:
    from thrifty.store.reports import parse_since

    try:
        start = parse_since(since, now)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--since'") from None
    try:
        end = None if until is None else parse_since(until, now)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--until'") from None
    if end is not None and end <= start:
        raise click.BadParameter(
            f"the window is empty: {_when(end)} is not after {_when(start)}", param_hint="'--until'"
        )
    return start, end


# -- the plot -------------------------------------------------------------------------------------


def _places(largest: float) -> int:
    """Decimals that show about three significant digits of amounts up to ``largest``."""
    if largest <= 0:
        return 2
    digits = 0
    while largest < 100 and digits < 9:
        largest *= 10
        digits += 1
    return max(digits, 2) if digits else 0


def write_png(
    report: UsageReport,
    series: list[Bucket],
    bucket: int,
    path: Path,
    currency: str,
    cny_per_usd: Decimal,
) -> None:
    """Cumulative cost vs the all-cloud baseline above, requests per route per bucket below."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter, MaxNLocator
    except ModuleNotFoundError:
        raise click.ClickException(
            "plotting needs matplotlib: pip install 'thrifty[plot]'"
        ) from None
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

    money.plot(edges, baseline, label="all-cloud baseline", color="#d95f02", ls="--", lw=2)
    money.plot(edges, cost, label="actual cost", color="#1b9e77", lw=2.5)
    money.fill_between(edges, cost, baseline, color="#1b9e77", alpha=0.12, label="saved")
    places = _places(max(baseline[-1], cost[-1]))
    money.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.{places}f}"))
    money.set_ylabel(f"cumulative cost ({currency})")
    money.set_ylim(bottom=0)
    money.grid(alpha=0.3)
    money.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    total = report.total
    money.set_title(
        f"thrifty usage {_when(report.since)} → {_when(report.until)} UTC: "
        f"{total.requests:,} requests\n"
        f"spent {amount(total.cost_nanos):,.{places}f} {currency} against "
        f"{amount(total.baseline_nanos):,.{places}f} all-cloud; "
        f"saved {amount(total.saved_nanos):,.{places}f}",
        fontsize=11,
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
    figure.savefig(path, format="png")


def _plot(url: str, report: UsageReport, path: Path, currency: str, cny_per_usd: Decimal) -> None:
    from thrifty.store.db import connect
    from thrifty.store.reports import auto_bucket, time_span, timeseries

    conn = connect(url)
    try:
        span = time_span(conn, report.since, report.until)
        assert span is not None  # the report was not empty
        bucket = auto_bucket(span[1] - span[0])
        series = timeseries(conn, report.since, bucket, report.until)
    finally:
        conn.close()
    write_png(report, series, bucket, path, currency, cny_per_usd)


# -- the command ----------------------------------------------------------------------------------


@click.command("usage", epilog=_EPILOG)
@click.option(
    "--since",
    default="7d",
    show_default=True,
    help="Start of the window: 30m, 24h, 7d, 2w ago, or an ISO date/time (UTC unless it "
    "carries an offset).",
)
@click.option("--until", help="End of the window (exclusive), same forms. Default: now.")
@click.option(
    "--by",
    type=click.Choice(["route", "model", "tenant", "day"]),
    help="One row per route, requested model, tenant or UTC day, then the total.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="table for people; json (same as GET /v1/usage) and csv for scripts.",
)
@click.option(
    "--currency",
    type=click.Choice(["USD", "CNY"], case_sensitive=False),
    metavar="USD|CNY",
    default="USD",
    show_default=True,
    help="Money in this currency (CNY at the config's costs.cny_per_usd).",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a PNG: cumulative cost vs the all-cloud baseline, and the route mix.",
)
@config_option
def usage(
    since: str,
    until: str | None,
    by: Any,
    output_format: str,
    currency: str,
    plot_path: Path | None,
    config: str | None,
) -> None:
    """Requests, tokens, cost, savings, cache hits and latency from the request log.

    Money is exact: sums of the integer nano-USD that the gateway metered, printed with nine
    decimals. "baseline" is what the same requests would have cost on the all-cloud baseline
    model (costs.baseline_model); "saved" is baseline minus cost.
    """
    from thrifty.cli import _settings
    from thrifty.store.reports import load_usage, report_dict

    start, end = _window(since, until, time.time())
    settings = _settings(config)
    currency = currency.upper()
    rate = Decimal(str(settings.costs.cny_per_usd))
    url = settings.database_url
    try:
        report = load_usage(url, start, end, by)
    except ValueError as exc:  # a database URL that reports cannot read yet
        raise click.ClickException(str(exc)) from None
    data = report_dict(report, currency, rate)
    if output_format == "json":
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    elif output_format == "csv":
        click.echo(render_csv(data), nl=False)
    elif report.empty:
        click.echo(
            f"No requests logged from {_when(start)} to {_when(end)} UTC ({url}).\n"
            "Send some through `thrifty serve`, or widen the window, e.g. --since 30d."
        )
    else:
        click.echo(render_table(report, data))
    if plot_path is not None:
        if report.empty:
            click.echo("nothing to plot: no requests in the window", err=True)
            return
        _plot(url, report, plot_path, currency, rate)
        click.echo(f"wrote {plot_path}", err=output_format != "table")

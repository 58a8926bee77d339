"""`thrifty usage`: what the gateway answered, where, what it cost and what it saved."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from thrifty.commands.options import config_option

if TYPE_CHECKING:
    from thrifty.store.reports import UsageReport

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
    from thrifty.costs.plot import MissingExtra, write_usage_png

    try:
        write_usage_png(report, series, bucket, path, currency, cny_per_usd)
    except MissingExtra as exc:
        raise click.ClickException(str(exc)) from None


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
    from thrifty.commands.options import cli_settings
    from thrifty.store.reports import load_usage, report_dict

    start, end = _window(since, until, time.time())
    settings = cli_settings(config)
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

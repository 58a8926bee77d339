"""`thrifty alerts`: the Prometheus alerts that the request log can answer, for cron jobs and CI.

Each check reads one window of the log (default: the last hour), per route as
``deploy/prometheus/rules.yaml`` groups them, against the same defaults:

    check                    default   Prometheus alert
    average latency          500 ms    ThriftyHighLatency (5 min average, for 5 min)
    5xx error rate           0.05      ThriftyHighErrorRate (5 min ratio, for 5 min)
    cost per request (USD)   0.002     ThriftyCostPerRequestAboveTarget (1 h, for 30 min)

A check breaches on a strictly greater value, as the rules' ``>`` does. A route without requests
(for cost: without priced requests) has no value and passes, as a ratio over no traffic is NaN
to Prometheus. Where this differs from the rules: one window instead of ``for:`` durations, and
cost per request is per route (the rule splits by requested model too) over the requests whose
cost is known.

Adding a check (the local-quality floor that evals will bring, say): give `Thresholds` a field
with its default, write a `Check` — a function ``(Window, Thresholds) -> list[Result]`` — and
append it to `CHECKS`, then add the option to the command. What a check needs beyond the
request log (eval scores) becomes a field of `Window`, filled in `window_of`.

Exit status: 0 every check passed, 1 at least one breach, 2 the checks could not run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING

import click

from thrifty.commands.options import config_option

if TYPE_CHECKING:
    from thrifty.store.reports import UsageReport


_EPILOG = """\b
Examples:
  thrifty alerts                                   # the last hour, the rules' thresholds
  thrifty alerts --window 24h --max-latency-ms 2000
  thrifty alerts --max-cost-per-request-usd 0.0005 || notify "thrifty costs too much"
Exit status: 0 all OK, 1 a threshold breached, 2 the checks could not run.
"""


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Limits a window must stay within; the defaults are deploy/prometheus/rules.yaml's."""

    max_latency_ms: float = 500.0
    max_cost_per_request_usd: Decimal = Decimal("0.002")
    max_error_rate: float = 0.05  # share of requests answered 5xx


DEFAULTS = Thresholds()


@dataclass(frozen=True, slots=True)
class Window:
    """What the checks read: the request log's window, in totals and by route."""

    since: float
    until: float
    routes: UsageReport  # grouped by route


@dataclass(frozen=True, slots=True)
class Result:
    check: str
    route: str
    value: str  # "-" when there is nothing to measure
    threshold: str
    breach: bool


Check = Callable[[Window, Thresholds], list[Result]]


def _route(key: str) -> str:
    return key or "(none)"


def average_latency(window: Window, limits: Thresholds) -> list[Result]:
    """ThriftyHighLatency: mean request latency per route above the limit."""
    return [
        Result(
            "average latency",
            _route(row.key),
            f"{row.latency_mean_ms:,.1f} ms",
            f"{limits.max_latency_ms:,g} ms",
            row.latency_mean_ms > limits.max_latency_ms,
        )
        for row in window.routes.rows
        if row.latency_mean_ms is not None
    ]


def server_error_rate(window: Window, limits: Thresholds) -> list[Result]:
    """ThriftyHighErrorRate: share of a route's requests answered 5xx above the limit."""
    limit = Fraction(str(limits.max_error_rate))
    return [
        Result(
            "5xx error rate",
            _route(row.key),
            f"{row.server_errors / row.requests:.2%} ({row.server_errors:,}/{row.requests:,})",
            f"{limits.max_error_rate:.2%}",
            Fraction(row.server_errors, row.requests) > limit,  # exact: no float edge cases
        )
        for row in window.routes.rows
        if row.requests
    ]


def cost_per_request(window: Window, limits: Thresholds) -> list[Result]:
    """ThriftyCostPerRequestAboveTarget: a route's mean cost per priced request, in USD."""
    from thrifty.costs.money import format_nanos, round_half_even, to_nanos

    limit_nanos = to_nanos(limits.max_cost_per_request_usd)
    threshold = f"{limits.max_cost_per_request_usd} USD"
    results = []
    for row in window.routes.rows:
        priced = row.requests - row.cost_unknown
        if not priced:
            results.append(Result("cost per request", _route(row.key), "-", threshold, False))
            continue
        mean = format_nanos(round_half_even(row.cost_nanos, priced))
        breach = row.cost_nanos > limit_nanos * priced  # exact, in integer nanos
        results.append(
            Result("cost per request", _route(row.key), f"{mean} USD", threshold, breach)
        )
    return results


CHECKS: tuple[Check, ...] = (average_latency, server_error_rate, cost_per_request)
"""Every check `thrifty alerts` runs, in the order printed."""


def window_of(url: str, seconds: float, now: float) -> Window:
    from thrifty.store.reports import load_usage

    since = now - seconds
    return Window(since, now, load_usage(url, since, None, "route"))


def evaluate(window: Window, limits: Thresholds, checks: Sequence[Check] = CHECKS) -> list[Result]:
    return [result for check in checks for result in check(window, limits)]


def render(results: list[Result]) -> str:
    titles = ("check", "route", "value", "threshold", "status")
    rows = [
        (r.check, r.route, r.value, r.threshold, "BREACH" if r.breach else "OK") for r in results
    ]
    widths = [max(len(title), *(len(row[i]) for row in rows)) for i, title in enumerate(titles)]
    return "\n".join(
        "  ".join(f"{cell:<{width}}" for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [titles, *rows]
    )


class _CannotCheck(click.ClickException):
    exit_code = 2


def _cost_limit(ctx: click.Context, param: click.Parameter, value: str) -> Decimal:
    try:
        limit = Decimal(value)
    except ArithmeticError:
        raise click.BadParameter(f"not an amount of money: {value!r}") from None
    if not limit.is_finite() or limit < 0:
        raise click.BadParameter(f"must be a non-negative amount, got {value!r}")
    return limit


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> float:
    from thrifty.store.reports import parse_duration

    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if seconds <= 0:
        raise click.BadParameter("the window must be longer than zero")
    return seconds


@click.command("alerts", epilog=_EPILOG)
@click.option(
    "--window",
    default="1h",
    show_default=True,
    callback=_duration,
    help="How far back to look: 30m, 1h, 24h, 7d.",
)
@config_option
@click.option(
    "--max-latency-ms",
    type=click.FloatRange(min=0),
    default=DEFAULTS.max_latency_ms,
    show_default=True,
    help="Average latency per route (ThriftyHighLatency).",
)
@click.option(
    "--max-cost-per-request-usd",
    default=str(DEFAULTS.max_cost_per_request_usd),
    show_default=True,
    metavar="USD",
    callback=_cost_limit,
    help="Mean cost of a priced request per route, USD (ThriftyCostPerRequestAboveTarget).",
)
@click.option(
    "--max-error-rate",
    type=click.FloatRange(0, 1),
    default=DEFAULTS.max_error_rate,
    show_default=True,
    help="Share of a route's requests answered 5xx (ThriftyHighErrorRate).",
)
def alerts(
    window: float,
    config: str | None,
    max_latency_ms: float,
    max_cost_per_request_usd: Decimal,
    max_error_rate: float,
) -> None:
    """Check the request log against alert thresholds; exit 1 on any breach.

    The same limits as the Prometheus alerts in deploy/prometheus/rules.yaml, read from the
    request log instead of /metrics: for a cron job, a CI gate after a load test, or a
    machine without Prometheus.
    """
    from thrifty.commands.options import cli_settings

    try:
        settings = cli_settings(config)
    except click.ClickException as exc:
        raise _CannotCheck(exc.message) from None
    now = time.time()
    try:
        found = window_of(settings.database_url, window, now)
    except ValueError as exc:  # a database URL that reports cannot read yet
        raise _CannotCheck(str(exc)) from None
    limits = Thresholds(max_latency_ms, max_cost_per_request_usd, max_error_rate)
    start = datetime.fromtimestamp(found.since, UTC).strftime("%Y-%m-%d %H:%M:%S")
    end = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S")
    total = found.routes.total.requests
    click.echo(f"thrifty alerts: {start} → {end} UTC, {total:,} requests")
    if not total:
        click.echo("No requests in the window: nothing to check.")
        return
    results = evaluate(found, limits)
    click.echo()
    click.echo(render(results))
    breaches = [r for r in results if r.breach]
    click.echo()
    if not breaches:
        click.echo(f"All {len(results)} checks OK.")
        return
    named = ", ".join(f"{r.check} on {r.route}" for r in breaches)
    click.echo(f"{len(breaches)} breach{'es' if len(breaches) > 1 else ''}: {named}.")
    click.get_current_context().exit(1)

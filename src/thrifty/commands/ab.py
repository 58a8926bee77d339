"""`thrifty ab report NAME`: how an A/B experiment's variants compare, from the request log."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import click

from thrifty.commands.options import config_option, format_option

if TYPE_CHECKING:
    from thrifty.store.ab import ABReport, Mean, Rate, VariantReport

_NOTES = """\
[a, b] = 95% interval (Wilson for rates, t for means); p = two-sided p-value against control
(two-proportion z-test for rates, Welch's t-test for means). thumbs up: of requests with a
thumb; converted: of all requests; cost/request: mean over priced requests (USD); several
feedbacks on one request: the latest of each field counts."""


@click.group()
def ab() -> None:
    """A/B experiments (config `experiments`): compare variants against control.

    \b
    Examples:
      thrifty ab report chat-ab
      thrifty ab report chat-ab --since 30d --format json
    """


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _p(value: float | None) -> str:
    if value is None:
        return ""
    return "  p<0.001" if value < 0.001 else f"  p={value:.3f}"


def _rate(rate: Rate) -> str:
    if rate.n == 0:
        return "-"
    low, high = rate.interval or (0.0, 0.0)
    return f"{_pct(rate.value)} [{low:.1%}, {high:.1%}] of {rate.n:,}" + _p(rate.p_value)


def _mean(mean: Mean, places: int) -> str:
    if mean.mean is None:
        return "-"
    text = f"{mean.mean:,.{places}f}"
    if mean.interval is not None:
        text += f" [{mean.interval[0]:,.{places}f}, {mean.interval[1]:,.{places}f}]"
    return text + f" n={mean.n:,}" + _p(mean.p_value)


def _rows(v: VariantReport, total: int) -> list[tuple[str, str]]:
    from thrifty.costs.money import format_nanos

    share = f" ({v.requests / total:.1%}" if total else " ("
    share += f"; weight {v.weight:.1%})" if v.weight is not None else ")"
    per_request = v.cost_per_request
    cost = "-" if per_request is None else f"{per_request}" + _p(v.cost.p_value)
    p95 = "-" if v.latency_p95_ms is None else f"{v.latency_p95_ms:,.1f}"
    return [
        ("model", v.model or "-"),
        ("requests", f"{v.requests:,}" + share),
        ("error rate", _rate(v.error_rate)),
        ("latency p95 ms", p95),
        ("latency mean ms", _mean(v.latency, 1)),
        ("cost/request", cost),
        (
            "cost total",
            format_nanos(v.cost_nanos)
            + (f" ({v.cost_unknown:,} unpriced)" if v.cost_unknown else ""),
        ),
        ("feedback score", _mean(v.score, 2)),
        ("thumbs up", _rate(v.thumbs_up)),
        ("converted", _rate(v.conversion)),
    ]


def render_table(report: ABReport, since_text: str) -> str:
    """One block per variant (control first): metric, value [95% interval], p against control."""
    from thrifty.store.reports import iso

    total = sum(v.requests for v in report.variants)
    lines = [
        f"experiment {report.experiment}: {total:,} requests since {iso(report.since)} "
        f"({since_text})"
    ]
    if report.sample_ratio_p is not None:
        verdict = (
            "looks off: check assignment and logging" if report.sample_ratio_p < 0.001 else "ok"
        )
        lines.append(f"sample ratio vs weights: p={report.sample_ratio_p:.3f} ({verdict})")
    width = len("latency mean ms")
    for v in report.variants:
        lines += ["", f"{v.variant}" + ("  (baseline)" if v.variant == "control" else "")]
        lines += [f"  {name:<{width}}  {value}" for name, value in _rows(v, total)]
    lines += ["", _NOTES]
    return "\n".join(lines)


@ab.command("report")
@click.argument("name")
@click.option(
    "--since",
    default="7d",
    show_default=True,
    help="Requests from: 30m, 24h, 7d, 2w ago, or an ISO date/time (UTC unless it has an offset).",
)
@format_option
@config_option
def report(name: str, since: str, output_format: str, config: str | None) -> None:
    """Per variant of experiment NAME: requests, error rate, latency, cost, feedback.

    Every number comes from the request log (variant column "NAME:VARIANT") and the feedback
    table; money is summed exactly in nano-USD.

    \b
    Examples:
      thrifty ab report chat-ab
      thrifty ab report chat-ab --since 30d --format json
    """
    from thrifty.commands.options import cli_settings
    from thrifty.store.ab import load_ab_report, report_dict
    from thrifty.store.reports import parse_since

    try:
        start = parse_since(since, time.time())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--since'") from None
    settings = cli_settings(config)
    experiment = settings.experiments.get(name)
    configured: dict[str, tuple[str, float]] | None = None
    if experiment is not None:
        configured = {v: (s.model, s.weight) for v, s in experiment.variants.items()}
    try:
        found = load_ab_report(settings.database_url, name, start, None, configured)
    except ValueError as exc:  # a database URL that reports cannot read yet
        raise click.ClickException(str(exc)) from None
    if output_format == "json":
        data: dict[str, Any] = report_dict(found)
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    elif found.empty:
        known = ", ".join(sorted(settings.experiments)) or "none configured"
        click.echo(
            f"No requests logged for experiment {name!r} since {since} "
            f"(experiments in the config: {known})."
        )
    else:
        click.echo(render_table(found, since))

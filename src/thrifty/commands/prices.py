"""`thrifty prices`: the cloud price tables in force, and a check that they are current.

The price book is the shipped tables (``costs/prices/*.yaml``) with thrifty.yaml's ``prices:``
rows laid over them. `thrifty prices` shows, for each priced model, the period in force at one
instant: its prices, windows, source and the day it was checked. `thrifty prices check` looks at
the models this configuration sends requests to (every upstream model, and the cost baseline)
and warns about each one whose cost would be unknown now, whose newest price was last checked
(or, without a check date, took effect) more than ``--max-age-days`` ago, or whose name DeepSeek
has retired.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import click

from thrifty.commands.options import config_option, format_option

_LIST_EPILOG = """\b
Examples:
  thrifty prices                              # every model's prices now
  thrifty prices --at 2026-04-25              # the V4 launch prices (a date is 00:00 UTC)
  thrifty prices --at "2026-05-31 15:58" -m deepseek-v4-pro
  thrifty prices --currency CNY               # DeepSeek's yuan list prices where published
  thrifty prices check                        # warn about missing or stale prices
\b
Add a price change under `prices:` in thrifty.yaml; a row wins over the shipped
tables for the time it covers:
  prices:
    deepseek-v4-flash:
      - {effective_from: "2027-01-01T00:00:00Z", currency: USD, input_cache_hit: 0.0028,
         input_cache_miss: 0.14, output: 0.28, source: DeepSeek Models & Pricing,
         checked: 2027-01-02}
"""

_CHECK_EPILOG = """\b
Examples:
  thrifty prices check                      # exit status 1 when anything is wrong
  thrifty prices check --max-age-days 90 --format json
"""

# DeepSeek retired these API model names after 2026-07-24 15:59 UTC (they were V4-Flash aliases).
_DEEPSEEK_RETIRED = {
    name: datetime(2026, 7, 24, 15, 59, tzinfo=UTC)
    for name in ("deepseek-chat", "deepseek-reasoner")
}
_DEEPSEEK_HOST = "api.deepseek.com"


def parse_time(text: str) -> datetime:
    """An ISO date or date-time; without a zone it is UTC, a date is its 00:00."""
    from thrifty.costs.price_schema import utc

    value = text.strip()
    try:
        if len(value) == 10:
            return utc(date.fromisoformat(value))
        return utc(datetime.fromisoformat(value.replace(" ", "T", 1)))
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a date or time; e.g. 2026-04-25 or 2026-05-31T15:59Z",
            param_hint="'--at'",
        ) from None


def _load(config: str | None) -> tuple[Any, Any]:
    from thrifty.commands.options import cli_settings
    from thrifty.costs.pricebook import PriceBook

    settings = cli_settings(config)
    try:
        return settings, PriceBook.load(settings.prices)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    if moment.hour == moment.minute == moment.second == 0:
        return moment.strftime("%Y-%m-%d")
    return moment.strftime("%Y-%m-%d %H:%M")


def _money(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _rates(rates: Any) -> dict[str, str]:
    return {
        "input_cache_hit": _money(rates.input_cache_hit),
        "input_cache_miss": _money(rates.input_cache_miss),
        "output": _money(rates.output),
    }


def _shown(rates: Any, currency: str | None, cny_per_usd: Decimal, tariff: Any) -> dict[str, Any]:
    """Rates in ``currency``: as published when the period names them, else converted."""
    from thrifty.costs.money import convert
    from thrifty.costs.pricebook import Rates

    if currency is None or currency == rates.currency:
        return {"currency": rates.currency, "basis": "billed", **_rates(rates)}
    if rates is tariff.base and currency in tariff.published:
        return {"currency": currency, "basis": "published", **_rates(tariff.published[currency])}
    hit, miss, out = (
        convert(price, rates.currency, currency, cny_per_usd=cny_per_usd)
        for price in (rates.input_cache_hit, rates.input_cache_miss, rates.output)
    )
    converted = Rates(currency, hit, miss, out)
    return {
        "currency": currency,
        "basis": f"converted at {cny_per_usd} CNY/USD",
        **_rates(converted),
    }


def price_rows(
    book: Any, at: datetime, models: list[str], currency: str | None, cny_per_usd: Decimal
) -> list[dict[str, Any]]:
    """One entry per model: the period in force at ``at`` (or why none is)."""
    rows = []
    for model in models:
        row: dict[str, Any] = {"model": model}
        periods = [p for p in book.periods(model) if p[0] <= at and (p[1] is None or at < p[1])]
        if not periods:
            row["in_force"] = False
            row["note"] = "not priced" if model not in book else "no period covers this time"
            rows.append(row)
            continue
        start, end, tariff = periods[0]
        active = tariff.rates_at(at)
        row.update(
            in_force=True,
            effective_from=start.isoformat(),
            effective_to=None if end is None else end.isoformat(),
            window_now=active.window,
            prices=_shown(tariff.base, currency, cny_per_usd, tariff),
            windows=[
                {
                    "name": window.rates.window,
                    "start": f"{window.start // 3600:02d}:{window.start % 3600 // 60:02d}",
                    "end": f"{window.end // 3600:02d}:{window.end % 3600 // 60:02d}",
                    "weekdays": None if window.weekdays is None else sorted(window.weekdays),
                    **_shown(window.rates, currency, cny_per_usd, tariff),
                }
                for window in tariff.windows
            ],
            source=tariff.source,
            checked=None if tariff.checked is None else tariff.checked.isoformat(),
            published={cur: _rates(rates) for cur, rates in tariff.published.items()},
        )
        rows.append(row)
    return rows


def render_prices(rows: list[dict[str, Any]], at: datetime) -> str:
    lines = [f"Prices in force at {at.strftime('%Y-%m-%d %H:%M:%S')} UTC, per 1M tokens", ""]
    for row in rows:
        if not row["in_force"]:
            lines += [f"{row['model']}: {row['note']}", ""]
            continue
        prices = row["prices"]
        until = row["effective_to"]
        span = f"from {_when(datetime.fromisoformat(row['effective_from']))}"
        span += f" to {_when(datetime.fromisoformat(until))}" if until else ", until further notice"
        lines.append(f"{row['model']}  ({span})")
        lines.append(
            f"  {prices['currency']}  cache hit {prices['input_cache_hit']}  "
            f"cache miss {prices['input_cache_miss']}  output {prices['output']}"
            + ("" if prices["basis"] == "billed" else f"  ({prices['basis']})")
        )
        for window in row["windows"]:
            days = (
                ""
                if window["weekdays"] is None
                else " on days "
                + ",".join(
                    ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[d] for d in window["weekdays"]
                )
            )
            mark = "  <- now" if row["window_now"] == window["name"] else ""
            lines.append(
                f"  {window['name']} {window['start']}-{window['end']} UTC{days}: cache hit "
                f"{window['input_cache_hit']}  cache miss {window['input_cache_miss']}  "
                f"output {window['output']}{mark}"
            )
        lines.append(f"  source: {row['source'] or 'not given'}")
        lines.append(f"  checked: {row['checked'] or 'not given'}")
        lines.append("")
    return "\n".join(lines).rstrip()


@dataclass(frozen=True, slots=True)
class Finding:
    model: str
    ok: bool
    message: str


def configured_models(settings: Any) -> dict[str, list[str]]:
    """Model names this configuration is billed for -> what uses them."""
    used: dict[str, list[str]] = {}
    for up in settings.upstreams:
        for alias, (model, _params) in up.targets().items():
            used.setdefault(model, []).append(f"{up.name}:{alias}")
    used.setdefault(settings.costs.baseline_model, []).append("costs.baseline_model")
    return used


def check(settings: Any, book: Any, now: datetime, max_age_days: int) -> list[Finding]:
    """One finding per configured model (and one more per retired DeepSeek name)."""
    findings = []
    deepseek = {
        up.name for up in settings.upstreams if urlsplit(up.base_url).hostname == _DEEPSEEK_HOST
    }
    for model, users in sorted(configured_models(settings).items()):
        who = ", ".join(users)
        periods = book.periods(model)
        if not periods:
            findings.append(Finding(model, False, f"not priced: costs unknown (used by {who})"))
            continue
        if book.tariff_at(model, now) is None:
            last_end = periods[-1][1]
            why = f"the last one ended {_when(last_end)}" if last_end else "none started yet"
            findings.append(Finding(model, False, f"no price period covers now; {why}"))
            continue
        start, _end, newest = periods[-1]
        seen = max(start.date(), newest.checked) if newest.checked else start.date()
        age = (now.date() - seen).days
        if age > max_age_days:
            what = f"last checked {newest.checked}" if newest.checked else f"from {start.date()}"
            findings.append(
                Finding(
                    model,
                    False,
                    f"newest price {what}, {age} days ago (over {max_age_days}): check the "
                    "provider's page and add a period under prices:",
                )
            )
        else:
            findings.append(Finding(model, True, f"priced; newest period seen {seen} ({who})"))
    for up in settings.upstreams:
        if up.name not in deepseek:
            continue
        for alias, (model, _params) in up.targets().items():
            retired = _DEEPSEEK_RETIRED.get(model)
            if retired is not None and now >= retired:
                findings.append(
                    Finding(
                        model,
                        False,
                        f"{up.name}:{alias} sends {model!r}, which DeepSeek retired after "
                        f"{_when(retired)} UTC; map it to {{model: deepseek-v4-flash, thinking: "
                        f"{{type: {'enabled' if model == 'deepseek-reasoner' else 'disabled'}}}}}",
                    )
                )
    return findings


@click.group("prices", invoke_without_command=True, epilog=_LIST_EPILOG)
@config_option
@click.option("--at", "at_text", metavar="TIME", help="Instant to show (ISO; UTC). Default: now.")
@click.option("-m", "--model", "models", multiple=True, help="Only this model (repeatable).")
@click.option(
    "--currency",
    type=click.Choice(["USD", "CNY"], case_sensitive=False),
    help="Show prices in this currency: as published where the table has them, else converted "
    "at costs.cny_per_usd.",
)
@format_option
@click.pass_context
def prices(
    ctx: click.Context,
    config: str | None,
    at_text: str | None,
    models: tuple[str, ...],
    currency: str | None,
    output_format: str,
) -> None:
    """List the cloud prices in force at a time, with each period's source and checked date."""
    if ctx.invoked_subcommand is not None:
        return
    settings, book = _load(config)
    at = parse_time(at_text) if at_text else datetime.now(UTC)
    rows = price_rows(
        book,
        at,
        list(models) or book.models,
        currency.upper() if currency else None,
        Decimal(str(settings.costs.cny_per_usd)),
    )
    if output_format == "json":
        click.echo(json.dumps({"at": at.isoformat(), "models": rows}, ensure_ascii=False, indent=2))
    else:
        click.echo(render_prices(rows, at))


@prices.command("check", epilog=_CHECK_EPILOG)
@config_option
@click.option("--at", "at_text", metavar="TIME", help="Check as of this instant. Default: now.")
@click.option(
    "--max-age-days",
    type=click.IntRange(min=1),
    default=180,
    show_default=True,
    help="Warn when a model's newest price was last checked longer ago than this.",
)
@format_option
def check_command(
    config: str | None, at_text: str | None, max_age_days: int, output_format: str
) -> None:
    """Warn about configured models whose price is missing, stale, or whose name is retired.

    Exits with status 1 when there is a warning, so it can gate a deploy.
    """
    settings, book = _load(config)
    now = parse_time(at_text) if at_text else datetime.now(UTC)
    findings = check(settings, book, now, max_age_days)
    if output_format == "json":
        data = [{"model": f.model, "ok": f.ok, "message": f.message} for f in findings]
        click.echo(json.dumps({"at": now.isoformat(), "findings": data}, indent=2))
    else:
        for finding in findings:
            click.echo(f"{'ok  ' if finding.ok else 'WARN'}  {finding.model}: {finding.message}")
    if any(not finding.ok for finding in findings):
        raise SystemExit(1)

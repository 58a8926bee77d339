"""`thrifty tco`: should the local model run on our own machine, in the cloud, or both?"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from thrifty.commands.options import format_option

_EPILOG = """\b
Examples:
  # built-in defaults: a small box against deepseek-chat at 1,000 requests/day
  thrifty tco
  # a ¥250,000 single-GPU server against DeepSeek's API, reported in US dollars
  thrifty tco --config examples/tco.yaml --currency USD
  # also draw cumulative spend by month, with the break-even point marked
  thrifty tco --config examples/tco.yaml --plot tco.png
  # one number for a script
  thrifty tco --config examples/tco.yaml --format json | jq .break_even_requests_per_day
"""


def _validation_message(exc: Any, source: str) -> str:
    """A pydantic ValidationError as one line per problem: ``where: what``."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        problems.append(f"  {where}: {error['msg'].removeprefix('Value error, ')}")
    return f"invalid TCO config {source}:\n" + "\n".join(problems)


def _load(path: Path | None, currency: str | None) -> Any:
    import yaml
    from pydantic import ValidationError

    from thrifty.costs.tco_config import TcoConfig

    source = str(path) if path else "(built-in defaults)"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) if path else {}
    except (OSError, yaml.YAMLError) as exc:
        raise click.ClickException(f"cannot read {source}: {exc}") from exc
    if currency:
        data = {**(data or {}), "currency": currency.upper()}
    try:
        return TcoConfig.model_validate(data or {})
    except ValidationError as exc:
        raise click.ClickException(_validation_message(exc, source)) from exc


@click.command("tco", epilog=_EPILOG)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TCO file: machine, cloud model, traffic, score (see examples/tco.yaml). "
    "Default: built-in defaults.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a PNG of cumulative spend by month, break-even marked (needs matplotlib).",
)
@click.option(
    "--currency",
    type=click.Choice(["USD", "CNY"], case_sensitive=False),
    metavar="USD|CNY",
    help="Report in this currency (default: the file's `currency`).",
)
@format_option
def tco(
    config_path: Path | None, plot_path: Path | None, currency: str | None, output_format: str
) -> None:
    """Compare local, cloud and hybrid serving over N years.

    Prices the cloud from thrifty's price tables (DeepSeek's cache-hit, cache-miss and off-peak
    rates; your own rows under `prices:`), the local machine from its depreciation, power and
    ops staff, and prints each scenario's cost per day and over the horizon, the traffic at
    which local breaks even with the cloud, and a weighted score (feasibility, economics,
    urgency) with a recommendation.
    """
    from thrifty.costs.pricebook import PriceBook
    from thrifty.costs.report import render_json, render_table
    from thrifty.costs.tco import project

    config = _load(config_path, currency)
    try:
        projection = project(config, PriceBook.load(config.prices))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(render_json(projection) if output_format == "json" else render_table(projection))
    if plot_path is not None:
        from thrifty.costs.plot import MissingExtra, write_png

        try:
            write_png(projection, plot_path)
        except MissingExtra as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"wrote {plot_path}", err=output_format == "json")

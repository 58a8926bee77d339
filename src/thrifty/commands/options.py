"""Options that many verbs share, declared once so their names and help never drift apart."""

from __future__ import annotations

from typing import Any

import click

CONFIG_HELP = "YAML config file (default: $THRIFTY_CONFIG, else ./thrifty.yaml if present)."

config_option = click.option("-c", "--config", type=click.Path(dir_okay=False), help=CONFIG_HELP)

format_option = click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table for people, json for scripts.",
)


def cli_settings(config: str | None, **overrides: Any) -> Any:
    """Settings for a CLI verb: the config file and flags, or a one-line error instead of a
    traceback when they do not validate."""
    from pydantic import ValidationError

    from thrifty.config import load_settings

    try:
        return load_settings(config, **overrides)
    except (ValidationError, FileNotFoundError) as exc:
        raise click.ClickException(f"bad configuration: {exc}") from None

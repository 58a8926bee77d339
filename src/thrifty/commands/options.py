"""Options that many verbs share, declared once so their names and help never drift apart."""

from __future__ import annotations

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

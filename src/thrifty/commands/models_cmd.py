"""`thrifty models add|remove`: GGUF files named in $THRIFTY_HOME/models.yaml (`serve -m NAME`)."""

from __future__ import annotations

from pathlib import Path

import click

from thrifty.commands.options import config_option


def _home(config: str | None) -> Path:
    from thrifty.commands.options import cli_settings

    home: Path = cli_settings(config).home
    return home


@click.command("add")
@click.argument("name")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--chat-template",
    help="Chat template for llama-server: a built-in name (chatml, llama3, gemma, ...) or Jinja "
    "source [default: the GGUF's own].",
)
@click.option("--replace", is_flag=True, help="Overwrite an entry of the same name.")
@config_option
def models_add(
    name: str, path: Path, chat_template: str | None, replace: bool, config: str | None
) -> None:
    """Register a GGUF file under NAME, so that `thrifty serve -m NAME` serves it.

    \b
    Examples:
      thrifty models add intent-student ./student.q4_k_m.gguf
      thrifty models add my-qwen ~/models/qwen.gguf --chat-template chatml
      thrifty serve -m intent-student --alias student
    """
    from thrifty.backends.models import add_model, registry_path

    home = _home(config)
    try:
        model = add_model(home, name, path, chat_template, replace=replace)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"added {model.name} -> {model.path} (in {registry_path(home)})")


@click.command("remove")
@click.argument("name")
@config_option
def models_remove(name: str, config: str | None) -> None:
    """Unregister NAME (its file stays where it is)."""
    from thrifty.backends.models import remove_model

    if not remove_model(_home(config), name):
        raise click.ClickException(f"no registered model {name!r} (see `thrifty models list`)")
    click.echo(f"removed {name}")

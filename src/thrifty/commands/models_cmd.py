"""`thrifty models add|remove`: GGUF files named in $THRIFTY_HOME/models.yaml.

A running `thrifty serve` of the same home follows the file: an added model answers within
seconds, a removed one is unloaded; no restart.
"""

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
@click.option(
    "--adapter-of",
    metavar="BASE",
    help="PATH is a GGUF LoRA adapter (`thrifty export --lora`) of the local model BASE: it is "
    "served on BASE's engine, one copy of BASE for all its adapters.",
)
@click.option("--replace", is_flag=True, help="Overwrite an entry of the same name.")
@config_option
def models_add(
    name: str,
    path: Path,
    chat_template: str | None,
    adapter_of: str | None,
    replace: bool,
    config: str | None,
) -> None:
    """Register a GGUF file under NAME: a running gateway of this home serves it within
    seconds, by that name (and `thrifty serve -m NAME` makes it the default).

    \b
    Examples:
      thrifty models add intent-student ./student.q4_k_m.gguf
      thrifty models add my-qwen ~/models/qwen.gguf --chat-template chatml
      thrifty models add support-bot ./support.lora.gguf --adapter-of smollm2-135m
      thrifty serve -m intent-student --alias student
    """
    from thrifty.backends.models import add_model, registry_path

    home = _home(config)
    try:
        model = add_model(home, name, path, chat_template, replace=replace, adapter_of=adapter_of)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    what = f" (a LoRA adapter of {adapter_of})" if adapter_of else ""
    click.echo(f"added {model.name} -> {model.path}{what} (in {registry_path(home)})")


@click.command("remove")
@click.argument("name")
@config_option
def models_remove(name: str, config: str | None) -> None:
    """Unregister NAME (its file stays where it is).

    \b
    Examples:
      thrifty models remove intent-student
    """
    from thrifty.backends.models import remove_model

    if not remove_model(_home(config), name):
        raise click.ClickException(f"no registered model {name!r} (see `thrifty models list`)")
    click.echo(f"removed {name}")

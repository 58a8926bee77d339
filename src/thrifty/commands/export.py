"""`thrifty export` (a trained model → GGUF) and `thrifty quantize` (GGUF → smaller GGUF)."""

from __future__ import annotations

from pathlib import Path

import click

from thrifty.commands.options import config_option


def _echo(text: str) -> None:
    click.echo(text, err=True)


def _register(home: Path, name: str | None, path: Path, adapter_of: str | None = None) -> None:
    if not name:
        return
    from thrifty.backends.models import add_model

    try:
        add_model(home, name, path, replace=True, adapter_of=adapter_of)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if adapter_of:
        click.echo(f"registered {name}, a LoRA adapter of {adapter_of}: ask a gateway for {name}")
    else:
        click.echo(f"registered {name}: thrifty serve -m {name}")


@click.command("export")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--to", "fmt", type=click.Choice(["gguf"]), default="gguf", show_default=True)
@click.option(
    "-q", "--quant",
    help="f16, bf16, q8_0 (written directly) or a k-quant such as q4_k_m, q5_k_m, q6_k "
    "[default: q8_0; f16 for --lora].",
)  # fmt: skip
@click.option(
    "-o", "--out", type=click.Path(dir_okay=False, path_type=Path),
    help="The GGUF file [default: DIR/DIRNAME.QUANT.gguf].",
)  # fmt: skip
@click.option("--name", help="Also register it under NAME (as `thrifty models add` does).")
@click.option(
    "--lora",
    is_flag=True,
    help="Write the LoRA adapter alone (f16 unless --quant f32/bf16/q8_0), served on one copy "
    "of its base beside other adapters, instead of a merged model.",
)
@config_option
def export(
    model_dir: Path,
    fmt: str,
    quant: str | None,
    out: Path | None,
    name: str | None,
    lora: bool,
    config: str | None,
) -> None:
    """Export a `thrifty finetune` output (or a Hugging Face model directory) to GGUF.

    The adapter is merged into its base, converted with llama.cpp's own converter (the chat
    template goes into the GGUF) and quantized with llama-quantize. Nothing is downloaded.

    \b
    Examples:
      thrifty export runs/intent --to gguf --quant q4_k_m
      thrifty export runs/intent --quant q8_0 --out student.gguf --name intent-student
      thrifty serve -m intent-student
      thrifty export runs/intent --lora --name intent-lora   # an adapter of the run's base
    """
    from thrifty.commands.options import cli_settings
    from thrifty.train.export import ExportError, export_gguf, export_lora_gguf

    settings = cli_settings(config)
    if lora:
        try:
            path, base = export_lora_gguf(model_dir, settings.home, quant or "f16", out, log=_echo)
        except ExportError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(str(path))
        _register(settings.home, name, path, adapter_of=base)
        return
    try:
        path = export_gguf(model_dir, settings.home, quant or "q8_0", out, log=_echo)
    except ExportError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(str(path))
    _register(settings.home, name, path)


@click.command("quantize")
@click.argument("model")
@click.option("-q", "--quant", default="q4_k_m", show_default=True, help="q4_k_m, q8_0, q6_k, …")
@click.option(
    "-o", "--out", type=click.Path(dir_okay=False, path_type=Path),
    help="[default: beside MODEL as NAME.QUANT.gguf; bundled models: $THRIFTY_HOME/models]",
)  # fmt: skip
@click.option("--name", help="Also register the result under NAME.")
@config_option
def quantize(
    model: str, quant: str, out: Path | None, name: str | None, config: str | None
) -> None:
    """Quantize a GGUF model (a path, a bundled or an added model name) with llama-quantize.

    \b
    Examples:
      thrifty quantize runs/intent/intent.f16.gguf --quant q4_k_m
      thrifty quantize intent-student --quant q5_k_m --name intent-student-q5
    Quantizing an already quantized file works, at some loss: start from f16 when you can.
    """
    from thrifty.backends.models import BUNDLED, ModelUnavailable, resolve_model
    from thrifty.commands.options import cli_settings
    from thrifty.train.export import ExportError, default_quantized_path
    from thrifty.train.export import quantize as run_quantize

    settings = cli_settings(config)
    try:
        src = resolve_model(model, settings.home, settings.local.models)
    except ModelUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    target = out or default_quantized_path(src, quant, settings.home, bundled=model in BUNDLED)
    try:
        path = run_quantize(src, target, quant, log=_echo)
    except ExportError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(str(path))
    _register(settings.home, name, path)

"""The `thrifty` command. Verbs import their heavy parts lazily: `thrifty --help` stays instant."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click

from thrifty import __version__
from thrifty.commands.options import CONFIG_HELP, cli_settings, config_option


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="thrifty")
def main() -> None:
    """thrifty: one OpenAI-compatible endpoint that answers each request at the cheapest place
    that meets its bar (the cache, a small local model, or a cloud model) and proves the saving.

    \b
    Quick start:
      thrifty serve                      # bundled local model on http://127.0.0.1:8000/v1
      thrifty chat "What is the capital of France?"
      DEEPSEEK_API_KEY=sk-... thrifty serve   # adds deepseek-v4-flash/-pro, deepseek-chat/-reasoner
    """


@main.command()
@config_option
@click.option("--host", help="Address to listen on [default: 127.0.0.1].")
@click.option("--port", type=int, help="Port to listen on [default: 8000].")
@click.option(
    "-m",
    "--model",
    "local_model",
    help="Local model: smollm2-135m, gemma3-270m, a name from `thrifty models add`, a GGUF "
    "path (or, with local.engine vllm, a Hugging Face directory).",
)
@click.option(
    "--alias", "aliases", multiple=True, help="Extra name for the local model (repeatable)."
)
@click.option(
    "--home", type=click.Path(file_okay=False), help="State directory [default: ~/.thrifty]."
)
@click.option("--no-local", is_flag=True, help="Serve upstreams only, no local model.")
@click.option(
    "-w",
    "--workers",
    type=click.IntRange(min=1),
    help="Gateway processes on the port, sharing one local engine [default: 1].",
)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option(
    "--ssl-certfile", type=click.Path(exists=True, dir_okay=False), help="Serve HTTPS: cert (PEM)."
)
@click.option(
    "--ssl-keyfile", type=click.Path(exists=True, dir_okay=False), help="The cert's key (PEM)."
)
def serve(
    config: str | None,
    host: str | None,
    port: int | None,
    local_model: str | None,
    aliases: tuple[str, ...],
    home: str | None,
    no_local: bool,
    workers: int | None,
    log_level: str | None,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
) -> None:
    """Serve the OpenAI-compatible API.

    \b
    Examples:
      thrifty serve
      thrifty serve --port 8001 -m gemma3-270m --alias deepseek-chat
      thrifty serve -c thrifty.yaml
      thrifty serve --workers 4      (limits need limits.redis_url then)
    Point any OpenAI client at http://HOST:PORT/v1 (model "local", an upstream alias, or "auto").
    """
    import uvicorn

    from thrifty.api.app import build_app
    from thrifty.api.auth import ExposureError, check_exposure
    from thrifty.api.limits import ServerLimits, configure, uvicorn_options
    from thrifty.api.workers import UnsharedLimits
    from thrifty.api.workers import run as workers_run
    from thrifty.gateway.cache import MissingExtra
    from thrifty.ports import port_problem

    settings = cli_settings(
        config,
        host=host,
        port=port,
        home=home,
        workers=workers,
        log_level=log_level,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
    )
    if (settings.ssl_certfile is None) != (settings.ssl_keyfile is None):
        raise click.UsageError("HTTPS needs both --ssl-certfile and --ssl-keyfile")
    if local_model:
        settings.local.model = local_model
    if aliases:
        settings.local.aliases = [*settings.local.aliases, *aliases]
    if no_local:
        settings.local.enabled = False
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": "warning",
        "access_log": False,
        "loop": "uvloop" if _has("uvloop") else "asyncio",
        "timeout_graceful_shutdown": 10,
        "ssl_certfile": settings.ssl_certfile,
        "ssl_keyfile": settings.ssl_keyfile,
        # header timeout, connection cap (limits.*): the body's are the app's (ServerLimits)
        **uvicorn_options(settings, "httptools" if _has("httptools") else "h11"),
    }
    taken = port_problem(settings.host, settings.port)  # before the engine loads, not after
    if taken:
        raise click.ClickException(taken)
    scheme = "https" if settings.ssl_certfile else "http"
    banner = f"thrifty {__version__} on {scheme}://{settings.host}:{settings.port}/v1"
    try:
        check_exposure(settings)  # no keys on a non-loopback address: refuse, before loading
        if settings.workers > 1:
            click.echo(f"{banner} ({settings.workers} workers)", err=True)
            from thrifty.autopilot.scheduler import start_scheduler

            scheduler = start_scheduler(settings, config)  # in the parent process only
            try:
                workers_run(settings, **options)
            finally:
                if scheduler is not None:
                    scheduler.stop()
            return
        configure(settings)
        app = ServerLimits(build_app(settings), settings)
    except (FileNotFoundError, ExposureError, MissingExtra, UnsharedLimits) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(banner, err=True)
    from thrifty.autopilot.scheduler import start_scheduler

    scheduler = start_scheduler(settings, config)  # None unless autopilot.enabled
    try:
        uvicorn.run(app, **options)
    finally:
        if scheduler is not None:
            scheduler.stop()


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@main.command()
@click.argument("prompt", required=False)
@click.option("-m", "--model", default="local", show_default=True, help="Model to ask.")
@click.option("-s", "--system", help="System prompt.")
@click.option("--max-tokens", type=int, default=512, show_default=True)
@click.option("--temperature", type=float)
@click.option(
    "--url",
    default=lambda: os.environ.get("THRIFTY_URL", "http://127.0.0.1:8000/v1"),
    show_default="$THRIFTY_URL or http://127.0.0.1:8000/v1",
    help="The thrifty (or any OpenAI-compatible) endpoint.",
)
@click.option(
    "--api-key",
    envvar=["THRIFTY_API_KEY", "OPENAI_API_KEY"],
    show_envvar=True,
    help="The key to send (needed once the gateway has keys: `thrifty keys create`).",
)
@click.option("--show-route", is_flag=True, help="Print where the answer came from, and its cost.")
def chat(
    prompt: str | None,
    model: str,
    system: str | None,
    max_tokens: int,
    temperature: float | None,
    url: str,
    api_key: str | None,
    show_route: bool,
) -> None:
    """Ask one question; the answer streams to the terminal.

    \b
    Examples:
      thrifty chat "What is the capital of France?"
      thrifty chat -m deepseek-chat --system "Answer in one line." "为什么天空是蓝色的？"
      echo "Summarize: ..." | thrifty chat
      thrifty chat --api-key sk-... "你好"   (or THRIFTY_API_KEY=sk-...)
    """
    from thrifty.client import stream_chat

    if prompt is None:
        if sys.stdin.isatty():
            raise click.UsageError("give a PROMPT, or pipe one on stdin")
        prompt = sys.stdin.read()
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]
    body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens}
    if temperature is not None:
        body["temperature"] = temperature
    try:
        info = stream_chat(url, body, api_key, lambda text: click.echo(text, nl=False))
    except ConnectionError as exc:
        raise click.ClickException(
            f"{exc}. Is the server running? Start it with `thrifty serve` (or `make run`)."
        ) from None
    except RuntimeError as exc:
        hint = " Pass --api-key (or set THRIFTY_API_KEY)." if "HTTP 401" in str(exc) else ""
        raise click.ClickException(f"{exc}{hint if not api_key else ''}") from None
    click.echo()
    if show_route:
        click.echo(
            f"[route={info.get('route')} reason={info.get('reason')} "
            f"cost_usd={info.get('cost_usd')}]",
            err=True,
        )


@main.group()
def models() -> None:
    """The models thrifty can serve.

    \b
    Examples:
      thrifty models list
      thrifty models add intent-student runs/intent/intent.q4_k_m.gguf
    """


@models.command("list")
@config_option
def models_list(config: str | None) -> None:
    """List model names clients may use: the local model, bundled and added models, upstream
    aliases.

    \b
    Examples:
      thrifty models list
      thrifty models list -c thrifty.yaml
    """
    from thrifty.backends.models import (
        BUNDLED,
        ModelUnavailable,
        entry_path,
        registered,
        resolve_model,
    )

    settings = cli_settings(config)
    local = settings.local
    rows = []
    if local.enabled:
        rows.append(("local", f"-> {local.model}", "local engine (default)"))
    for name, bundled in BUNDLED.items():
        try:
            where = str(resolve_model(name, settings.home)) if name == "smollm2-135m" else "bundled"
        except ModelUnavailable as exc:
            where = f"not installed ({exc})"
        rows.append((name, where, bundled.description))
    for name, entry in local.models.items():
        rows.append((name, entry_path(entry), "local GGUF"))
    try:
        added = registered(settings.home)
    except ModelUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    for name, entry in added.items():
        rows.append((name, str(entry.path), "local GGUF (thrifty models add)"))
    for up in settings.upstreams:
        for alias, (target, params) in up.targets().items():
            sent = "".join(f" {key}={value}" for key, value in params.items())
            rows.append((alias, f"{up.name}:{target}{sent}", up.base_url))
    width = max(len(r[0]) for r in rows)
    for name, where, about in rows:
        click.echo(f"{name:<{width}}  {about}  [{where}]")


@main.group()
def config() -> None:
    """Inspect configuration.

    \b
    Examples:
      thrifty config show
      thrifty config example > thrifty.yaml
    """


@config.command("show")
@click.option("-c", "--config", "path", type=click.Path(dir_okay=False), help=CONFIG_HELP)
def config_show(path: str | None) -> None:
    """Print the effective configuration (file + THRIFTY_* env + defaults), secrets redacted.

    Upstream keys live in environment variables; this prints only whether each is set.

    \b
    Examples:
      thrifty config show
      THRIFTY_LOCAL__MODEL=gemma3-270m thrifty config show
    """
    import yaml

    from thrifty.store.db import redact

    settings = cli_settings(path)
    data = settings.model_dump(mode="json")
    if data["store"]["database_url"]:  # postgresql://user:PASSWORD@host/db
        data["store"]["database_url"] = redact(data["store"]["database_url"])
    for up in data.get("upstreams", []):
        env = up.get("api_key_env")
        up["api_key"] = ("set" if os.environ.get(env) else "unset") if env else "none"
    click.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), nl=False)


@config.command("example")
def config_example() -> None:
    """Print every setting with its default and description, as a commented thrifty.yaml.

    \b
    Example:
      thrifty config example > thrifty.yaml
    """
    from thrifty.config_doc import example_yaml

    click.echo(example_yaml())


def _register_optional_commands() -> None:
    """Verbs that live in their own modules; importing them is cheap (they import lazily)."""
    from thrifty.commands import register

    register(main)


_register_optional_commands()


if __name__ == "__main__":  # pragma: no cover
    main()

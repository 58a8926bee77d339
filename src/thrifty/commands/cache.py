"""`thrifty cache stats | clear | audit`: the response cache that the configuration names.

With `cache.redis_url` set, both talk to Redis directly (every replica shares that cache), with
or without a server running. The in-process cache lives inside a running `thrifty serve`:
`stats` reads its numbers from the server's /metrics, and `clear` asks the server
(POST /admin/cache/clear), which empties every one of its workers; with no server running there
is nothing to clear (an in-process cache starts empty). `audit` reads the recent semantic hits
that servers using this home wrote to $THRIFTY_HOME/cache-audit.jsonl.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import click

from thrifty.commands.options import config_option, format_option

if TYPE_CHECKING:
    from thrifty.config import Settings
    from thrifty.gateway.cache.redis import RedisStore

IN_PROCESS = "the cache is in-process (cache.redis_url is unset): it lives inside `thrifty serve`"

_EPILOG = """\b
Examples:
  thrifty cache stats                    # entries, bytes, vectors; hits and misses if serving
  thrifty cache stats --format json
  thrifty cache clear --tenant acme -y   # one tenant's answers
  thrifty cache clear -y                 # everything: Redis, or every worker of the server
  thrifty cache audit -n 50              # recent semantic hits beside the question they matched
"""


def _redis(settings: Settings) -> RedisStore:
    from thrifty.errors import MissingExtra
    from thrifty.gateway.cache.redis import RedisStore

    c = settings.cache
    assert c.redis_url is not None
    try:
        return RedisStore(c.redis_url, c.redis_prefix, c.max_entries, c.max_bytes, c.ttl_s)
    except MissingExtra as exc:
        raise click.ClickException(str(exc)) from None


def _server_url(settings: Settings) -> str:
    """Where the server this configuration runs answers."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    scheme = "https" if settings.ssl_certfile else "http"
    return f"{scheme}://{host}:{settings.port}"


def _server_metrics(settings: Settings) -> dict[str, float] | None:
    """The `thrifty_cache_*` samples of the server this config runs, or None if none answers."""
    from prometheus_client.parser import text_string_to_metric_families

    url = f"{_server_url(settings)}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            text = response.read().decode()
    except (urllib.error.URLError, OSError):
        return None
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("thrifty_cache_") and not sample.name.endswith("_created"):
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                samples[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return samples


def _print(data: dict[str, Any], output_format: str) -> None:
    if output_format == "json":
        click.echo(json.dumps(data, indent=2, default=str))
        return
    width = max(map(len, data))
    for name, value in data.items():
        shown = f"{value:g}" if isinstance(value, float) else value
        click.echo(f"{name:<{width}}  {shown}")


@click.group(epilog=_EPILOG)
def cache() -> None:
    """Inspect or empty the response cache (the `cache:` section of the config)."""


@cache.command("stats")
@config_option
@format_option
def stats(config: str | None, output_format: str) -> None:
    """Entries, bytes and semantic vectors; hits, misses and evictions of a running server.

    \b
    Examples:
      thrifty cache stats
      thrifty cache stats --format json
    """
    from thrifty.commands.options import cli_settings

    settings = cli_settings(config)
    c = settings.cache
    data: dict[str, Any] = {
        "enabled": c.enabled,
        "backend": "redis" if c.redis_url else "in-process",
        "semantic": c.semantic,
    }
    if c.redis_url:
        store = _redis(settings)
        import redis

        try:
            numbers = store.stats()
            data.update(
                redis=c.redis_url.split("@")[-1],  # never print a password in the URL
                prefix=c.redis_prefix,
                entries=numbers.entries,
                bytes=numbers.bytes,
                vectors=store.vector_count(),
                **store.info(),
            )
        except redis.RedisError as exc:
            raise click.ClickException(f"cannot read the cache in Redis: {exc}") from None
        finally:
            store.close()
    served = _server_metrics(settings)
    if served is None:
        if not c.redis_url:
            click.echo(
                f"{IN_PROCESS}; no server answers on {settings.host}:{settings.port} "
                "(its /metrics carry thrifty_cache_*).",
                err=True,
            )
    else:
        data.update(served)
    _print(data, output_format)


@cache.command("clear")
@config_option
@click.option("--tenant", help="Only this tenant's answers (default: everything).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--url",
    help="The running server to clear (its in-process cache) [default: the config's host:port].",
)
@click.option(
    "--api-key",
    envvar="THRIFTY_API_KEY",
    show_envvar=True,
    help="An admin key, once the server has keys.",
)
def clear(
    config: str | None, tenant: str | None, yes: bool, url: str | None, api_key: str | None
) -> None:
    """Drop cached answers: in the shared Redis cache, or in every worker of the running server.

    \b
    Examples:
      thrifty cache clear -y
      thrifty cache clear --tenant acme -y
      thrifty cache clear -y --url http://10.0.0.5:8000 --api-key sk-...   (another server)
    """
    from thrifty.commands.options import cli_settings
    from thrifty.gateway.cache.keys import tenant_tag

    settings = cli_settings(config)
    what = f"tenant {tenant!r}'s cached answers" if tenant else "every cached answer"
    if not settings.cache.redis_url or url:
        _clear_server(url or _server_url(settings), tenant, yes, what, api_key)
        return
    if not yes:
        click.confirm(f"Drop {what} in {settings.cache.redis_prefix}* ?", abort=True)
    store = _redis(settings)
    import redis

    try:
        dropped = store.clear(tenant_tag(tenant) if tenant else None)
    except redis.RedisError as exc:
        raise click.ClickException(f"cannot clear the cache in Redis: {exc}") from None
    finally:
        store.close()
    click.echo(f"dropped {dropped} cached answer{'s' if dropped != 1 else ''} (Redis)")


def _clear_server(base: str, tenant: str | None, yes: bool, what: str, api_key: str | None) -> None:
    """POST /admin/cache/clear to the server at `base`; offline, say there is nothing to do."""
    if not yes:
        click.confirm(f"Drop {what} in the server at {base} ?", abort=True)
    body = json.dumps({"tenant": tenant} if tenant else {}).encode()
    request = urllib.request.Request(
        base.rstrip("/") + "/admin/cache/clear",
        data=body,
        headers={"content-type": "application/json"},
        method="POST",
    )
    if api_key:
        request.add_header("authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = exc.reason
        hint = " Pass an admin key: --api-key sk-... (or THRIFTY_API_KEY)." if exc.code in (
            401, 403) else ""  # fmt: skip
        message = str(message).rstrip(".")  # the server's own sentence may end in one
        raise click.ClickException(f"{base} refused (HTTP {exc.code}): {message}.{hint}") from None
    except (urllib.error.URLError, OSError):
        click.echo(
            f"no server answers at {base}: nothing to clear ({IN_PROCESS}, and starts empty)"
        )
        return
    dropped = answer.get("dropped", 0)
    if answer.get("backend") == "redis":
        click.echo(f"dropped {dropped} cached answer{'s' * (dropped != 1)} (Redis, via {base})")
    else:
        click.echo(
            f"cleared {what} in every worker of {base} "
            f"({dropped} in the worker that answered; the others before their next lookup)"
        )


@cache.command("audit")
@config_option
@format_option
@click.option("-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--tenant", help="Only this tenant's hits.")
def audit(config: str | None, output_format: str, limit: int, tenant: str | None) -> None:
    """Recent semantic hits side by side with the cached question that answered them.

    The text is masked (personal data shows as [EMAIL], [PHONE], ...), as everything thrifty
    stores. A hit that answered another question is evidence: re-ask that question with
    `x-thrifty-cache: invalidate`, or give the answer a thumbs down on /v1/feedback.

    \b
    Examples:
      thrifty cache audit
      thrifty cache audit --tenant acme -n 50 --format json
    """
    from thrifty.commands.options import cli_settings
    from thrifty.gateway.cache.audit import FILENAME, read

    settings = cli_settings(config)
    path = settings.home / FILENAME
    rows = read(path, limit, tenant)
    if output_format == "json":
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not rows:
        why = "" if settings.cache.semantic else " (cache.semantic is off)"
        click.echo(f"no semantic hits recorded in {path}{why}")
        return
    for row in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row.get("time", 0)))
        click.echo(
            f"{when}  {row.get('tenant')}  similarity {row.get('similarity'):.3f} "
            f"(threshold {row.get('threshold'):.3f})  {row.get('request_id')}"
        )
        click.echo(f"  asked:   {row.get('question')}")
        click.echo(f"  matched: {row.get('matched')}")

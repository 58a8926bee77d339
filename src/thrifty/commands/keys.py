"""`thrifty keys create | list | revoke`: API keys in the store a gateway reads.

A running gateway picks up changes made here within `auth.refresh_s` seconds (it polls the
store's `keys_version` row). Each change is written to the audit log as `cli:<user>`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from thrifty.commands.options import config_option

if TYPE_CHECKING:
    from thrifty.store.keys import KeyRecord, KeyStore


def cli_actor() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in a bare container
        return "cli"


def _store(config: str | None) -> KeyStore:
    from thrifty.commands.options import cli_settings
    from thrifty.store.keys import KeyStore

    return KeyStore(cli_settings(config).database_url)


def what_changes(mode: str, keys_before: int, refresh_s: float) -> str:
    """What making one more key changes for the gateways on this store, in a sentence."""
    within = f"within {refresh_s:g}s"
    if mode == "off":
        return (
            "auth.mode is off: calls need no key; this one opens the admin endpoints (and "
            "counts once auth.mode is auto or required)."
        )
    if mode == "required":
        return f"Gateways on this store accept it {within} (auth.mode required)."
    if keys_before == 0:
        return (
            "This is the first key: from now on every call to a gateway on this store needs "
            f"one (auth.mode auto; running gateways switch {within}). Revoking keys does not "
            "switch back; auth.mode off does, on 127.0.0.1 only."
        )
    return f"Every call already needs a key (auth.mode auto); gateways accept this one {within}."


def _when(ts: float | None) -> str:
    if ts is None:
        return "never"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def _limits(public: dict[str, Any]) -> str:
    parts = [
        f"{name}={public[name]}"
        for name in ("rpm", "tpm", "daily_tokens", "daily_usd")
        if public[name] is not None
    ]
    return " ".join(parts) or "-"


@click.group()
def keys() -> None:
    """Manage API keys: who may call this gateway, and what each key may do.

    \b
    Roles: admin (manage keys, read all usage), user (call models, read own usage),
    viewer (read own usage only).

    \b
    Examples:
      thrifty keys create --tenant acme --role admin
      thrifty keys list
      thrifty keys revoke key_...
    """


@keys.command("create")
@click.option("--tenant", required=True, help="Who the key belongs to (usage is reported by it).")
@click.option(
    "--role",
    type=click.Choice(["admin", "user", "viewer"]),
    default="user",
    show_default=True,
)
@click.option("--rpm", type=click.IntRange(min=0), help="Requests per minute.")
@click.option("--tpm", type=click.IntRange(min=0), help="Tokens per minute.")
@click.option("--daily-tokens", type=click.IntRange(min=0), help="Tokens per day.")
@click.option("--daily-usd", help="Money per day, USD (e.g. 5 or 0.50).")
@click.option("--models", help="Comma-separated model names the key may use [default: all].")
@click.option("--expires", help="Lifetime (30d, 12h, 90m) or an ISO date [default: never].")
@click.option("--tag", "tags", multiple=True, help="A label for reports (repeatable).")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the key, secret included, as JSON.")
def create(
    tenant: str,
    role: str,
    rpm: int | None,
    tpm: int | None,
    daily_tokens: int | None,
    daily_usd: str | None,
    models: str | None,
    expires: str | None,
    tags: tuple[str, ...],
    config: str | None,
    as_json: bool,
) -> None:
    """Make a key. Its secret goes to stdout, once: it is stored only as a hash.

    \b
    Examples:
      thrifty keys create --tenant acme --role admin
      thrifty keys create --tenant acme --rpm 60 --daily-usd 5 --models local,deepseek-chat
      export OPENAI_API_KEY=$(thrifty keys create --tenant ci --expires 30d --tag ci)
    """
    import orjson

    from thrifty.store.keys import KeySpec, parse_expires, parse_list

    try:
        spec = KeySpec(
            tenant=tenant,
            role=role,  # type: ignore[arg-type]  # click.Choice checked it
            models=parse_list(models),
            rpm=rpm,
            tpm=tpm,
            daily_tokens=daily_tokens,
            daily_usd_nanos=KeySpec.daily_usd(daily_usd),
            expires_at=None if expires is None else parse_expires(expires),
            tags=parse_list(tags) or (),
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    from thrifty.commands.options import cli_settings
    from thrifty.store.keys import KeyStore

    settings = cli_settings(config)
    with KeyStore(settings.database_url) as store:
        before = store.count()
        record, secret = store.create(spec, cli_actor())
    change = what_changes(settings.auth.mode, before, settings.auth.refresh_s)
    if as_json:
        click.echo(orjson.dumps({**record.public(), "secret": secret}).decode())
        click.echo(change, err=True)
        return
    click.echo(
        f"{record.id}: tenant {tenant}, role {role}. The secret below is shown only now; "
        f"store it safely. {change}",
        err=True,
    )
    click.echo(secret)


@keys.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
def list_keys(config: str | None, as_json: bool) -> None:
    """List keys (never their secrets).

    \b
    Examples:
      thrifty keys list
      thrifty keys list --json
    """
    import orjson

    from thrifty.commands.options import cli_settings
    from thrifty.store.keys import KeyStore

    settings = cli_settings(config)
    with KeyStore(settings.database_url) as store:
        records: list[KeyRecord] = store.records()
    if as_json:
        for record in records:
            click.echo(orjson.dumps(record.public()).decode())
        return
    if not records:
        click.echo(
            {
                "auto": "no keys: gateways serve without authentication, on loopback only, "
                "until the first is created (auth.mode auto)",
                "required": "no keys: gateways refuse every call (auth.mode required)",
                "off": "no keys: gateways serve without authentication (auth.mode off)",
            }[settings.auth.mode]
        )
        return
    rows = [("ID", "TENANT", "ROLE", "STATUS", "MODELS", "LIMITS", "EXPIRES", "CREATED")]
    for record in records:
        public = record.public()
        rows.append(
            (
                record.id,
                record.spec.tenant,
                record.spec.role,
                public["status"],
                ",".join(record.spec.models) if record.spec.models else "all",
                _limits(public),
                _when(record.spec.expires_at),
                _when(record.created_at),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@keys.command("revoke")
@click.argument("key_id")
@config_option
def revoke(key_id: str, config: str | None) -> None:
    """Revoke a key by its id (key_…). Running gateways refuse it within seconds; revoking
    the last key does not make them keyless again (auth.mode auto: see `auth.mode`).

    \b
    Examples:
      thrifty keys revoke key_0123456789ab   (the ID column of `thrifty keys list`)
    """
    with _store(config) as store:
        before = store.get(key_id)
        record = store.revoke(key_id, cli_actor())
    if record is None:
        raise click.ClickException(f"no key {key_id}")
    if before is not None and before.revoked_at is not None:
        click.echo(f"{key_id} was already revoked")
        return
    click.echo(f"revoked {key_id} (tenant {record.spec.tenant})")

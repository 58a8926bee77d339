"""`thrifty audit verify | tail`: check the audit log's hash chain, and read its newest rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from thrifty.commands.options import config_option

if TYPE_CHECKING:
    from thrifty.store.db import Connection


def _connect(config: str | None) -> Connection:
    """The store, read as it is: a missing database is an error, not a new empty one."""
    from thrifty.commands.options import cli_settings
    from thrifty.store.db import DatabaseError, connect, redact
    from thrifty.store.migrations import migrate

    url = cli_settings(config).database_url
    try:
        conn = connect(url, create=False)
    except DatabaseError as exc:  # NoDatabase, or a server that cannot be reached
        raise click.ClickException(f"{exc} ({redact(url)})") from None
    migrate(conn)  # a database from before the audit log gets its (empty) table
    return conn


@click.group()
def audit() -> None:
    """The audit log: admin actions and every request's metadata, hash-chained.

    \b
    Examples:
      thrifty audit verify
      thrifty audit tail -n 20
    """


@audit.command()
@config_option
def verify(config: str | None) -> None:
    """Walk the hash chain. Exit 1 naming the first bad row (edited, inserted, deleted).

    Keep the head it prints somewhere else: a chain can be rewritten whole by whoever can write
    the database, and dropping the newest rows leaves no mark in it; the head you kept shows both.

    \b
    Examples:
      thrifty audit verify
      thrifty audit verify -c thrifty.yaml
    """
    from thrifty.store.audit import verify as verify_chain

    conn = _connect(config)
    try:
        verdict = verify_chain(conn)
    finally:
        conn.close()
    if not verdict.ok:
        click.echo(
            f"audit log broken at row {verdict.bad_seq}: {verdict.problem} "
            f"({verdict.rows} rows before it verified)",
            err=True,
        )
        raise SystemExit(1)
    click.echo(f"ok: {verdict.rows} rows verified; head {verdict.head}")


@audit.command()
@click.option("-n", "--lines", "count", type=click.IntRange(min=1), default=20, show_default=True)
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines, every column.")
def tail(count: int, config: str | None, as_json: bool) -> None:
    """Print the newest rows, oldest first.

    \b
    Examples:
      thrifty audit tail
      thrifty audit tail -n 50 --json
    """
    import orjson

    from thrifty.costs.money import format_nanos
    from thrifty.store.audit import tail as tail_rows

    conn = _connect(config)
    try:
        rows = tail_rows(conn, count)
    finally:
        conn.close()
    for row in rows:
        if as_json:
            click.echo(orjson.dumps(row).decode())
            continue
        when = datetime.fromtimestamp(row["ts"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        fields = [f"#{row['seq']}", when, row["action"], row["actor"] or "-", row["tenant"] or "-"]
        if row["action"] == "request":
            cost = "-" if row["cost_nanos"] is None else format_nanos(row["cost_nanos"])
            fields += [
                f"{row['endpoint']} model={row['model']} route={row['route'] or '-'}",
                f"status={row['status']} tokens={row['prompt_tokens']}+{row['completion_tokens']}",
                f"cost_usd={cost}",
            ]
        else:
            fields += [x for x in (row["endpoint"], row["detail"]) if x and x != "{}"]
            if row["status"] is not None:
                fields.append(f"status={row['status']}")
        click.echo("  ".join(str(f) for f in fields))

"""`thrifty review list|mark`: the moderation review queue (a sample of flagged requests)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, cast

import click

from thrifty.commands.options import config_option

if TYPE_CHECKING:
    from thrifty.store.review import ReviewStore, Verdict


@click.group()
def review() -> None:
    """Look at flagged requests and mark the moderation's calls ok or bad.

    \b
    Examples:
      thrifty review list
      thrifty review list --verdict bad --limit 100
      thrifty review mark 42 --verdict ok --note "medical question, not self-harm"
    A share of flagged requests (moderation.review_sample, default 5%) is queued here.
    """


def _store(config: str | None) -> ReviewStore:
    from thrifty.commands.options import cli_settings
    from thrifty.store.review import ReviewStore

    return ReviewStore(cli_settings(config).database_url)


@review.command("list")
@config_option
@click.option(
    "--verdict",
    type=click.Choice(["pending", "ok", "bad", "all"]),
    default="pending",
    show_default=True,
    help="Which items to show.",
)
@click.option("--limit", type=int, default=50, show_default=True, help="Most items shown.")
@click.option("--json", "as_json", is_flag=True, help="Print the items as JSON lines.")
def list_items(config: str | None, verdict: str, limit: int, as_json: bool) -> None:
    """List queued items, newest first.

    \b
    Examples:
      thrifty review list
      thrifty review list --verdict bad --limit 100 --json
    """
    import orjson

    store = _store(config)
    try:
        items = store.list(verdict=None if verdict == "all" else verdict, limit=limit)
    finally:
        store.close()
    if as_json:
        for item in items:
            click.echo(orjson.dumps(item).decode())
        return
    if not items:
        click.echo("the review queue is empty" if verdict == "all" else f"no {verdict} items")
        return
    for item in items:
        when = dt.datetime.fromtimestamp(item["ts"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        excerpt = " ".join(item["excerpt"].split())
        if len(excerpt) > 100:
            excerpt = excerpt[:99] + "…"
        click.echo(
            f"{item['id']:>6}  {when}  {item['tenant']}  {item['direction']:<6}  "
            f"{item['action']:<5}  {item['lists']}  [{item['verdict'] or 'pending'}]"
        )
        click.echo(f"        {excerpt}")


@review.command()
@click.argument("item_id", type=int)
@click.option("--verdict", type=click.Choice(["ok", "bad"]), required=True, help="Your call.")
@click.option("--note", help="Why (kept with the item).")
@config_option
def mark(item_id: int, verdict: str, note: str | None, config: str | None) -> None:
    """Mark item ITEM_ID: ok (the content is acceptable) or bad (it is not).

    \b
    Examples:
      thrifty review mark 42 --verdict ok --note "medical question, not self-harm"
    """
    store = _store(config)
    try:
        found = store.mark(item_id, cast("Verdict", verdict), note)
    finally:
        store.close()
    if not found:
        raise click.ClickException(f"no review item {item_id} (see `thrifty review list`)")
    click.echo(f"item {item_id}: {verdict}")

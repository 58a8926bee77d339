"""`thrifty route`: explain a decision, train the learned scorer, evaluate routing's saving."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import click

from thrifty.commands.options import config_option, format_option


@click.group()
def route() -> None:
    """Inspect routing decisions.

    \b
    Examples:
      thrifty route explain "What is the capital of France?"
    """


@route.command()
@click.argument("prompt", required=False)
@config_option
@click.option("-m", "--model", default="auto", show_default=True, help="Model the client asks.")
@click.option("-s", "--system", help="A system message sent with the prompt.")
@click.option("--max-tokens", type=int, help="The request's max_tokens.")
@click.option("--tenant", default="default", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
def explain(
    prompt: str | None,
    config: str | None,
    model: str,
    system: str | None,
    max_tokens: int | None,
    tenant: str,
    as_json: bool,
) -> None:
    """Show the route a request would take and the rule that fired. Calls no model.

    \b
    Examples:
      thrifty route explain "What is the capital of France?"
      thrifty route explain "我的手机号是13812345678，帮我查一下订单"
      thrifty route explain -c thrifty.yaml "Prove that sqrt(2) is irrational, step by step."
    The local engine is not running here, so load conditions read as idle.
    """
    import orjson

    from thrifty.commands.options import cli_settings
    from thrifty.errors import ThriftyError

    if prompt is None:
        if sys.stdin.isatty():
            raise click.UsageError("give a PROMPT, or pipe one on stdin")
        prompt = sys.stdin.read()
    settings = cli_settings(config)
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]
    body: dict[str, Any] = {"model": model, "messages": messages}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    try:
        decision = asyncio.run(_decide(settings, body, tenant))
    except ThriftyError as exc:
        decision = {"route": None, "refused": exc.status, "reason": exc.message}
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(orjson.dumps(decision, option=orjson.OPT_INDENT_2).decode())
        return
    candidates = decision.pop("candidates", [])
    for key, value in decision.items():
        click.echo(f"{key:>14}: {value}")
    if candidates:
        click.echo(f"\n  {'target':<16} {'expected cost':>14} {'P(good)':>8}  bar")
        for c in candidates:
            cost = c["expected_cost_usd"]
            money = "unpriced" if cost is None else f"${cost:.7f}"
            mark = "meets" if c["meets_bar"] else "misses"
            click.echo(f"  {c['target']:<16} {money:>14} {c['p_ok']:>8.3f}  {mark}")
        click.echo(f"  won: {candidates[0]['target']} (the cheapest that meets the bar)")


async def _decide(settings: Any, body: dict[str, Any], tenant: str) -> dict[str, Any]:
    from thrifty.backends import build_registry
    from thrifty.context import RequestContext
    from thrifty.costs.pricebook import PriceBook
    from thrifty.gateway.pii import PIIDetector
    from thrifty.gateway.privacy import PIIScan, PrivacyGuard
    from thrifty.gateway.route import ModelRoute
    from thrifty.gateway.router import Router, prompt_tokens
    from thrifty.gateway.stage import Stage

    registry = build_registry(settings)
    detector = PIIDetector(settings.privacy.detect)
    router = Router(
        settings.router,
        registry,
        costs=settings.costs,
        prices=PriceBook.load(settings.prices),
        home=settings.home,
    )
    stages: list[Stage] = [
        PIIScan(detector, settings.privacy),
        router,
        ModelRoute(registry),
        PrivacyGuard(settings.privacy, registry, detector),
    ]
    ctx = RequestContext("chat", body, body["model"], False, tenant=tenant)
    for stage in stages:
        await stage.on_request(ctx)
    return {
        "route": ctx.route,
        "reason": ctx.reason_header,
        "targets": [t.route for t in ctx.targets],
        "pii": sorted(ctx.pii) or "none",
        "masked": bool(ctx.pii_mapping),
        "complexity": ctx.complexity
        if ctx.complexity is not None
        else router.scorer.score(body["messages"]),
        "prompt_tokens": int(prompt_tokens(ctx)),
        "scorer": router.quality.name,
        "quality_target": settings.router.quality_target,
        "cost_basis": settings.router.cost_basis,
        "candidates": [c.as_dict() for c in ctx.candidates],
    }


@route.command()
@config_option
@click.option(
    "--source",
    "sources",
    multiple=True,
    type=click.Choice(["eval", "shadow", "feedback", "ab"]),
    help="Learn only from these label sources [default: all].",
)
@click.option(
    "--min-examples",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="A target needs this many labelled outcomes to get a model.",
)
def train(config: str | None, sources: tuple[str, ...], min_examples: int) -> None:
    """Fit the learned scorer from the outcomes table: P(good enough | request) per target.

    \b
    The artifact goes to $THRIFTY_HOME/router/scorer.npz (a new version each time); a running
    gateway with router.scorer: learned picks it up within a second, without a restart.
    Examples:
      thrifty route eval --suite faq.jsonl --local local --cloud deepseek-chat   # outcomes
      thrifty route train
    """
    from thrifty.commands.options import cli_settings
    from thrifty.errors import MissingExtra
    from thrifty.gateway.scorer import retrain

    settings = cli_settings(config)
    try:
        path, model = retrain(
            settings.database_url,
            settings.home,
            settings.cache.semantic_model,
            sources=list(sources) or None,
            min_examples=min_examples,
        )
    except (MissingExtra, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"scorer v{model.version} ({model.embedder}) -> {path}")
    for target, count in sorted(model.examples.items()):
        click.echo(f"  {target:<16} {count} labelled outcomes")


@route.command()
@config_option
def outcomes(config: str | None) -> None:
    """Count the labelled outcomes by source and target.

    \b
    Examples:
      thrifty route outcomes
      thrifty route outcomes -c thrifty.yaml
    """
    from thrifty.commands.options import cli_settings
    from thrifty.store.db import MissingTable, NoDatabase, connect
    from thrifty.store.outcomes import count_by

    settings = cli_settings(config)
    try:
        conn = connect(settings.database_url, create=False)
    except NoDatabase:
        click.echo("no outcomes yet")
        return
    try:
        rows = count_by(conn)
    except MissingTable:
        rows = []
    finally:
        conn.close()
    if not rows:
        click.echo("no outcomes yet")
        return
    click.echo(f"{'source':<10} {'target':<16} {'outcomes':>9} {'good':>6}")
    for source, target, n, ok in rows:
        click.echo(f"{source:<10} {target:<16} {n:>9} {ok:>6}")


_EVAL_EPILOG = """\b
Suites are `thrifty eval` JSONL files (several make one workload):
  {"suite": {"name": "faq", "scorer": "contains"}}
  {"id": "q1", "prompt": "退货要多久？", "expected": "7"}
JSON output keys: points [{threshold, cloud_share, quality, quality_vs_cloud, cost_usd}], apgr,
cpt {"50","80","95"}, at_quality {target, threshold, cloud_share, quality_vs_cloud,
cost_saving_x}.

\b
Examples:
  thrifty route eval --suite faq.jsonl --suite intents.jsonl --local local --cloud deepseek-chat
  thrifty route eval --suite faq.jsonl --local local --cloud deepseek-chat \\
      --train-split 0.5 --quality 0.95 --format json --plot routing.png
"""


@route.command("eval", epilog=_EVAL_EPILOG)
@click.option("--suite", "suites", multiple=True, required=True, help="A JSONL suite (repeat).")
@click.option("--local", "local_model", required=True, help="The cheap target: local, a tier.")
@click.option("--cloud", "cloud_model", required=True, help="The strong target: an alias.")
@click.option(
    "--train-split",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Train a fresh learned scorer on this share of the items, evaluate on the rest "
    "[default: the configured scorer on every item].",
)
@click.option(
    "--quality",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.95,
    show_default=True,
    help="The quality bar, a share of all-cloud quality, for at_quality.",
)
@format_option
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="Write a PNG.")
@click.option(
    "--base-url",
    default=lambda: os.environ.get("THRIFTY_URL", "http://127.0.0.1:8000/v1"),
    show_default="$THRIFTY_URL or http://127.0.0.1:8000/v1",
    help="The running thrifty gateway (its answers carry route and cost).",
)
@click.option(
    "--api-key",
    default=lambda: os.environ.get("THRIFTY_API_KEY") or os.environ.get("OPENAI_API_KEY"),
    show_default="$THRIFTY_API_KEY or $OPENAI_API_KEY",
    help="Bearer key for the gateway.",
)
@click.option("--concurrency", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N items of each suite.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split.")
@config_option
def eval_command(
    suites: tuple[str, ...],
    local_model: str,
    cloud_model: str,
    train_split: float | None,
    quality: float,
    output_format: str,
    plot: Path | None,
    base_url: str,
    api_key: str | None,
    concurrency: int,
    limit: int | None,
    seed: int,
    config: str | None,
) -> None:
    """Measure routing's saving: every item on both targets, then the router's threshold sweep.

    Resumable: the same command continues where an interrupted one stopped. Every item answered
    by both targets is stored as an outcome (for `thrifty route train`).
    """
    import orjson

    from thrifty.commands.options import cli_settings
    from thrifty.commands.route_eval import render_table, run
    from thrifty.evals.routing import summarize, sweep, write_plot

    settings = cli_settings(config)
    pairs = run(
        settings, suites, local_model, cloud_model, base_url=base_url, api_key=api_key,
        train_split=train_split, concurrency=concurrency, limit=limit, seed=seed,
    )  # fmt: skip
    result = summarize(pairs, quality)
    _keep(settings.database_url, local_model, cloud_model, result)
    if plot is not None:
        try:
            write_plot(pairs, sweep(pairs), plot, f"{local_model} vs {cloud_model}")
        except RuntimeError as exc:
            raise click.ClickException(str(exc)) from None
    if output_format == "json":
        click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(render_table(result, pairs))


def _keep(url: str, local: str, cloud: str, result: dict[str, Any]) -> None:
    """Store the sweep: the console draws the latest one's quality/cost curve."""
    from thrifty.store.console import save_route_eval
    from thrifty.store.db import connect
    from thrifty.store.migrations import migrate

    with connect(url) as conn:
        migrate(conn)
        save_route_eval(conn, local, cloud, result)

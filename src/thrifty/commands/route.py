"""`thrifty route explain`: where a prompt would go, and why, without calling a model."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import click

from thrifty.commands.options import config_option


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
    for key, value in decision.items():
        click.echo(f"{key:>14}: {value}")


async def _decide(settings: Any, body: dict[str, Any], tenant: str) -> dict[str, Any]:
    from thrifty.backends import build_registry
    from thrifty.context import RequestContext
    from thrifty.gateway.pii import PIIDetector
    from thrifty.gateway.privacy import PIIScan, PrivacyGuard
    from thrifty.gateway.route import ModelRoute
    from thrifty.gateway.router import Router, prompt_tokens
    from thrifty.gateway.stage import Stage

    registry = build_registry(settings)
    detector = PIIDetector(settings.privacy.detect)
    router = Router(settings.router, registry)
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
    }

"""`thrifty bench`: load any OpenAI-compatible deployment and print what it sustained.

The engine is `thrifty.loadgen`; this module parses the flags and prints the summary.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from thrifty.loadgen import BenchResult

_EPILOG = """\b
Examples:
  thrifty bench --url http://127.0.0.1:8000/v1 --concurrency 8 --duration 30s
  thrifty bench --url http://gateway:8000/v1 --stream --model auto --max-tokens 128
  thrifty bench --url https://api.example.com/v1 --api-key sk-... --prompts prompts.jsonl
  thrifty bench --url http://127.0.0.1:8000/v1 --requests 200 --format json | jq .latency_ms

\b
Prompts (--prompts): JSONL lines with `messages` (a chat) or `prompt` (one user turn), or plain
text, one prompt a line; they are sent round-robin. Without --temperature the server's default
applies; with --temperature 0, repeated prompts may be answered from thrifty's cache.
The run stops issuing requests at --duration (or after --requests); requests in flight then
finish within --timeout each. Redirects are not followed: only --url is called.
Exit status 1 when no request succeeded.
"""

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class Duration(click.ParamType):
    """`30s`, `2m`, `500ms`, `1h`, or plain seconds."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            seconds = float(value)
        else:
            match = _DURATION.match(str(value))
            if match is None:
                self.fail(f"{value!r} is not a duration (30s, 2m, 500ms)", param, ctx)
            seconds = float(match.group(1)) * _UNIT_S[match.group(2) or "s"]
        if seconds <= 0:
            self.fail("the duration must be positive", param, ctx)
        return seconds


@click.command(epilog=_EPILOG)
@click.option(
    "--url",
    required=True,
    help="Base URL up to /v1 (or the full …/chat/completions URL) of the deployment.",
)
@click.option(
    "-n", "--concurrency", type=click.IntRange(1, 4096), default=4, show_default=True,
    help="Requests in flight at once.",
)  # fmt: skip
@click.option(
    "-d", "--duration", type=Duration(), default="30s", show_default=True,
    help="How long to send requests (30s, 2m, 500ms).",
)  # fmt: skip
@click.option("--requests", "max_requests", type=click.IntRange(1), help="Stop after N requests.")
@click.option("--stream", is_flag=True, help="Stream answers (measures time to first token).")
@click.option("--prompts", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-m", "--model", default="auto", show_default=True, help="Model name to ask for.")
@click.option("--max-tokens", type=click.IntRange(1), default=64, show_default=True)
@click.option("--temperature", type=click.FloatRange(0, 2), help="Sampling temperature.")
@click.option(
    "--api-key",
    default=lambda: os.environ.get("THRIFTY_API_KEY") or os.environ.get("OPENAI_API_KEY"),
    show_default="$THRIFTY_API_KEY or $OPENAI_API_KEY",
    help="Bearer key.",
)
@click.option(
    "--timeout", "timeout_s", type=Duration(), default="60s", show_default=True,
    help="Longest one request may take.",
)  # fmt: skip
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
def bench(
    url: str,
    concurrency: int,
    duration: float,
    max_requests: int | None,
    stream: bool,
    prompts: Path | None,
    model: str,
    max_tokens: int,
    temperature: float | None,
    api_key: str | None,
    timeout_s: float,
    fmt: str,
) -> None:
    """Load an OpenAI-compatible endpoint: req/s, latency and TTFT percentiles, tokens/s,
    errors by status, and thrifty's route mix (from `x-thrifty-route`)."""
    from thrifty.loadgen import BenchConfig, load_prompts, run

    if not url.startswith(("http://", "https://")):
        raise click.BadParameter("give an http:// or https:// URL", param_hint="--url")
    extra: dict[str, Any] = {}
    if prompts is not None:
        try:
            extra["prompts"] = load_prompts(prompts)
        except (ValueError, UnicodeDecodeError) as exc:
            raise click.BadParameter(str(exc), param_hint="--prompts") from None
    config = BenchConfig(
        url=url,
        concurrency=concurrency,
        duration_s=duration,
        max_requests=max_requests,
        stream=stream,
        model=model,
        max_tokens=max_tokens,
        temperature=temperature,
        api_key=api_key or None,
        timeout_s=timeout_s,
        **extra,
    )
    if fmt == "table":
        mode = "streaming" if stream else "not streaming"
        click.echo(
            f"thrifty bench: {config.endpoint}, model {model}, concurrency {concurrency}, "
            f"{duration:g} s, {mode}",
            err=True,
        )
    result = run(config)
    summary = result.summary()
    if fmt == "json":
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(render(result, summary))
    if summary["ok"] == 0:
        raise SystemExit(1)


def _ms(quantiles: dict[str, float | None] | None) -> str:
    if not quantiles or quantiles.get("p50") is None:
        return "-"
    return "  ".join(f"{k} {v:,.1f}" for k, v in quantiles.items() if v is not None)


def render(result: BenchResult, summary: dict[str, Any]) -> str:
    """The summary as aligned text lines."""
    total = summary["requests"]
    errors = summary["errors"]
    lines = [
        f"requests     {total:,} in {summary['elapsed_s']:.2f} s: {summary['ok']:,} ok, "
        f"{total - summary['ok']:,} errors",
        f"throughput   {summary['requests_per_s']:,.2f} req/s ({summary['ok_per_s']:,.2f} ok/s)",
        f"latency ms   {_ms(summary['latency_ms'])}",
    ]
    if summary["ttft_ms"] is not None:
        lines.append(f"ttft ms      {_ms(summary['ttft_ms'])}")
    lines.append(
        f"tokens       {summary['completion_tokens']:,} completion, "
        f"{summary['prompt_tokens']:,} prompt: {summary['tokens_per_s']:,.1f} completion tok/s"
    )
    lines.append(
        "errors       "
        + (", ".join(f"{status}: {n:,}" for status, n in errors.items()) if errors else "none")
    )
    routes = summary["routes"]
    if routes:
        seen = sum(routes.values())
        mix = ", ".join(f"{r} {n / seen:.1%} ({n:,})" for r, n in routes.items())
        lines.append(f"routes       {mix}")
    else:
        lines.append("routes       - (no x-thrifty-route header: not a thrifty gateway)")
    return "\n".join(lines)

"""`thrifty distill collect`: training data for a local student, from captured cloud answers or
from a teacher model asked through the gateway."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from thrifty.commands.options import config_option

if TYPE_CHECKING:
    from thrifty.train.collect import Example


_EPILOG = """\b
Examples:
  thrifty distill collect --from-log --route deepseek-chat --since 30d --out data.jsonl
  thrifty distill collect --from-prompts prompts.jsonl --teacher deepseek-chat \\
      --concurrency 4 --holdout 0.1 --seed 7 --out data.jsonl
\b
--from-log reads what capture stored: set distill.capture_tenants (e.g. ["*"]) in the
config first; only answers from cloud routes of those tenants are kept, personal data only
when it was masked before it left (as placeholders, never the values).
--from-prompts takes JSONL lines {"prompt": "..."} or {"messages": [...]} (or JSON strings).
Output: JSONL of {"messages": [...]} with the answer as the last assistant turn; with
--holdout, a seeded share goes to OUT.holdout.jsonl (or --holdout-out).
"""


@click.group("distill")
def distill() -> None:
    """Distillation data: turn cloud answers into a student's training set.

    \b
    Examples:
      thrifty distill collect --from-log --since 30d --out data.jsonl
    """


@distill.command("collect", epilog=_EPILOG)
@click.option("--from-log", "from_log", is_flag=True, help="Use the captured cloud answers.")
@click.option(
    "--from-prompts",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Ask --teacher these prompts (JSONL).",
)
@click.option(
    "-o", "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="JSONL."
)
@click.option("--route", "routes", multiple=True, help="--from-log: only this route (repeatable).")
@click.option(
    "--tenant", "tenants", multiple=True, help="--from-log: only this tenant (repeatable)."
)
@click.option("--since", default="30d", show_default=True, help="--from-log: 24h, 30d, a date…")
@click.option("--teacher", help="--from-prompts: the model to ask (e.g. deepseek-chat).")
@click.option(
    "--url",
    default=lambda: os.environ.get("THRIFTY_URL", "http://127.0.0.1:8000/v1"),
    show_default="$THRIFTY_URL or http://127.0.0.1:8000/v1",
    help="--from-prompts: the gateway (any OpenAI-compatible endpoint).",
)
@click.option(
    "--api-key",
    default=lambda: os.environ.get("THRIFTY_API_KEY") or os.environ.get("OPENAI_API_KEY"),
    show_default="$THRIFTY_API_KEY or $OPENAI_API_KEY",
    help="--from-prompts: bearer key for the gateway.",
)
@click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--max-tokens", type=click.IntRange(min=1), default=512, show_default=True)
@click.option("--temperature", type=click.FloatRange(0, 2), default=0.0, show_default=True)
@click.option("--system", help="--from-prompts: system prompt for prompts that carry none.")
@click.option("--no-cache", is_flag=True, help="--from-prompts: bypass the gateway's cache.")
@click.option(
    "--min-chars", type=click.IntRange(min=1), default=1, show_default=True,
    help="Drop answers shorter than this.",
)  # fmt: skip
@click.option(
    "--max-chars", type=click.IntRange(min=1), default=16_000, show_default=True,
    help="Drop examples (prompt + answer) longer than this.",
)  # fmt: skip
@click.option(
    "--holdout", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True,
    help="Share of examples held out for evaluation.",
)  # fmt: skip
@click.option(
    "--holdout-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where the holdout goes [default: OUT.holdout.jsonl].",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the holdout split.")
@click.option(
    "--train-on-reasoning",
    is_flag=True,
    help="Put a thinking model's reasoning (captured, or the teacher's) before each answer in a "
    "<think> block, as the DeepSeek-R1 distills were trained (default: the answer only).",
)
@config_option
def collect(
    from_log: bool,
    from_prompts: Path | None,
    out: Path,
    routes: tuple[str, ...],
    tenants: tuple[str, ...],
    since: str,
    teacher: str | None,
    url: str,
    api_key: str | None,
    concurrency: int,
    max_tokens: int,
    temperature: float,
    system: str | None,
    no_cache: bool,
    min_chars: int,
    max_chars: int,
    holdout: float,
    holdout_out: Path | None,
    seed: int,
    train_on_reasoning: bool,
    config: str | None,
) -> None:
    """Write a training set (JSONL of chat examples) and print what was kept and dropped."""
    from thrifty.train import collect as c

    if from_log == (from_prompts is not None):
        raise click.UsageError("give exactly one of --from-log and --from-prompts")
    filters = c.Filters(min_chars=min_chars, max_chars=max_chars)
    summary = c.Summary()
    if from_log:
        examples = _log_examples(config, since, tenants, routes)
    else:
        assert from_prompts is not None
        if not teacher:
            raise click.UsageError("--from-prompts needs --teacher MODEL")
        try:
            prompts = c.read_prompts(from_prompts, system, summary)
        except c.PromptFileError as exc:
            raise click.ClickException(str(exc)) from None
        prompts = c.dedupe_prompts(prompts, filters, summary)
        spec = c.Teacher(
            teacher, url, api_key, max_tokens, temperature, concurrency, use_cache=not no_cache
        )
        with click.progressbar(
            range(len(prompts)), label=f"asking {teacher}", file=sys.stderr
        ) as bar:

            def tick() -> None:
                bar.update(1)

            examples = c.ask_teacher(prompts, spec, summary, on_done=tick)
    summary = c.finish(
        examples,
        out,
        filters=filters,
        holdout=holdout,
        seed=seed,
        holdout_out=holdout_out,
        summary=summary,
        with_reasoning=train_on_reasoning,
    )
    for line in summary.lines():
        click.echo(line)
    click.echo(f"wrote {out}" + (f" and {holdout_out or c.holdout_path(out)}" if holdout else ""))
    if summary.kept == 0:
        hint = (
            " (is capture on? set distill.capture_tenants, see `thrifty config example`)"
            if from_log
            else ""
        )
        raise click.ClickException("no examples kept" + hint)


def _log_examples(
    config: str | None, since: str, tenants: tuple[str, ...], routes: tuple[str, ...]
) -> list[Example]:
    from thrifty.commands.options import cli_settings
    from thrifty.store.reports import parse_since
    from thrifty.train.collect import from_log

    settings = cli_settings(config)
    try:
        start = parse_since(since, time.time())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--since'") from None
    return list(from_log(settings.database_url, since=start, tenants=tenants, routes=routes))

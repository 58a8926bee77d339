"""`thrifty eval`: benchmark any OpenAI-compatible endpoint, and report score per dollar."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from thrifty.commands.options import config_option

_RUN_EPILOG = """\b
Suites: humaneval, gsm8k, mmlu, mt-bench (needs --judge-model), or a JSONL file:
  {"suite": {"name": "faq", "scorer": "contains", "system": "...", "few_shot": [...]}}
  {"id": "q1", "prompt": "Capital of France?", "expected": "Paris"}
  {"messages": [{"role": "user", "content": "..."}], "expected": "...", "scorer": "regex"}
The header row is optional (it may also set max_tokens, and rubric for the judge).
Scorers: exact, regex, contains, numeric, choice (rows may give "choices": [...]),
json-schema (expected is the schema), judge (1-10 by --judge-model; expected optional).

\b
Examples:
  thrifty eval run --suite gsm8k --model local --limit 20
  thrifty eval run --suite humaneval --model deepseek-chat --concurrency 4
  thrifty eval run --suite mt-bench --model local --judge-model deepseek-chat --limit 10
  thrifty eval run --suite my_faq.jsonl --model auto --run-id faq-1   # rerun: resumes
"""

_REPORT_EPILOG = """\b
Examples:
  thrifty eval report                       # the latest run of each suite × model
  thrifty eval report gsm8k-local-20250601-120000 --plot score_vs_cost.png
  thrifty eval report --fail-under gsm8k=0.6 --fail-under mt-bench=7   # a CI gate: exit 1
"""


def _db_path(config: str | None) -> Path:
    from thrifty.commands.options import cli_settings

    home: Path = cli_settings(config).home
    return home / "evals.db"


@click.group("eval")
def eval_group() -> None:
    """Benchmarks (HumanEval, GSM8K, MMLU, MT-Bench, your JSONL) with cost per correct answer.

    \b
    Examples:
      thrifty eval run --suite gsm8k -m local --limit 20
      thrifty eval report --plot score_vs_cost.png
    """


@eval_group.command("run", epilog=_RUN_EPILOG)
@click.option("--suite", "suite_name", required=True, help="A built-in suite or a .jsonl path.")
@click.option("-m", "--model", required=True, help="The model to ask (local, auto, an alias…).")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N items.")
@click.option("--concurrency", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--base-url",
    default=lambda: os.environ.get("THRIFTY_URL", "http://127.0.0.1:8000/v1"),
    show_default="$THRIFTY_URL or http://127.0.0.1:8000/v1",
    help="Any OpenAI-compatible endpoint; through thrifty, routes and costs are recorded.",
)
@click.option(
    "--api-key",
    default=lambda: os.environ.get("THRIFTY_API_KEY") or os.environ.get("OPENAI_API_KEY"),
    show_default="$THRIFTY_API_KEY or $OPENAI_API_KEY",
    help="Bearer key for the endpoint.",
)
@click.option("--max-tokens", type=click.IntRange(min=1), help="Per answer [default: per suite].")
@click.option("--judge-model", help="The model that rates answers 1-10 (mt-bench, judge scorer).")
@click.option("--run-id", help="Name the run; an existing id resumes [default: SUITE-MODEL-TIME].")
@click.option(
    "--timeout",
    "exec_timeout",
    type=click.FloatRange(min=0.5),
    default=10.0,
    show_default=True,
    help="HumanEval: seconds a solution may run.",
)
@click.option("--use-cache", is_flag=True, help="Let thrifty answer from its response cache.")
@config_option
def run_command(
    suite_name: str,
    model: str,
    limit: int | None,
    concurrency: int,
    base_url: str,
    api_key: str | None,
    max_tokens: int | None,
    judge_model: str | None,
    run_id: str | None,
    exec_timeout: float,
    use_cache: bool,
    config: str | None,
) -> None:
    """Run a suite against a model; every item's answer, score, latency, tokens, route and cost
    are stored in $THRIFTY_HOME/evals.db. Ctrl-C stops; the same --run-id resumes."""
    from thrifty.evals import store
    from thrifty.evals.endpoint import Endpoint
    from thrifty.evals.runner import Progress, RunConfig, RunError, run_suite
    from thrifty.evals.sandbox import Limits
    from thrifty.evals.suites import SuiteError, load_suite

    try:
        suite = load_suite(suite_name)
    except SuiteError as exc:
        raise click.ClickException(str(exc)) from None
    run_id = run_id or f"{suite.name}-{model}-{time.strftime('%Y%m%d-%H%M%S')}"
    total = min(limit, len(suite.items)) if limit else len(suite.items)
    run_config = RunConfig(
        run_id=run_id,
        suite=suite,
        source=suite_name,
        model=model,
        endpoint=Endpoint(base_url, api_key, use_cache=use_cache),
        limit=limit,
        concurrency=concurrency,
        max_tokens=max_tokens,
        judge_model=judge_model,
        sandbox=Limits(timeout_s=exec_timeout),
    )
    conn = store.connect(_db_path(config))
    started = time.monotonic()
    try:
        outcome = run_suite(conn, run_config, progress=Progress(f"{suite.name} × {model}", total))
    except KeyboardInterrupt:
        done = len(store.done_items(conn, run_id))
        click.echo(
            f"\ninterrupted: {done}/{total} items stored. Resume with the same command and "
            f"--run-id {run_id}",
            err=True,
        )
        sys.exit(130)
    except RunError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        conn.close()
    wall = time.monotonic() - started
    for line in outcome.errors[:5]:
        click.echo(f"not scored: {line}", err=True)
    scored = f"{outcome.scored} scored now"
    if outcome.skipped:
        scored += f", {outcome.skipped} already done"
    click.echo(f"run {run_id}: {scored} in {wall:.1f}s")
    if not outcome.complete:
        raise click.ClickException(
            f"{outcome.failed} item(s) failed and were not stored; "
            f"rerun with --run-id {run_id} to retry them"
        )
    _print_report([run_id], config, None)


def _print_report(run_ids: list[str], config: str | None, plot: Path | None) -> list[Any]:
    from thrifty.evals import store
    from thrifty.evals.report import render, summarize

    conn = store.connect(_db_path(config))
    try:
        if run_ids:
            runs = []
            for run_id in run_ids:
                run = store.get_run(conn, run_id)
                if run is None:
                    raise click.ClickException(f"no run {run_id!r}")
                runs.append(run)
        else:
            runs = store.latest_runs(conn)
        summaries = [summarize(run, store.items(conn, run.id)) for run in runs]
    finally:
        conn.close()
    if not summaries:
        click.echo("No eval runs yet. Start one: thrifty eval run --suite gsm8k --model local")
        return []
    click.echo(render(summaries))
    if plot is not None:
        from thrifty.evals.plot import MissingExtra, write_png

        try:
            write_png(summaries, plot)
        except MissingExtra as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"wrote {plot}", err=True)
    return summaries


@eval_group.command("report", epilog=_REPORT_EPILOG)
@click.argument("runs", nargs=-1)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a PNG: each run's score (95% CI) against its cost per question.",
)
@click.option(
    "--fail-under",
    "fail_under",
    multiple=True,
    metavar="SUITE=SCORE",
    help="Exit 1 when a suite scores below SCORE (0.6 or 60%; judged suites: 1-10). Repeatable.",
)
@config_option
def report_command(
    runs: tuple[str, ...], plot: Path | None, fail_under: tuple[str, ...], config: str | None
) -> None:
    """Compare runs side by side: score with its 95% interval, p50/p95 latency, tokens, cost and
    cost per correct answer. With no RUN: the latest run of each suite × model."""
    from thrifty.evals.report import failures, parse_threshold

    try:
        thresholds = [parse_threshold(text) for text in fail_under]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--fail-under'") from None
    summaries = _print_report(list(runs), config, plot)
    problems = failures(summaries, thresholds)
    for problem in problems:
        click.echo(f"FAIL {problem}", err=True)
    if problems:
        sys.exit(1)
    if thresholds:
        click.echo("all thresholds met", err=True)

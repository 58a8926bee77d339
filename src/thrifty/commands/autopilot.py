"""`thrifty autopilot run | status | rollback`: the loop that trains local students by itself."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from typing import Any

import click

from thrifty.commands.options import config_option

_EPILOG = """\b
A task is the captured traffic that shares a system prompt (and a tenant, with
autopilot.per_tenant); TASK is its key (16 hex digits, or 6+ of them) as `status` lists it.
Each run: collect → dataset → finetune → export → gate → register → shadow → decide → retrain,
every step recorded in the store; a run cut short continues where it stopped. The shadow step
waits for autopilot.shadow.min_requests new live requests of the task: run again later (the
scheduler, autopilot.enabled in `thrifty serve`, does).

\b
Examples:
  thrifty autopilot run --dry-run                 # what would run, changing nothing
  thrifty autopilot run                           # every task with enough new examples
  thrifty autopilot run 3f2a9c01 --cpu-hours 1 --cloud-usd 0.5
  thrifty autopilot status 3f2a9c01
  thrifty autopilot rollback 3f2a9c01
"""


@click.group("autopilot")
def autopilot() -> None:
    """Train local students from captured cloud answers, gate them, and promote the good ones.

    \b
    Examples:
      thrifty autopilot run --dry-run
      thrifty autopilot status
    """


def _api_key() -> str | None:
    return os.environ.get("THRIFTY_API_KEY") or os.environ.get("OPENAI_API_KEY")


@autopilot.command("run", epilog=_EPILOG)
@click.argument("task", required=False)
@click.option("--dry-run", is_flag=True, help="Say what would run; write nothing.")
@click.option(
    "--cpu-hours", type=click.FloatRange(min=0, min_open=True),
    help="CPU budget of a run [default: autopilot.budget.cpu_hours].",
)  # fmt: skip
@click.option(
    "--cloud-usd", type=click.FloatRange(min=0),
    help="Cloud spend budget of a run [default: autopilot.budget.cloud_usd].",
)  # fmt: skip
@click.option("--force", is_flag=True, help="Start a run even below autopilot.min_examples.")
@click.option(
    "--url", help="The gateway to ask [default: autopilot.url, else this config's host:port]."
)
@config_option
def run_command(
    task: str | None,
    dry_run: bool,
    cpu_hours: float | None,
    cloud_usd: float | None,
    force: bool,
    url: str | None,
    config: str | None,
) -> None:
    """Run (or continue) a cycle for TASK, or for every task with enough new examples."""
    from thrifty.autopilot import Cycle, plan
    from thrifty.commands.options import cli_settings

    settings = cli_settings(config)
    if dry_run:
        for line in plan(settings, task):
            click.echo(line)
        click.echo("dry run: nothing was written")
        return
    cycle = Cycle(
        settings, url=url, api_key=_api_key(), cpu_hours=cpu_hours, cloud_usd=cloud_usd,
        say=lambda text: click.echo(text, err=True),
    )  # fmt: skip
    if task is not None:
        found = cycle.task(task)
        if found is None:
            raise click.ClickException(f"no task {task!r} in the captured samples (see `status`)")
        targets = [found]
    else:
        targets = cycle.tasks()
        if not targets:
            click.echo("no captured tasks yet (is capture on? see distill.capture_tenants)")
            return
    failed = False
    for target in targets:
        report = cycle.run(target, force=force)
        ran = f" [{', '.join(report.ran)}]" if report.ran else ""
        click.echo(
            f"{report.task}: {report.status}{ran}" + (f" — {report.why}" if report.why else "")
        )
        failed |= report.status == "failed"
    if failed:
        sys.exit(1)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _brief(value: Any, limit: int = 400) -> str:
    import json

    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if not k.endswith("_scores") and k != "requests"}
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@autopilot.command("status")
@click.argument("task", required=False)
@click.option("--json", "as_json", is_flag=True, help="Everything, as JSON.")
@config_option
def status(task: str | None, as_json: bool, config: str | None) -> None:
    """The tasks, their runs and every step: data, scores, decision and why.

    \b
    Examples:
      thrifty autopilot status
      thrifty autopilot status 3f2a9c01 --json
    """
    from dataclasses import asdict

    from thrifty.autopilot.tasks import discover
    from thrifty.commands.options import cli_settings
    from thrifty.gateway.promoted import read_promotions
    from thrifty.store.autopilot import read_journal

    settings = cli_settings(config)
    tasks = discover(settings.database_url, settings.autopilot)
    runs = read_journal(settings.database_url)
    if task is not None:
        key = task.partition("@")[0]
        runs = [
            (r, s) for r, s in runs if r.task == key or (len(key) >= 6 and r.task.startswith(key))
        ]
        tasks = [t for t in tasks if t.key.startswith(key)]
    promotions = read_promotions(settings.home)
    if as_json:
        import orjson

        out = {
            "tasks": [asdict(t) for t in tasks],
            "promotions": [asdict(p) for p in promotions],
            "runs": [asdict(r) | {"steps": [asdict(s) for s in steps]} for r, steps in runs],
        }
        click.echo(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo("tasks:" if tasks else "tasks: none captured yet")
    for t in tasks:
        serving = next(
            (p.model for p in promotions if p.task == t.key and p.tenant == t.tenant), None
        )
        click.echo(f"  {t.label}  {t.examples} examples  serving: {serving or 'router'}  "
                   f"system: {t.system[:60]!r}")  # fmt: skip
    for run, steps in runs:
        click.echo(f"\nrun {run.id}  task {run.task}  {run.status}  "
                   f"candidate {run.candidate or '-'}  cpu {run.cpu_s / 3600:.4f} h  "
                   f"cloud ${run.usd_nanos / 1e9:.4f}")  # fmt: skip
        if run.why:
            click.echo(f"  why: {run.why}")
        for s in steps:
            click.echo(f"  {s.seq + 1}. {s.step:<9} {s.status:<8} {_when(s.started)}  "
                       f"attempts {s.attempts}  cpu {s.cpu_s:.1f}s")  # fmt: skip
            if s.data:
                click.echo(f"       data: {_brief(s.data)}")
            if s.scores:
                click.echo(f"     scores: {_brief(s.scores)}")
            if s.decision or s.why:
                click.echo(f"   decision: {s.decision} — {s.why}")


@autopilot.command("rollback")
@click.argument("task")
@config_option
def rollback(task: str, config: str | None) -> None:
    """Take TASK's promoted student off its traffic; what served it before serves it again.

    \b
    Examples:
      thrifty autopilot rollback 3f2a9c01
    """
    from thrifty.autopilot.promote import rollback as undo
    from thrifty.autopilot.tasks import Task, discover, find
    from thrifty.commands.options import cli_settings
    from thrifty.gateway.promoted import read_promotions
    from thrifty.store.autopilot import Journal
    from thrifty.store.db import connect
    from thrifty.store.migrations import migrate

    settings = cli_settings(config)
    found = find(discover(settings.database_url, settings.autopilot), task)
    if found is None:  # a promotion outlives its samples: find the task by its rule
        key, _, tenant = task.partition("@")
        rule = next((p for p in read_promotions(settings.home) if p.task.startswith(key)), None)
        if rule is None:
            raise click.ClickException(f"no task {task!r} with a promoted student")
        found = Task(rule.task, "", tenant or rule.tenant)
    conn = connect(settings.database_url)
    try:
        migrate(conn)
        try:
            taken, serving = undo(settings.home, Journal(conn), found)
        except LookupError as exc:
            raise click.ClickException(str(exc)) from None
    finally:
        conn.close()
    click.echo(f"task {found.label}: {taken} taken off; now serving: {serving}")

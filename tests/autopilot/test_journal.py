"""The autopilot's record in the store, without a model: dry runs, budgets, personal data, the
journal itself. Samples are written to the store as capture writes them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from support import database_url, dump, on_postgres
from thrifty.cli import main
from thrifty.store.autopilot import Journal, Run, Step, read_journal
from thrifty.store.db import connect
from thrifty.store.migrations import migrate
from thrifty.store.outcomes import task_key
from thrifty.store.samples import _INSERT, Sample

SYSTEM = "You answer Acme's customers about returns and deliveries."
TASK = task_key(SYSTEM)
PHONE = "13812345678"


def _samples(n: int, start: float) -> list[Sample]:
    out = []
    for i in range(n):
        messages = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Question {i}: where is parcel {i}?"},
        ]
        out.append(Sample(f"r{i}", start + i, "default", "deepseek-chat", "m", messages, f"A{i}"))
    return out


def _store(home: Path, samples: list[Sample]) -> str:
    url = database_url(home)
    with connect(url) as conn:
        migrate(conn)
        with conn.transaction():
            conn.executemany(_INSERT, [s.row() for s in samples])
    return url


def _cli(home: Path, *args: str) -> Result:
    home.mkdir(parents=True, exist_ok=True)
    config = home / "thrifty.yaml"
    config.write_text(
        json.dumps({"autopilot": {"min_examples": 8, "url": "http://127.0.0.1:9/v1"}})
    )
    return CliRunner().invoke(
        main, ["autopilot", *args, "-c", str(config)], env={"THRIFTY_HOME": str(home)}
    )


def test_a_dry_run_writes_nothing(tmp_path: Path) -> None:
    empty = _cli(tmp_path / "none", "run", "--dry-run")
    assert empty.exit_code == 0, empty.output
    assert "no captured tasks yet" in empty.output
    if not on_postgres():
        assert not (tmp_path / "none" / "thrifty.db").exists()  # not even created
    url = _store(tmp_path, _samples(12, time.time() - 100))
    before = dump(url)
    result = _cli(tmp_path, "run", "--dry-run")
    assert result.exit_code == 0, result.output
    assert (
        f"task {TASK}: would start a run on 12 captured examples: collect, dataset" in result.output
    )
    assert "nothing was written" in result.output
    assert dump(url) == before
    assert not (tmp_path / "autopilot").exists()


def test_a_spent_budget_stops_the_run_and_personal_data_is_never_collected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every step costs one CPU-second on this clock: how long collecting really takes (a few
    # milliseconds, less than the budget on a fast machine) must not decide where the run stops
    clock = iter(range(1_000_000))
    monkeypatch.setattr("thrifty.autopilot.cycle.cpu_seconds", lambda: float(next(clock)))
    rows = _samples(12, time.time() - 100)
    leaked = rows[3].messages[1] | {"content": f"Call me on {PHONE} about parcel 3"}
    # written some other way than capture: flagged masked, yet the number is still there
    messages = [rows[3].messages[0], leaked]
    rows[3] = Sample("r3", rows[3].ts, "default", "deepseek-chat", "m", messages, "A3",
                     frozenset({"phone"}), masked=True)  # fmt: skip
    url = _store(tmp_path, rows)
    result = _cli(tmp_path, "run", TASK[:8], "--cpu-hours", "0.0002")  # 0.72 CPU-seconds
    assert result.exit_code == 0, result.output
    assert f"{TASK}: stopped [collect]" in result.output
    assert "before dataset: CPU budget spent" in result.output
    [(run, steps)] = read_journal(url)
    assert run.status == "stopped" and run.task == TASK and run.cpu_s > 0
    [collect] = steps
    assert collect.status == "done" and collect.data["samples"] == 12
    assert collect.data["kept"] == 11 and collect.data["refused_pii"] == 1
    assert collect.data["pii_kinds"] == {"phone": 1}
    collected = Path(collect.data["file"]).read_text()
    assert PHONE not in collected and collected.count("\n") == 11
    status = _cli(tmp_path, "status", TASK[:8])
    assert status.exit_code == 0, status.output
    assert f"run {run.id}  task {TASK}  stopped" in status.output
    assert "1. collect   done" in status.output and '"refused_pii": 1' in status.output
    assert "decision: collected — 11 of 12 samples kept" in status.output


def test_a_task_below_min_examples_is_skipped_and_unknown_ones_refused(tmp_path: Path) -> None:
    _store(tmp_path, _samples(5, time.time() - 100))
    result = _cli(tmp_path, "run")
    assert result.exit_code == 0, result.output
    assert f"{TASK}: skipped — 5 new captured examples, 8 needed" in result.output
    unknown = _cli(tmp_path, "run", "0123456789")
    assert unknown.exit_code != 0 and "no task '0123456789'" in unknown.output
    assert _cli(tmp_path, "rollback", TASK).exit_code != 0  # nothing promoted


def test_the_journal_counts_attempts_and_keeps_what_a_step_measured(tmp_path: Path) -> None:
    url = database_url(tmp_path)
    with connect(url) as conn:
        migrate(conn)
        journal = Journal(conn)
        journal.add_run(Run("r1", "t" * 16, None, "sys"))
        assert journal.start_step("r1", "collect", 0) == 1
        assert journal.start_step("r1", "collect", 0) == 2  # cut short, run again
        data: dict[str, Any] = {"kept": 3, "file": "x.jsonl"}
        journal.finish_step(Step("r1", "collect", 0, "done", data=data, scores={"p": 0.01},
                                 decision="collected", why="3 kept", cpu_s=1.5))  # fmt: skip
        journal.add_spend("r1", 1.5, 7)
        assert journal.open_run("t" * 16, None) is not None
        journal.update_run("r1", status="promoted")
        assert journal.open_run("t" * 16, None) is None
    [(run, [step])] = read_journal(url)
    assert (run.status, run.cpu_s, run.usd_nanos) == ("promoted", 1.5, 7)
    assert (step.attempts, step.data, step.scores, step.cpu_s) == (2, data, {"p": 0.01}, 1.5)


@pytest.mark.parametrize("missing", ["database", "tables"])
def test_status_on_a_store_without_the_tables(tmp_path: Path, missing: str) -> None:
    if missing == "tables":
        _store(tmp_path, [])
    result = _cli(tmp_path, "status")
    assert result.exit_code == 0, result.output
    assert "tasks: none captured yet" in result.output


def test_the_scheduler_is_off_by_default_and_runs_the_cli_when_on(tmp_path: Path) -> None:
    from thrifty.autopilot.scheduler import start_scheduler
    from thrifty.config import Settings

    assert start_scheduler(Settings(home=tmp_path), None) is None
    _store(tmp_path, _samples(5, time.time() - 100))
    settings = Settings(home=tmp_path, autopilot={"enabled": True, "interval_s": 3600})
    assert settings.distill.capture_tenants == ["*"]  # the autopilot turns capture on
    scheduler = start_scheduler(settings, None)
    assert scheduler is not None
    try:
        assert scheduler.once() == 0  # what each tick runs: `thrifty autopilot run`, a child
    finally:
        scheduler.stop()
    log = (tmp_path / "autopilot" / "scheduler.log").read_text()
    assert f"{TASK}: skipped — 5 new captured examples, 32 needed" in log


def test_rollback_restores_the_previously_promoted_student(tmp_path: Path) -> None:
    import yaml

    from thrifty.autopilot.promote import promote, rollback
    from thrifty.autopilot.tasks import Task
    from thrifty.backends.models import registered
    from thrifty.gateway.promoted import read_promotions

    models = {name: {"path": str(tmp_path / f"{name}.gguf"), "adapter_of": "smollm2-135m"}
              for name in ("first", "second")}  # fmt: skip
    (tmp_path / "models.yaml").write_text(yaml.safe_dump({"models": models}))
    task = Task(TASK, SYSTEM, None)
    with connect(database_url(tmp_path)) as conn:
        migrate(conn)
        journal = Journal(conn)
        journal.add_run(Run("r1", TASK, None, SYSTEM, status="promoted", candidate="first",
                            previous="local"))  # fmt: skip
        promote(tmp_path, journal, task, "r1", "first")
        journal.add_run(Run("r2", TASK, None, SYSTEM, status="promoted", candidate="second",
                            previous="first"))  # fmt: skip
        promote(tmp_path, journal, task, "r2", "second")
        assert journal.run("r1").status == "superseded"  # type: ignore[union-attr]
        assert [p.model for p in read_promotions(tmp_path)] == ["second"]
        assert rollback(tmp_path, journal, task) == ("second", "first")
        assert [(p.model, p.run) for p in read_promotions(tmp_path)] == [("first", "r1")]
        assert set(registered(tmp_path)) == {"first"}
        statuses = {r.id: r.status for r in journal.runs(TASK)}
        assert statuses == {"r1": "promoted", "r2": "rolled_back"}
        assert rollback(tmp_path, journal, task) == ("first", "local")
        assert read_promotions(tmp_path) == [] and registered(tmp_path) == {}
        with pytest.raises(LookupError):
            rollback(tmp_path, journal, task)


def test_per_tenant_tasks_split_the_traffic_and_see_only_their_tenants_samples(
    tmp_path: Path,
) -> None:
    from thrifty.autopilot.tasks import discover, find, samples
    from thrifty.config import AutopilotSettings

    start = time.time() - 100
    acme = _samples(6, start)
    globex = [
        Sample(f"g{i}", start + 50 + i, "globex", "deepseek-chat", "m", s.messages, f"G{i}")
        for i, s in enumerate(_samples(4, start))
    ]
    url = _store(tmp_path, acme + globex)
    pooled = discover(url, AutopilotSettings())
    assert [(t.key, t.tenant, t.examples) for t in pooled] == [(TASK, None, 10)]
    split = discover(url, AutopilotSettings(per_tenant=True))
    assert [(t.label, t.examples) for t in split] == [(f"{TASK}@default", 6), (f"{TASK}@globex", 4)]
    settings = AutopilotSettings(per_tenant=True)
    globex_task = find(split, f"{TASK}@globex")
    assert globex_task is not None and find(split, TASK) is None  # per tenant: name the tenant
    assert [s.answer for s in samples(url, globex_task, settings)] == [f"G{i}" for i in range(4)]
    only = discover(url, AutopilotSettings(per_tenant=True, tenants=["globex"]))
    assert [t.label for t in only] == [f"{TASK}@globex"]  # autopilot.tenants limits the tasks

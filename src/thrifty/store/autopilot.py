"""The autopilot's journal: its runs (one cycle of one task) and their steps.

Every step writes what it ran on (``data``), what it measured (``scores``) and what it decided
and why, so `thrifty autopilot status` can show a cycle whole and a killed run can continue from
the first step that is not done. Tables from migration ``0022_autopilot``; SQLite and
PostgreSQL alike.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from thrifty.store.db import Connection, MissingTable, NoDatabase, connect

RUN_COLUMNS = (
    "id", "task", "tenant", "system", "status", "candidate", "previous", "created", "updated",
    "decision", "why", "cpu_s", "usd_nanos",
)  # fmt: skip
STEP_COLUMNS = (
    "run_id", "step", "seq", "status", "attempts", "started", "finished", "cpu_s", "usd_nanos",
    "data", "scores", "decision", "why",
)  # fmt: skip
OPEN = ("running", "waiting", "stopped", "failed")  # a run that a later `run` continues


@dataclass(slots=True)
class Run:
    id: str
    task: str
    tenant: str | None
    system: str
    status: str = "running"
    candidate: str | None = None
    previous: str | None = None
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    decision: str = ""
    why: str = ""
    cpu_s: float = 0.0
    usd_nanos: int = 0

    def row(self) -> tuple[Any, ...]:
        return tuple(getattr(self, c) for c in RUN_COLUMNS)


@dataclass(slots=True)
class Step:
    run_id: str
    step: str
    seq: int
    status: str
    attempts: int = 1
    started: float = field(default_factory=time.time)
    finished: float | None = None
    cpu_s: float = 0.0
    usd_nanos: int = 0
    data: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)
    decision: str = ""
    why: str = ""


def _run(row: Any) -> Run:
    return Run(**{c: row[c] for c in RUN_COLUMNS})


def _step(row: Any) -> Step:
    values = {c: row[c] for c in STEP_COLUMNS}
    values["data"] = json.loads(values["data"] or "{}")
    values["scores"] = json.loads(values["scores"] or "{}")
    return Step(**values)


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


class Journal:
    """Reads and writes runs and steps on one (migrated) connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # -- runs ------------------------------------------------------------------------------------

    def add_run(self, run: Run) -> None:
        marks = ", ".join("?" * len(RUN_COLUMNS))
        with self.conn.transaction():
            self.conn.execute(
                f"INSERT INTO autopilot_runs ({', '.join(RUN_COLUMNS)}) VALUES ({marks})",
                run.row(),
            )

    def update_run(self, run_id: str, **fields: Any) -> None:
        fields["updated"] = time.time()
        sets = ", ".join(f"{name} = ?" for name in fields)
        with self.conn.transaction():
            self.conn.execute(
                f"UPDATE autopilot_runs SET {sets} WHERE id = ?", (*fields.values(), run_id)
            )

    def add_spend(self, run_id: str, cpu_s: float, usd_nanos: int) -> None:
        with self.conn.transaction():
            self.conn.execute(
                "UPDATE autopilot_runs SET cpu_s = cpu_s + ?, usd_nanos = usd_nanos + ?, "
                "updated = ? WHERE id = ?",
                (cpu_s, usd_nanos, time.time(), run_id),
            )

    def run(self, run_id: str) -> Run | None:
        row = self.conn.execute(
            f"SELECT {', '.join(RUN_COLUMNS)} FROM autopilot_runs WHERE id = ?", (run_id,)
        ).fetchone()
        return _run(row) if row else None

    def runs(self, task: str | None = None) -> list[Run]:
        """Runs, oldest first (of one task when given)."""
        where, params = ("WHERE task = ?", (task,)) if task else ("", ())
        rows = self.conn.execute(
            f"SELECT {', '.join(RUN_COLUMNS)} FROM autopilot_runs {where} ORDER BY created, id",
            params,
        )
        return [_run(r) for r in rows]

    def open_run(self, task: str, tenant: str | None) -> Run | None:
        """The task's newest run that has not ended (a later `run` continues it)."""
        for run in reversed(self.runs(task)):
            if run.tenant == tenant and run.status in OPEN:
                return run
        return None

    # -- steps -----------------------------------------------------------------------------------

    def start_step(self, run_id: str, step: str, seq: int) -> int:
        """Mark a step running; returns its attempt number (2 and up: it was cut short before)."""
        with self.conn.transaction():
            row = self.conn.execute(
                "SELECT attempts FROM autopilot_steps WHERE run_id = ? AND step = ?",
                (run_id, step),
            ).fetchone()
            now = time.time()
            if row is None:
                self.conn.execute(
                    "INSERT INTO autopilot_steps (run_id, step, seq, status, attempts, started) "
                    "VALUES (?, ?, ?, 'running', 1, ?)",
                    (run_id, step, seq, now),
                )
                return 1
            attempts = int(row["attempts"]) + 1
            self.conn.execute(
                "UPDATE autopilot_steps SET status = 'running', attempts = ?, started = ?, "
                "finished = NULL WHERE run_id = ? AND step = ?",
                (attempts, now, run_id, step),
            )
            return attempts

    def finish_step(self, step: Step) -> None:
        with self.conn.transaction():
            self.conn.execute(
                "UPDATE autopilot_steps SET status = ?, finished = ?, cpu_s = cpu_s + ?, "
                "usd_nanos = usd_nanos + ?, data = ?, scores = ?, decision = ?, why = ? "
                "WHERE run_id = ? AND step = ?",
                (
                    step.status,
                    step.finished or time.time(),
                    step.cpu_s,
                    step.usd_nanos,
                    _json(step.data),
                    _json(step.scores),
                    step.decision,
                    step.why,
                    step.run_id,
                    step.step,
                ),
            )

    def steps(self, run_id: str) -> list[Step]:
        rows = self.conn.execute(
            f"SELECT {', '.join(STEP_COLUMNS)} FROM autopilot_steps WHERE run_id = ? ORDER BY seq",
            (run_id,),
        )
        return [_step(r) for r in rows]


def read_journal(url: str, task: str | None = None) -> list[tuple[Run, list[Step]]]:
    """Every run (of one task) with its steps, without creating or migrating anything."""
    try:
        conn = connect(url, create=False)
    except NoDatabase:
        return []
    try:
        journal = Journal(conn)
        try:
            return [(run, journal.steps(run.id)) for run in journal.runs(task)]
        except MissingTable:
            return []
    finally:
        conn.close()

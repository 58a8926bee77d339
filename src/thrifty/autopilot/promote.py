"""Promotion and roll back: the autopilot's routing rules and the students in the registry.

Promoting gives a task's `auto` traffic to a student (`thrifty.gateway.promoted`); `local` is
unchanged for everyone else. Rolling back restores what served the task before: the previously
promoted student (its rule again), or no rule (the router's own choice).
"""

from __future__ import annotations

import time
from pathlib import Path

from thrifty.autopilot.tasks import Task
from thrifty.backends.models import registered, remove_model
from thrifty.gateway.promoted import Promotion, read_promotions, write_promotions
from thrifty.store.autopilot import Journal

ROUTER = "local"  # what the gate compares with when no student serves the task yet


def candidate_name(task: str, run_id: str) -> str:
    return f"autopilot-{task[:8]}-{run_id[-6:]}"


def _mine(promotion: Promotion, task: Task) -> bool:
    return promotion.task == task.key and promotion.tenant == task.tenant


def current_model(home: Path, task: Task) -> str:
    """The student serving the task now, else `local`."""
    for promotion in read_promotions(home):
        if _mine(promotion, task):
            return promotion.model
    return ROUTER


def promote(home: Path, journal: Journal, task: Task, run_id: str, model: str) -> None:
    """The task's traffic goes to `model`; the run it replaces is marked superseded."""
    promotions = read_promotions(home)
    for old in promotions:
        if _mine(old, task) and old.run != run_id:
            journal.update_run(old.run, status="superseded")
    kept = [p for p in promotions if not _mine(p, task)]
    write_promotions(home, [*kept, Promotion(task.key, model, run_id, time.time(), task.tenant)])


def discard(home: Path, model: str) -> None:
    """Take a candidate that will serve nothing out of the registry (its file stays)."""
    if model != ROUTER and model in registered(home):
        remove_model(home, model)


def rollback(home: Path, journal: Journal, task: Task) -> tuple[str, str]:
    """Undo the task's newest promotion; returns (the model taken off, what serves now)."""
    promotions = read_promotions(home)
    mine = next((p for p in promotions if _mine(p, task)), None)
    if mine is None:
        raise LookupError(f"task {task.label} has no promoted student to roll back")
    run = journal.run(mine.run)
    rest = [p for p in promotions if not _mine(p, task)]
    restored = ROUTER
    previous = run.previous if run is not None else None
    if previous and previous != ROUTER and previous in registered(home):
        earlier = next((r for r in journal.runs(task.key) if r.candidate == previous), None)
        if earlier is not None:
            rest.append(Promotion(task.key, previous, earlier.id, time.time(), task.tenant))
            journal.update_run(earlier.id, status="promoted")
            restored = previous
    write_promotions(home, rest)  # the rule goes first, then the model it named
    journal.update_run(mine.run, status="rolled_back", why=f"rolled back to {restored}")
    discard(home, mine.model)
    return mine.model, restored

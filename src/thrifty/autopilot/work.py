"""What a step of a cycle sees and returns, and the budgets it spends."""

from __future__ import annotations

import resource
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thrifty.autopilot.ask import Asker
from thrifty.autopilot.tasks import Task
from thrifty.config import Settings
from thrifty.store.autopilot import Journal, Run, Step

Say = Callable[[str], None]


class BudgetExhausted(Exception):
    """A run reached one of its budgets."""


@dataclass(slots=True)
class Budget:
    cpu_s: float
    usd_nanos: int
    spent_cpu_s: float = 0.0
    spent_nanos: int = 0

    def check(self) -> None:
        if self.spent_cpu_s >= self.cpu_s:
            raise BudgetExhausted(
                f"CPU budget spent: {self.spent_cpu_s / 3600:.4f} of "
                f"{self.cpu_s / 3600:g} CPU-hours"
            )
        if self.spent_nanos > self.usd_nanos:
            raise BudgetExhausted(
                f"cloud budget spent: ${self.spent_nanos / 1e9:.4f} of ${self.usd_nanos / 1e9:g}"
            )

    def spend_cloud(self, nanos: int) -> None:
        self.spent_nanos += nanos
        if self.spent_nanos > self.usd_nanos:
            raise BudgetExhausted(
                f"cloud budget spent: ${self.spent_nanos / 1e9:.4f} of ${self.usd_nanos / 1e9:g}"
            )


@dataclass(slots=True)
class Outcome:
    """What a step returns: what it read and wrote, what it measured, what it decided."""

    data: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)
    decision: str = ""
    why: str = ""
    stop: str | None = None  # end the run with this status (rejected, waiting, …)
    status: str = "done"  # the step's own status (waiting: run it again next time)


@dataclass(slots=True)
class Work:
    """What a step sees: the settings, the task, its run and the records of earlier steps."""

    settings: Settings
    task: Task
    run: Run
    journal: Journal
    dir: Path
    done: dict[str, Step]
    budget: Budget
    asker: Asker
    say: Say

    def data(self, step: str) -> dict[str, Any]:
        return self.done[step].data

    def scores(self, step: str) -> dict[str, Any]:
        return self.done[step].scores


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the converter, llama-quantize)."""
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

"""One cycle of one task: the steps in order, each recorded before and after it runs.

A run continues where it stopped: the steps already done are not run again (their records hold
what the later steps need), a step cut short is run again (`attempts` counts), and the trainer
resumes from its own checkpoints. A step ends the run early by returning ``stop``: the gate
rejected the candidate, the live check waits for traffic. Budgets are checked before each step.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from thrifty.autopilot.ask import Asker
from thrifty.autopilot.steps import STEP_FUNCTIONS
from thrifty.autopilot.tasks import Task, discover, find, samples
from thrifty.autopilot.work import Budget, BudgetExhausted, Outcome, Say, Work, cpu_seconds
from thrifty.config import Settings
from thrifty.store.autopilot import Journal, Run, Step, read_journal
from thrifty.store.db import connect
from thrifty.store.migrations import migrate

STEPS = (
    "collect", "dataset", "finetune", "export", "gate", "register", "shadow", "decide", "retrain",
)  # fmt: skip


@dataclass(slots=True)
class CycleReport:
    task: str
    run: str | None
    status: str  # the run's status after this call (skipped: no run was started)
    why: str
    ran: list[str] = field(default_factory=list)  # the steps this call ran


def gateway_url(settings: Settings) -> str:
    if settings.autopilot.url:
        return settings.autopilot.url
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    scheme = "https" if settings.ssl_certfile else "http"
    return f"{scheme}://{host}:{settings.port}/v1"


class Cycle:
    """Runs cycles for the tasks of one configuration."""

    def __init__(
        self,
        settings: Settings,
        *,
        url: str | None = None,
        api_key: str | None = None,
        cpu_hours: float | None = None,
        cloud_usd: float | None = None,
        say: Say = lambda _: None,
    ) -> None:
        self.settings = settings
        self.url = url or gateway_url(settings)
        self.api_key = api_key
        budget = settings.autopilot.budget
        self.cpu_hours = cpu_hours if cpu_hours is not None else budget.cpu_hours
        self.cloud_usd = cloud_usd if cloud_usd is not None else budget.cloud_usd
        self.say = say

    def tasks(self) -> list[Task]:
        return discover(self.settings.database_url, self.settings.autopilot)

    def task(self, name: str) -> Task | None:
        return find(self.tasks(), name)

    def run(self, task: Task, *, force: bool = False) -> CycleReport:
        """Start a cycle for `task`, or continue its open one."""
        conn = connect(self.settings.database_url)
        try:
            migrate(conn)
            journal = Journal(conn)
            run = journal.open_run(task.key, task.tenant)
            if run is None:
                fresh = self._fresh_examples(journal, task)
                needed = self.settings.autopilot.min_examples
                if fresh < needed and not force:
                    why = f"{fresh} new captured examples, {needed} needed"
                    return CycleReport(task.label, None, "skipped", why)
                run = Run(_run_id(), task.key, task.tenant, task.system[:200])
                journal.add_run(run)
                self.say(f"task {task.label}: run {run.id} started")
            else:
                journal.update_run(run.id, status="running")
                self.say(f"task {task.label}: run {run.id} continues")
            done = {s.step: s for s in journal.steps(run.id) if s.status == "done"}
            budget = Budget(
                self.cpu_hours * 3600, int(self.cloud_usd * 1e9), run.cpu_s, run.usd_nanos
            )
            asker = Asker(
                self.url, self.api_key, self.settings.autopilot.max_tokens, budget.spend_cloud
            )
            folder = self.settings.home / "autopilot" / task.key / run.id
            folder.mkdir(parents=True, exist_ok=True)
            work = Work(self.settings, task, run, journal, folder, done, budget, asker, self.say)
            report = CycleReport(task.label, run.id, "running", "")
            for seq, name in enumerate(STEPS):
                if name in done:
                    continue
                try:
                    budget.check()
                except BudgetExhausted as exc:
                    return self._end(journal, run, report, "stopped", f"before {name}: {exc}")
                journal.start_step(run.id, name, seq)
                self.say(f"  {name} …")
                cpu, nanos = cpu_seconds(), budget.spent_nanos
                step = Step(run.id, name, seq, "failed")
                try:
                    outcome = STEP_FUNCTIONS[name](work)
                except BudgetExhausted as exc:
                    outcome = Outcome(status="failed", why=str(exc), stop="stopped")
                except Exception as exc:
                    outcome = Outcome(
                        status="failed", why=f"{type(exc).__name__}: {exc}", stop="failed"
                    )
                step.cpu_s = cpu_seconds() - cpu
                step.usd_nanos = budget.spent_nanos - nanos
                budget.spent_cpu_s += step.cpu_s
                step.status, step.data, step.scores = outcome.status, outcome.data, outcome.scores
                step.decision, step.why = outcome.decision, outcome.why
                journal.finish_step(step)
                journal.add_spend(run.id, step.cpu_s, step.usd_nanos)
                report.ran.append(name)
                self.say(
                    f"  {name}: {outcome.status}" + (f" ({outcome.why})" if outcome.why else "")
                )
                if outcome.status == "done":
                    done[name] = step
                if outcome.stop is not None:
                    return self._end(journal, run, report, outcome.stop, f"{name}: {outcome.why}")
            final = journal.run(run.id)
            status = final.decision if final and final.decision in ("promoted", "kept") else "done"
            return self._end(journal, run, report, status, f"decide: {done['decide'].why}")
        finally:
            conn.close()

    def _fresh_examples(self, journal: Journal, task: Task) -> int:
        """Examples captured since the task's last run collected (all of them for a first run)."""
        for run in reversed(journal.runs(task.key)):
            if run.tenant != task.tenant:
                continue
            collect = next((s for s in journal.steps(run.id) if s.step == "collect"), None)
            until = collect.data.get("until") if collect is not None else None
            if until:
                url = self.settings.database_url
                return len(samples(url, task, self.settings.autopilot, since=float(until)))
        return task.examples

    def _end(
        self, journal: Journal, run: Run, report: CycleReport, status: str, why: str
    ) -> CycleReport:
        journal.update_run(run.id, status=status, why=why)
        report.status, report.why = status, why
        self.say(f"run {run.id}: {status}" + (f" ({why})" if why else ""))
        return report


def _run_id() -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def plan(settings: Settings, name: str | None = None) -> list[str]:
    """What `run` would do, read without writing anything (the store is not even created)."""
    auto = settings.autopilot
    tasks = discover(settings.database_url, auto)
    if name is not None:
        task = find(tasks, name)
        tasks = [task] if task else []
    if not tasks:
        return [f"no task {name!r} in the captured samples" if name else "no captured tasks yet"]
    lines = []
    runs = read_journal(settings.database_url)
    for task in tasks:
        open_runs = [
            (r, s)
            for r, s in runs
            if r.task == task.key
            and r.tenant == task.tenant
            and r.status in ("running", "waiting", "stopped", "failed")
        ]
        if open_runs:
            run, steps = open_runs[-1]
            done = [s.step for s in steps if s.status == "done"]
            todo = [s for s in STEPS if s not in done]
            lines.append(
                f"task {task.label}: would continue run {run.id} ({run.status}) with "
                + ", ".join(todo)
            )
        elif task.examples < auto.min_examples:
            lines.append(
                f"task {task.label}: would skip ({task.examples} captured examples, "
                f"{auto.min_examples} needed)"
            )
        else:
            lines.append(
                f"task {task.label}: would start a run on {task.examples} captured examples: "
                + ", ".join(STEPS)
            )
    return lines

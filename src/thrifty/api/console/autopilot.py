"""Autopilot: each cycle `thrifty autopilot` ran for a task (capture → distill → fine-tune →
export → gate → A/B → promote or roll back), its steps, what each decided and why, and what it
spent (`thrifty.store.autopilot`'s journal). Admins see every run; other roles their tenant's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from thrifty.api.console._html import Raw, View, esc, table, usd
from thrifty.store.autopilot import Run, Step, read_journal

TEXT = {
    "en": {
        "runs": "Runs (newest first)",
        "run": "Run",
        "task": "Task",
        "status": "Status",
        "candidate": "Candidate",
        "decision": "Decision",
        "why": "Why",
        "cpu": "CPU s",
        "spent": "Cloud spend",
        "updated": "Updated",
        "steps": "Steps of",
        "step": "Step",
        "attempts": "Attempts",
        "took": "Took s",
        "scores": "Measured",
        "none_runs": "The autopilot has not run yet (`thrifty autopilot run`).",
    },
    "zh": {
        "runs": "运行记录（最新在前）",
        "run": "运行",
        "task": "任务",
        "status": "状态",
        "candidate": "候选模型",
        "decision": "决定",
        "why": "原因",
        "cpu": "CPU 秒",
        "spent": "云端花费",
        "updated": "更新时间",
        "steps": "步骤：",
        "step": "步骤",
        "attempts": "尝试次数",
        "took": "用时（秒）",
        "scores": "测得",
        "none_runs": "自动驾驶还没有运行过（`thrifty autopilot run`）。",
    },
}

_MAX_RUNS = 20


def _when(ts: float | None) -> str:
    return "–" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def _scores(scores: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(scores.items())
    )[:160]


def visible(view: View) -> list[tuple[Run, list[Step]]]:
    journal = read_journal(view.rt.settings.database_url)
    if view.tenant is not None:  # a run over every tenant's traffic is an admin's to see
        journal = [(run, steps) for run, steps in journal if run.tenant == view.tenant]
    return journal[::-1][:_MAX_RUNS]


def render(view: View) -> str:
    t = view.words(TEXT)
    journal = visible(view)
    if not journal:
        return f"<p id=no-runs>{t['none_runs']}</p>"
    runs = [run for run, _ in journal]
    parts = [
        f"<h3>{t['runs']}</h3>",
        table(
            "runs",
            [
                t["run"],
                t["task"],
                t["tenant"],
                t["status"],
                t["candidate"],
                t["decision"],
                t["why"],
                t["cpu"],
                t["spent"],
                t["updated"],
            ],
            (
                [
                    r.id,
                    r.task[:12],
                    r.tenant or "*",
                    Raw(f"<span class=status>{esc(r.status)}</span>"),
                    r.candidate or "–",
                    r.decision or "–",
                    r.why[:120] or "–",
                    f"{r.cpu_s:.1f}",
                    usd(r.usd_nanos),
                    _when(r.updated),
                ]
                for r in runs
            ),
            [f"data-run='{esc(r.id)}' data-status='{esc(r.status)}'" for r in runs],
        ),
    ]
    for run, steps in journal[:5]:  # the latest cycles, step by step
        parts.append(f"<h4>{t['steps']} {esc(run.id)}</h4>")
        parts.append(
            table(
                f"steps-{esc(run.id)}",
                [
                    t["step"],
                    t["status"],
                    t["attempts"],
                    t["took"],
                    t["decision"],
                    t["why"],
                    t["scores"],
                ],
                (
                    [
                        s.step,
                        s.status,
                        s.attempts,
                        "–" if s.finished is None else f"{s.finished - s.started:.1f}",
                        s.decision or "–",
                        s.why[:120] or "–",
                        _scores(s.scores) or "–",
                    ]
                    for s in steps
                ),
                [f"data-step='{esc(s.step)}' data-status='{esc(s.status)}'" for s in steps],
            )
        )
    return "".join(parts)

"""Tasks: captured requests that share a system prompt (and a tenant, when per_tenant)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from thrifty.config import AutopilotSettings
from thrifty.gateway.pii import PIIDetector
from thrifty.gateway.scorer import system_text
from thrifty.store.outcomes import task_key
from thrifty.store.samples import Sample, read_samples
from thrifty.train.collect import Example, text_of


@dataclass(frozen=True, slots=True)
class Task:
    key: str  # task_key(system prompt): what rules, outcomes and `status` name
    system: str
    tenant: str | None  # None: every tenant's traffic of the task
    examples: int = 0  # captured samples seen

    @property
    def label(self) -> str:
        return self.key + (f"@{self.tenant}" if self.tenant else "")


def key_of(messages: Sequence[dict[str, Any]]) -> tuple[str, str]:
    system = system_text(messages)
    return task_key(system), system


def _tenants(settings: AutopilotSettings) -> list[str]:
    return [] if "*" in settings.tenants else list(settings.tenants)


def discover(url: str, settings: AutopilotSettings) -> list[Task]:
    """Every task with captured samples, most examples first (requests without a system prompt
    are no task)."""
    counts: dict[tuple[str, str | None], int] = {}
    systems: dict[str, str] = {}
    for sample in read_samples(url, tenants=_tenants(settings)):
        key, system = key_of(sample.messages)
        if not key:
            continue
        systems[key] = system
        slot = (key, sample.tenant if settings.per_tenant else None)
        counts[slot] = counts.get(slot, 0) + 1
    tasks = [Task(k, systems[k], t, n) for (k, t), n in counts.items()]
    return sorted(tasks, key=lambda t: (-t.examples, t.label))


def find(tasks: Iterable[Task], name: str) -> Task | None:
    """The task a user names: its key (or a prefix of 6+ digits), with @tenant when per tenant."""
    key, _, tenant = name.partition("@")
    found = [
        t
        for t in tasks
        if (t.key == key or (len(key) >= 6 and t.key.startswith(key)))
        and (t.tenant or "") == tenant
    ]
    return found[0] if len(found) == 1 else None


def samples(
    url: str,
    task: Task,
    settings: AutopilotSettings,
    *,
    since: float | None = None,
    until: float | None = None,
) -> list[Sample]:
    """The task's captured samples, oldest first, in [since, until)."""
    tenants = [task.tenant] if task.tenant else _tenants(settings)
    out = []
    for sample in read_samples(url, since=since, tenants=tenants):
        if until is not None and sample.ts >= until:
            break
        if key_of(sample.messages)[0] == task.key:
            out.append(sample)
    return out


def others(url: str, task: Task, settings: AutopilotSettings, limit: int) -> list[Sample]:
    """Up to `limit` recent samples of other tasks (the regression check's examples)."""
    if limit <= 0:
        return []
    found = [
        s
        for s in read_samples(url, tenants=_tenants(settings))
        if key_of(s.messages)[0] != task.key
    ]
    return found[-limit:]


def example_of(sample: Sample) -> Example:
    return Example([*sample.messages, {"role": "assistant", "content": sample.answer}])


def personal_data(example: Example, detector: PIIDetector) -> set[str]:
    """The kinds of personal data the detector still sees anywhere in a training row."""
    found: set[str] = set()
    for message in example.messages:
        found |= detector.kinds_in(text_of(message.get("content")))
    return found

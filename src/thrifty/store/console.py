"""The console's numbers that `thrifty.store.reports` does not already give: one query per page.

Every function reads a window of the request log (or the outcomes, or the stored `route eval`
sweeps) of one tenant when given, and groups in Python, as `reports` does: the same SQL runs on
SQLite and PostgreSQL. `load` opens the database for one of them, and gives the empty answer
when the log does not exist yet.
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from thrifty.store.db import Connection, MissingTable, NoDatabase, connect

T = TypeVar("T")


def load(url: str, query: Callable[[Connection], T], empty: T) -> T:
    """`query` over the database at `url`; `empty` when it (or its table) is not there yet."""
    try:
        conn = connect(url, create=False)
    except NoDatabase:
        return empty
    with conn:
        try:
            return query(conn)
        except MissingTable:
            return empty


def _where(since: float, tenant: str | None) -> tuple[str, list[Any]]:
    if tenant is None:
        return "ts >= ?", [since]
    return "ts >= ? AND tenant = ?", [since, tenant]


# -- routing --------------------------------------------------------------------------------------

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_CASCADE = re.compile(r"cascade: (\S+) failed (\S+) -> (\S+)")
_FALLBACK = re.compile(r"fallback (\S+) -> (\S+): (\S+)")


def split_reason(reason: str) -> tuple[str, str]:
    """``rule:cheap (p=0.83 ≥ 0.8); pii=…`` -> (``rule:cheap``, ``p=n ≥ n``): numbers blurred so
    that decisions of one kind count together."""
    head = reason.split("; ", 1)[0]
    rule, _, why = head.partition(" (")
    return rule, _NUMBER.sub("n", why.rstrip(")"))


@dataclass(slots=True)
class RoutingReport:
    requests: int = 0
    # (rule, why, route) -> requests
    decisions: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    # (first target, failed check, escalated to) -> requests
    escalations: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    # (failed target, next target, error code) -> requests
    fallbacks: Counter[tuple[str, str, str]] = field(default_factory=Counter)


def routing_report(conn: Connection, since: float, tenant: str | None = None) -> RoutingReport:
    """Decisions by rule, reason and route; escalations of cascades; fallbacks."""
    where, params = _where(since, tenant)
    report = RoutingReport()
    for reason, route in conn.execute(f"SELECT reason, route FROM requests WHERE {where}", params):
        report.requests += 1
        rule, why = split_reason(reason)
        report.decisions[(rule, why, route)] += 1
        for match in _CASCADE.finditer(reason):
            report.escalations[(match[1], match[2], match[3])] += 1
        for match in _FALLBACK.finditer(reason):
            report.fallbacks[(match[1], match[2], match[3])] += 1
    return report


@dataclass(frozen=True, slots=True)
class ShadowRow:
    target: str
    judged: int  # outcomes with a label
    good: int  # judged good enough
    cost_nanos: int  # the known costs' sum


def shadow_report(conn: Connection, since: float, tenant: str | None = None) -> list[ShadowRow]:
    """Shadow evaluations in the window, per target: how many, how many good enough."""
    where, params = _where(since, tenant)
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    rows = conn.execute(
        f"SELECT target, ok, cost_nanos FROM outcomes WHERE source = 'shadow' AND {where}", params
    )
    for target, ok, cost in rows:
        entry = sums[target]
        if ok is not None:
            entry[0] += 1
            entry[1] += int(bool(ok))
        entry[2] += cost or 0
    return [ShadowRow(t, *sums[t]) for t in sorted(sums)]


# -- `thrifty route eval`'s sweeps ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouteEval:
    ts: float
    local: str
    cloud: str
    result: dict[str, Any]  # evals.routing.summarize's: points, apgr, cpt, at_quality


def save_route_eval(conn: Connection, local: str, cloud: str, result: dict[str, Any]) -> None:
    conn.execute(
        "INSERT INTO route_evals (ts, local, cloud, result) VALUES (?, ?, ?, ?)",
        (time.time(), local, cloud, orjson.dumps(result).decode()),
    )


def latest_route_eval(conn: Connection) -> RouteEval | None:
    rows = list(
        conn.execute("SELECT ts, local, cloud, result FROM route_evals ORDER BY id DESC LIMIT 1")
    )
    if not rows:
        return None
    ts, local, cloud, result = rows[0]
    return RouteEval(ts, local, cloud, orjson.loads(result))


# -- privacy --------------------------------------------------------------------------------------


@dataclass(slots=True)
class PrivacyReport:
    requests: int = 0
    with_pii: int = 0
    kinds: dict[str, Counter[str]] = field(default_factory=dict)  # kind -> route -> requests


def privacy_report(conn: Connection, since: float, tenant: str | None = None) -> PrivacyReport:
    """How many requests carried each kind of personal data, and where they went: counts only."""
    where, params = _where(since, tenant)
    report = PrivacyReport()
    for pii, route in conn.execute(f"SELECT pii, route FROM requests WHERE {where}", params):
        report.requests += 1
        if not pii:
            continue
        report.with_pii += 1
        for kind in pii.split(","):
            report.kinds.setdefault(kind, Counter())[route] += 1
    return report


# -- tenants and keys -----------------------------------------------------------------------------


@dataclass(slots=True)
class Usage:
    requests: int = 0
    tokens: int = 0
    cost_nanos: int = 0


@dataclass(slots=True)
class TenantUsage:
    tenants: dict[str, Usage] = field(default_factory=dict)
    keys: dict[str, Usage] = field(default_factory=dict)  # key id -> usage


def tenant_usage(conn: Connection, since: float, tenant: str | None = None) -> TenantUsage:
    """Requests, tokens and known cost since `since`, per tenant and per key."""
    where, params = _where(since, tenant)
    usage = TenantUsage()
    rows = conn.execute(
        "SELECT tenant, key_id, prompt_tokens, completion_tokens, cost_nanos FROM requests "
        f"WHERE {where}",
        params,
    )
    for name, key_id, prompt, completion, cost in rows:
        for book, key in ((usage.tenants, name), (usage.keys, key_id)):
            if key is None:
                continue
            entry = book.setdefault(key, Usage())
            entry.requests += 1
            entry.tokens += prompt + completion
            entry.cost_nanos += cost or 0
    return usage


# -- local models ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Throughput:
    model: str
    requests: int
    completion_tokens: int
    seconds: float  # the answers' latencies, summed

    @property
    def tokens_per_s(self) -> float | None:
        return self.completion_tokens / self.seconds if self.seconds > 0 else None


def local_throughput(conn: Connection, since: float) -> list[Throughput]:
    """Answered local requests per model: completion tokens over the time spent answering."""
    sums: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0])
    rows = conn.execute(
        "SELECT upstream_model, model, completion_tokens, latency_ms FROM requests "
        "WHERE ts >= ? AND route = 'local' AND status = 200",
        [since],
    )
    for upstream_model, model, tokens, latency_ms in rows:
        entry = sums[upstream_model or model]
        entry[0] += 1
        entry[1] += tokens
        entry[2] += latency_ms / 1000
    return [Throughput(m, int(s[0]), int(s[1]), s[2]) for m, s in sorted(sums.items())]

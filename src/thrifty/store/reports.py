"""Usage reports over the request log: totals and groups, and a time series for plots.

The SQL is a plain range scan on the indexed ``ts`` column (``SELECT … WHERE ts >= ? AND
ts < ?``): no date functions and no dialect-specific aggregates, so the same text runs on
PostgreSQL (`thrifty.store.db` turns the placeholder into psycopg's ``%s``). Grouping, sums and
percentiles happen in Python, in one pass over the rows: percentiles need every latency anyway,
Python's ``int`` keeps sums of nano-USD exact however large they grow, and a UTC day is computed
the same way whatever the database.

Unknown money: ``cost_nanos`` is NULL when the model that answered has no price table, and
``baseline_nanos`` when the baseline model has none or the request never reached a model (a
refusal). Money sums add the known values only, and ``cost_unknown`` / ``baseline_unknown``
count the rows left out; ``saved_nanos`` sums ``baseline - cost`` over the rows where both are
known, so an unpriced request never counts as free, nor a refusal as a saving.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, get_args

from thrifty.costs.money import convert_nanos, format_nanos
from thrifty.store.db import Connection, MissingTable, NoDatabase, connect

Grouping = Literal["route", "model", "tenant", "day"]
GROUPINGS: tuple[str, ...] = get_args(Grouping)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_COLUMNS = (
    "ts, route, model, tenant, status, prompt_tokens, completion_tokens, "
    "latency_ms, cost_nanos, baseline_nanos"
)
_BUCKETS = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400)
_MAX_BUCKETS = 96


# -- time windows ---------------------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """``30m``, ``24h``, ``7d``, ``2w`` (also ``90s``, ``1.5h``) as seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (expected e.g. 30m, 24h, 7d)")
    return float(match.group(1)) * _UNITS[match.group(2)]


# The earliest bound a report can print (datetime stops at year 1; a day's margin for offsets).
_EARLIEST = -62135510400.0  # 0001-01-02T00:00:00Z


def parse_since(text: str, now: float) -> float:
    """A window bound as unix time: a duration ago (``7d``) or an ISO date or date-time.

    A bare date is midnight UTC; a date-time without an offset is taken as UTC.
    """
    if _DURATION.match(text):
        try:
            moment_ts = float(math.floor(now - parse_duration(text)))
        except (OverflowError, ValueError):
            moment_ts = -1.0
        if not moment_ts >= _EARLIEST:  # a window reaching before 1970 (or NaN) is a typo
            raise ValueError(f"{text!r} reaches back before the year 1")
        return moment_ts
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"not a time: {text!r} (expected 30m, 24h, 7d, or an ISO date like 2025-06-01)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        stamp = moment.timestamp()
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"{text!r} is out of range") from None
    if stamp < _EARLIEST:
        raise ValueError(f"{text!r} is before the year 1")
    return stamp


def iso(ts: float | None) -> str | None:
    """Unix time as ISO 8601 UTC with a ``Z``; whole seconds print without a fraction."""
    if ts is None:
        return None
    moment = datetime.fromtimestamp(ts, UTC)
    if moment.microsecond == 0:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.isoformat().replace("+00:00", "Z")


def _where(
    since: float, until: float | None, tenant: str | None = None
) -> tuple[str, tuple[float | str, ...]]:
    clauses: list[str] = ["ts >= ?"]
    params: list[float | str] = [since]
    if until is not None:
        clauses.append("ts < ?")
        params.append(until)
    if tenant is not None:
        clauses.append("tenant = ?")
        params.append(tenant)
    return " AND ".join(clauses), tuple(params)


# -- the report -----------------------------------------------------------------------------------


def nearest_rank(ordered: Sequence[float], percent: float) -> float | None:
    """The nearest-rank percentile of values sorted ascending: the value at rank ⌈p/100 × n⌉.

    Always one of the observed values (no interpolation); None for no values.
    """
    if not ordered:
        return None
    rank = math.ceil(percent * len(ordered) / 100)
    return ordered[min(max(rank, 1), len(ordered)) - 1]


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One group of requests (or all of them). Money is integer nano-USD; see the module doc."""

    key: str
    requests: int
    errors: int  # status >= 400
    server_errors: int  # status >= 500
    prompt_tokens: int
    completion_tokens: int
    cost_nanos: int  # sum of the known costs
    baseline_nanos: int  # sum of the known baselines
    saved_nanos: int  # sum of baseline - cost over rows where both are known
    cost_unknown: int  # rows whose cost is unknown (unpriced model)
    baseline_unknown: int  # rows whose baseline is unknown
    cache_hits: int  # route = 'cache'
    latency_mean_ms: float | None
    latency_p50_ms: float | None  # nearest rank
    latency_p95_ms: float | None  # nearest rank

    @property
    def cache_hit_rate(self) -> float | None:
        """Share of all requests (errors included) that the cache answered."""
        return self.cache_hits / self.requests if self.requests else None

    @property
    def server_error_rate(self) -> float | None:
        return self.server_errors / self.requests if self.requests else None


@dataclass(slots=True)
class _Group:
    requests: int = 0
    errors: int = 0
    server_errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_nanos: int = 0
    baseline_nanos: int = 0
    saved_nanos: int = 0
    cost_unknown: int = 0
    baseline_unknown: int = 0
    cache_hits: int = 0
    latencies: list[float] = field(default_factory=list)

    def add(self, row: Sequence[Any]) -> None:
        _, route, _, _, status, prompt, completion, latency, cost, baseline = row
        self.requests += 1
        self.errors += status >= 400
        self.server_errors += status >= 500
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.cache_hits += route == "cache"
        self.latencies.append(float(latency))
        if cost is None:
            self.cost_unknown += 1
        else:
            self.cost_nanos += cost
        if baseline is None:
            self.baseline_unknown += 1
        else:
            self.baseline_nanos += baseline
        if cost is not None and baseline is not None:
            self.saved_nanos += baseline - cost

    def finish(self, key: str) -> UsageRow:
        ordered = sorted(self.latencies)
        mean = math.fsum(ordered) / len(ordered) if ordered else None
        return UsageRow(
            key=key,
            requests=self.requests,
            errors=self.errors,
            server_errors=self.server_errors,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            cost_nanos=self.cost_nanos,
            baseline_nanos=self.baseline_nanos,
            saved_nanos=self.saved_nanos,
            cost_unknown=self.cost_unknown,
            baseline_unknown=self.baseline_unknown,
            cache_hits=self.cache_hits,
            latency_mean_ms=mean,
            latency_p50_ms=nearest_rank(ordered, 50),
            latency_p95_ms=nearest_rank(ordered, 95),
        )


@dataclass(frozen=True, slots=True)
class UsageReport:
    since: float
    until: float | None  # None: up to now
    by: Grouping | None
    rows: list[UsageRow]  # one per group, empty when `by` is None
    total: UsageRow

    @property
    def empty(self) -> bool:
        return self.total.requests == 0


def _key_of(by: Grouping) -> Callable[[Sequence[Any]], str]:
    if by == "day":
        return lambda row: datetime.fromtimestamp(row[0], UTC).date().isoformat()
    index = {"route": 1, "model": 2, "tenant": 3}[by]
    return lambda row: row[index]


def usage_report(
    conn: Connection,
    since: float,
    until: float | None = None,
    by: Grouping | None = None,
    tenant: str | None = None,
) -> UsageReport:
    """Requests with ``since <= ts < until`` (of one tenant, if given), by ``by`` and in total.

    Groups come by request count, largest first (days in date order).
    """
    if by is not None and by not in GROUPINGS:
        raise ValueError(f"cannot group by {by!r}; choose one of {', '.join(GROUPINGS)}")
    where, params = _where(since, until, tenant)
    rows = conn.execute(f"SELECT {_COLUMNS} FROM requests WHERE {where}", params)
    return _aggregate(rows, since, until, by)


def _aggregate(
    rows: Iterable[Sequence[Any]], since: float, until: float | None, by: Grouping | None
) -> UsageReport:
    total = _Group()
    groups: dict[str, _Group] = {}
    key_of = _key_of(by) if by is not None else None
    for row in rows:
        total.add(row)
        if key_of is not None:
            key = key_of(row)
            group = groups.get(key)
            if group is None:
                group = groups[key] = _Group()
            group.add(row)
    finished = [group.finish(key) for key, group in groups.items()]
    if by == "day":
        finished.sort(key=lambda r: r.key)
    else:
        finished.sort(key=lambda r: (-r.requests, r.key))
    return UsageReport(since, until, by, finished, total.finish("total"))


def empty_report(
    since: float, until: float | None = None, by: Grouping | None = None
) -> UsageReport:
    """The report of a window without requests."""
    return _aggregate((), since, until, by)


def load_usage(
    url: str,
    since: float,
    until: float | None = None,
    by: Grouping | None = None,
    tenant: str | None = None,
) -> UsageReport:
    """`usage_report` over the log at ``url``; a log not yet created is an empty report."""
    try:
        conn = connect(url, create=False)
    except NoDatabase:
        return _aggregate((), since, until, by)
    with conn:
        try:
            return usage_report(conn, since, until, by, tenant)
        except MissingTable:
            return _aggregate((), since, until, by)


def _money(nanos: int, currency: str, cny_per_usd: Decimal) -> tuple[str, int]:
    converted = convert_nanos(nanos, "USD", currency, cny_per_usd=cny_per_usd)
    return format_nanos(converted), converted


def _round(value: float | None, places: int) -> float | None:
    return None if value is None else round(value, places)


def row_dict(row: UsageRow, currency: str, cny_per_usd: Decimal) -> dict[str, Any]:
    """One row as flat JSON-ready data (the CSV's columns, too)."""
    out: dict[str, Any] = {
        "key": row.key,
        "requests": row.requests,
        "errors": row.errors,
        "server_errors": row.server_errors,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
    }
    for name in ("cost", "baseline", "saved"):
        text, nanos = _money(getattr(row, f"{name}_nanos"), currency, cny_per_usd)
        out[name] = text
        out[f"{name}_nanos"] = nanos
    out |= {
        "cost_unknown": row.cost_unknown,
        "baseline_unknown": row.baseline_unknown,
        "cache_hits": row.cache_hits,
        "cache_hit_rate": _round(row.cache_hit_rate, 6),
        "latency_mean_ms": _round(row.latency_mean_ms, 3),
        "latency_p50_ms": _round(row.latency_p50_ms, 3),
        "latency_p95_ms": _round(row.latency_p95_ms, 3),
    }
    return out


def report_dict(
    report: UsageReport, currency: str = "USD", cny_per_usd: Decimal = Decimal("7.2")
) -> dict[str, Any]:
    """The report as JSON-ready data: what ``thrifty usage --format json`` and ``/v1/usage`` say.

    Money is in ``currency`` twice: a decimal string (``"0.000123000"``) and integer nano-units
    (``*_nanos``). For CNY each amount is converted from its exact USD sum and rounded half to
    even to a nano-yuan, so a CNY total may differ from the sum of its CNY rows by a few nanos.
    """
    currency = currency.upper()
    return {
        "since": iso(report.since),
        "until": iso(report.until),
        "by": report.by,
        "currency": currency,
        "cny_per_usd": str(cny_per_usd),
        "rows": [row_dict(row, currency, cny_per_usd) for row in report.rows],
        "total": row_dict(report.total, currency, cny_per_usd),
    }


# -- the time series ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bucket:
    """Requests with ``start <= ts < start + bucket``; money sums the known amounts, as in
    `UsageRow`."""

    start: float
    cost_nanos: int
    baseline_nanos: int
    requests: dict[str, int]  # by route


def time_span(
    conn: Connection, since: float, until: float | None = None, tenant: str | None = None
) -> tuple[float, float] | None:
    """The first and last request times in the window (of one tenant); None when empty."""
    where, params = _where(since, until, tenant)
    first, last = conn.execute(
        f"SELECT MIN(ts), MAX(ts) FROM requests WHERE {where}", params
    ).fetchone()
    return None if first is None else (float(first), float(last))


def auto_bucket(span_s: float) -> int:
    """A bucket width (seconds) that cuts ``span_s`` into at most 96 buckets, if one does."""
    for width in _BUCKETS:
        if span_s / width < _MAX_BUCKETS:
            return width
    return _BUCKETS[-1]


def timeseries(
    conn: Connection,
    since: float,
    bucket: float,
    until: float | None = None,
    tenant: str | None = None,
) -> list[Bucket]:
    """Cost, baseline and requests per route in buckets of ``bucket`` seconds.

    Buckets are aligned to multiples of ``bucket`` since the epoch (an 86400 s bucket is a UTC
    day) and run from the first request's bucket to the last one's, empty ones included.
    """
    if bucket <= 0:
        raise ValueError(f"bucket must be positive, got {bucket}")
    where, params = _where(since, until, tenant)
    query = f"SELECT ts, route, cost_nanos, baseline_nanos FROM requests WHERE {where}"
    cost: dict[int, int] = {}
    baseline: dict[int, int] = {}
    requests: dict[int, dict[str, int]] = {}
    for ts, route, cost_nanos, baseline_nanos in conn.execute(query, params):
        index = math.floor(ts / bucket)
        cost[index] = cost.get(index, 0) + (cost_nanos or 0)
        baseline[index] = baseline.get(index, 0) + (baseline_nanos or 0)
        by_route = requests.setdefault(index, {})
        by_route[route] = by_route.get(route, 0) + 1
    if not requests:
        return []
    return [
        Bucket(index * bucket, cost.get(index, 0), baseline.get(index, 0), requests.get(index, {}))
        for index in range(min(requests), max(requests) + 1)
    ]

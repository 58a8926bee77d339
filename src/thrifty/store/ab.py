"""A/B experiments over the request log: feedback rows, per-variant reports, and their statistics.

A request served by an experiment carries ``variant = "NAME:VARIANT"`` in the request log; the
``feedback`` table (migration ``0005_feedback``) holds what clients said about requests through
``POST /v1/feedback``. `ab_report` reads both for one experiment and, per variant, computes:

- requests and error rate (status >= 400, failed requests count as exposures too);
- latency p95 (nearest rank, as `thrifty usage`) and mean;
- cost: the exact sum of the known ``cost_nanos`` and its mean per priced request;
- feedback score mean with a 95% t interval;
- thumbs-up rate (of requests with a thumb) and conversion rate (of all requests), each with a
  Wilson 95% interval.

Several feedback rows may name one request: per request and field, the latest value counts (a
client corrects itself by sending again), so every statistic has one observation per request.

Against ``control``, each variant gets a two-sided p-value: two-proportion z-test (pooled) for
rates, Welch's t-test for means (score, latency, cost). With the experiment's configured weights,
`sample_ratio_p` tests whether the split itself is off (a chi-square test of the request counts:
a tiny p-value means assignment or logging is broken, and the other numbers are suspect).
The statistics themselves live in `thrifty.stats`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from thrifty.costs.money import format_nanos
from thrifty.stats import (
    Sample,
    chi_square_p,
    two_proportion_z,
    welch_t,
    wilson_interval,
)
from thrifty.store.db import Connection, MissingTable, NoDatabase, connect
from thrifty.store.outcomes import (
    Outcome,
    add_outcomes,
    feedback_label,
    fingerprint,
    request_facts,
)
from thrifty.store.reports import iso, nearest_rank

# -- feedback -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Feedback:
    request_id: str
    score: float | None = None
    thumbs: bool | None = None  # True: up
    converted: bool | None = None
    comment: str | None = None


def add_feedback(
    conn: Connection,
    feedback: Feedback,
    tenant: str,
    key_id: str | None = None,
    ts: float | None = None,
) -> int | None:
    """Store feedback on a request of ``tenant``; its row id, or None if no such request."""

    def flag(value: bool | None) -> int | None:
        return None if value is None else int(value)

    with conn.transaction():
        found = conn.execute(
            "SELECT 1 FROM requests WHERE id = ? AND tenant = ?", (feedback.request_id, tenant)
        ).fetchone()
        if found is None:
            return None
        cursor = conn.execute(
            "INSERT INTO feedback (request_id, ts, tenant, key_id, score, thumbs, converted, "
            "comment) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                feedback.request_id,
                time.time() if ts is None else ts,
                tenant,
                key_id,
                feedback.score,
                flag(feedback.thumbs),
                flag(feedback.converted),
                feedback.comment,
            ),
        )
        return int(cursor.fetchone()[0])


def feedback_outcome(
    conn: Connection,
    feedback: Feedback,
    tenant: str,
    row_id: int,
    known: tuple[str, str, dict[str, float]] | None,
) -> Outcome | None:
    """The outcome a feedback makes, stored: ``ab`` on an experiment's request, else ``feedback``.

    ``known`` is (masked question, task key, cheap features) when the gateway still has them
    (the router remembers recent requests); without it the row keeps no text, and training
    skips it. A bare score (no thumbs, no conversion) is stored unlabelled. Requests answered
    by the cache or refused label no target, and make none.
    """
    facts = request_facts(conn, feedback.request_id, tenant)
    if facts is None or facts["route"] in ("", "cache"):
        return None
    ok, score = feedback_label(feedback.thumbs, feedback.converted, feedback.score)
    text, task, features = known if known is not None else (None, "", {})
    variant = facts["variant"]
    outcome = Outcome(
        source="ab" if variant else "feedback",
        target=facts["route"],
        fingerprint=fingerprint(task, text or feedback.request_id),
        ok=ok,
        score=score,
        cost_nanos=facts["cost_nanos"],
        text=text,
        task=task,
        features=features,
        ref=f"feedback:{row_id}",
        request_id=feedback.request_id,
        tenant=tenant,
        detail=f"variant={variant}" if variant else "",
    )
    add_outcomes(conn, [outcome])
    return outcome


# -- the report -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rate:
    k: int
    n: int
    interval: tuple[float, float] | None  # Wilson 95%
    p_value: float | None = None  # against control

    @property
    def value(self) -> float | None:
        return self.k / self.n if self.n else None


@dataclass(frozen=True, slots=True)
class Mean:
    n: int
    mean: float | None
    interval: tuple[float, float] | None  # t 95%
    p_value: float | None = None  # Welch against control


@dataclass(frozen=True, slots=True)
class VariantReport:
    variant: str
    model: str | None  # the configured model, else the one most logged
    weight: float | None  # configured share; None for a variant no longer configured
    requests: int
    error_rate: Rate
    latency: Mean  # ms; the p-value compares means
    latency_p95_ms: float | None
    cost_nanos: int  # exact sum of the known costs
    cost_unknown: int  # requests without a price, left out of cost sums
    cost: Mean  # nano-USD per priced request
    score: Mean
    thumbs_up: Rate  # of requests with a thumb
    conversion: Rate  # of all requests

    @property
    def cost_per_request(self) -> Decimal | None:
        """Mean USD per priced request: the exact nano sum over the count, to 12 places."""
        priced = self.requests - self.cost_unknown
        if priced == 0:
            return None
        mean = (Decimal(self.cost_nanos) / priced).scaleb(-9)
        return mean.quantize(Decimal("1e-12"), rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True)
class ABReport:
    experiment: str
    since: float
    until: float | None
    variants: list[VariantReport]  # control first
    sample_ratio_p: float | None  # None without configured weights for every variant seen

    @property
    def empty(self) -> bool:
        return not any(v.requests for v in self.variants)


@dataclass(slots=True)
class _Arm:
    requests: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    costs: list[int] = field(default_factory=list)
    models: dict[str, int] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)  # request -> latest score
    thumbs: dict[str, bool] = field(default_factory=dict)
    converted: dict[str, bool] = field(default_factory=dict)


def _where(
    experiment: str, since: float, until: float | None, tenant: str | None
) -> tuple[str, list[Any]]:
    # a prefix test by substr, not a range on the text: PostgreSQL's collations may order
    # punctuation such as ':' in ways that SQLite's byte order does not
    prefix = f"{experiment}:"
    clauses = ["r.ts >= ?", f"substr(r.variant, 1, {len(prefix)}) = ?"]
    params: list[Any] = [since, prefix]
    if until is not None:
        clauses.append("r.ts < ?")
        params.append(until)
    if tenant is not None:
        clauses.append("r.tenant = ?")
        params.append(tenant)
    return " AND ".join(clauses), params


def ab_report(
    conn: Connection,
    experiment: str,
    since: float,
    until: float | None = None,
    configured: Mapping[str, tuple[str, float]] | None = None,
    tenant: str | None = None,
) -> ABReport:
    """The report of ``experiment`` over requests with ``since <= ts < until``.

    ``configured`` (variant -> (model, weight)) adds variants that have no requests yet, fixes
    the order (control, then config order) and enables the sample-ratio test.
    """
    where, params = _where(experiment, since, until, tenant)
    prefix = len(experiment) + 1
    arms: dict[str, _Arm] = {name: _Arm() for name in configured or {}}
    variant_of: dict[str, str] = {}
    query = (
        "SELECT r.id, r.variant, r.status, r.latency_ms, r.cost_nanos, r.model "
        f"FROM requests r WHERE {where}"
    )
    for request_id, variant, status, latency, cost, model in conn.execute(query, params):
        name = variant[prefix:]
        if ":" in name:  # another experiment whose name starts with ours and a colon
            continue
        arm = arms.get(name)
        if arm is None:
            arm = arms[name] = _Arm()
        variant_of[request_id] = name
        arm.requests += 1
        arm.errors += status >= 400
        arm.latencies.append(float(latency))
        if cost is not None:
            arm.costs.append(int(cost))
        arm.models[model] = arm.models.get(model, 0) + 1
    query = (
        "SELECT f.request_id, f.score, f.thumbs, f.converted FROM feedback f "
        f"JOIN requests r ON r.id = f.request_id WHERE {where} ORDER BY f.id"
    )
    for request_id, score, thumbs, converted in conn.execute(query, params):
        name = variant_of.get(request_id)
        if name is None:
            continue
        arm = arms[name]
        if score is not None:
            arm.scores[request_id] = float(score)
        if thumbs is not None:
            arm.thumbs[request_id] = bool(thumbs)
        if converted is not None:
            arm.converted[request_id] = bool(converted)
    return _finish(experiment, since, until, arms, configured or {})


def _order(arms: Iterable[str], configured: Mapping[str, Any]) -> list[str]:
    rest = sorted(name for name in arms if name not in configured and name != "control")
    named = [name for name in configured if name != "control"]
    return ["control", *named, *rest]


def _finish(
    experiment: str,
    since: float,
    until: float | None,
    arms: dict[str, _Arm],
    configured: Mapping[str, tuple[str, float]],
) -> ABReport:
    control = arms.setdefault("control", _Arm())
    base = _Samples.of(control)
    reports = []
    for name in _order(arms, configured):
        arm = arms[name]
        samples = _Samples.of(arm)
        against = None if name == "control" else base
        model, weight = configured.get(name, (None, None))
        if model is None and arm.models:
            model = max(arm.models, key=lambda m: (arm.models[m], m))
        thumbs_up = sum(arm.thumbs.values())
        converted = sum(arm.converted.values())
        reports.append(
            VariantReport(
                variant=name,
                model=model,
                weight=weight,
                requests=arm.requests,
                error_rate=_rate(
                    arm.errors, arm.requests, None if against is None else against.errors
                ),
                latency=_mean(samples.latency, None if against is None else against.latency),
                latency_p95_ms=nearest_rank(sorted(arm.latencies), 95),
                cost_nanos=sum(arm.costs),
                cost_unknown=arm.requests - len(arm.costs),
                cost=_mean(samples.cost, None if against is None else against.cost),
                score=_mean(samples.score, None if against is None else against.score),
                thumbs_up=_rate(
                    thumbs_up, len(arm.thumbs), None if against is None else against.thumbs
                ),
                conversion=_rate(
                    converted, arm.requests, None if against is None else against.conversion
                ),
            )
        )
    ratio_p = None
    if configured and all(name in configured for name in arms):
        names = list(configured)
        ratio_p = chi_square_p(
            [arms[name].requests for name in names], [configured[name][1] for name in names]
        )
    return ABReport(experiment, since, until, reports, ratio_p)


@dataclass(frozen=True, slots=True)
class _Samples:
    """One arm's observations, as the tests against control need them."""

    errors: tuple[int, int]
    thumbs: tuple[int, int]
    conversion: tuple[int, int]
    latency: Sample
    cost: Sample
    score: Sample

    @classmethod
    def of(cls, arm: _Arm) -> _Samples:
        return cls(
            errors=(arm.errors, arm.requests),
            thumbs=(sum(arm.thumbs.values()), len(arm.thumbs)),
            conversion=(sum(arm.converted.values()), arm.requests),
            latency=Sample.of(arm.latencies),
            cost=Sample.of([float(c) for c in arm.costs]),
            score=Sample.of(list(arm.scores.values())),
        )


def _rate(k: int, n: int, control: tuple[int, int] | None) -> Rate:
    tested = None if control is None else two_proportion_z(control[0], control[1], k, n)
    return Rate(k, n, wilson_interval(k, n), None if tested is None else tested[1])


def _mean(sample: Sample, control: Sample | None) -> Mean:
    tested = None if control is None else welch_t(control, sample)
    mean = sample.mean if sample.n else None
    return Mean(sample.n, mean, sample.interval(), None if tested is None else tested[2])


def load_ab_report(
    url: str,
    experiment: str,
    since: float,
    until: float | None = None,
    configured: Mapping[str, tuple[str, float]] | None = None,
) -> ABReport:
    """`ab_report` over the log at ``url``; a log not yet created gives an empty report."""
    try:
        conn = connect(url, create=False)
    except NoDatabase:
        return _finish(experiment, since, until, {n: _Arm() for n in configured or {}}, {})
    with conn:
        try:
            return ab_report(conn, experiment, since, until, configured)
        except MissingTable:
            return _finish(experiment, since, until, {n: _Arm() for n in configured or {}}, {})


# -- as data --------------------------------------------------------------------------------------


def _rounded(value: float | None, places: int = 6) -> float | None:
    return None if value is None or math.isnan(value) else round(value, places)


def _interval(pair: tuple[float, float] | None, places: int = 6) -> list[float | None] | None:
    return None if pair is None else [_rounded(pair[0], places), _rounded(pair[1], places)]


def _rate_dict(rate: Rate) -> dict[str, Any]:
    return {
        "k": rate.k,
        "n": rate.n,
        "rate": _rounded(rate.value),
        "ci95": _interval(rate.interval),
        "p_value": _rounded(rate.p_value, 8),
    }


def _mean_dict(mean: Mean, places: int = 6) -> dict[str, Any]:
    return {
        "n": mean.n,
        "mean": _rounded(mean.mean, places),
        "ci95": _interval(mean.interval, places),
        "p_value": _rounded(mean.p_value, 8),
    }


def report_dict(report: ABReport) -> dict[str, Any]:
    """JSON-ready data: what ``thrifty ab report --format json`` prints. Money in USD."""
    variants = []
    for v in report.variants:
        per_request = v.cost_per_request
        variants.append(
            {
                "variant": v.variant,
                "model": v.model,
                "weight": v.weight,
                "requests": v.requests,
                "error_rate": _rate_dict(v.error_rate),
                "latency_p95_ms": _rounded(v.latency_p95_ms, 3),
                "latency_mean_ms": _mean_dict(v.latency, 3),
                "cost": format_nanos(v.cost_nanos),
                "cost_nanos": v.cost_nanos,
                "cost_unknown": v.cost_unknown,
                "cost_per_request": None if per_request is None else str(per_request),
                "cost_per_request_p_value": _rounded(v.cost.p_value, 8),
                "score": _mean_dict(v.score),
                "thumbs_up": _rate_dict(v.thumbs_up),
                "conversion": _rate_dict(v.conversion),
            }
        )
    return {
        "experiment": report.experiment,
        "since": iso(report.since),
        "until": iso(report.until),
        "currency": "USD",
        "sample_ratio_p_value": _rounded(report.sample_ratio_p, 8),
        "variants": variants,
    }

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
No scipy: the normal tail comes from ``math.erfc``; Student's t and chi-square from the
regularized incomplete beta and gamma functions (continued fractions, Numerical Recipes §6).
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from thrifty.costs.money import format_nanos
from thrifty.store.reports import iso, nearest_rank
from thrifty.store.request_log import connect, sqlite_path

Z95 = 1.959963984540054  # the standard normal's 97.5th percentile
_EPS = 3e-16
_TINY = 1e-300

# -- statistics -----------------------------------------------------------------------------------


def normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def normal_two_sided_p(z: float) -> float:
    """P(|Z| >= |z|) for a standard normal Z."""
    return math.erfc(abs(z) / math.sqrt(2.0))


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, _nonzero(1.0 - qab * x / qap)
    d = 1.0 / d
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        even = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 / _nonzero(1.0 + even * d)
        c = _nonzero(1.0 + even / c)
        h *= d * c
        odd = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 / _nonzero(1.0 + odd * d)
        c = _nonzero(1.0 + odd / c)
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return h


def _nonzero(value: float) -> float:
    return value if abs(value) > _TINY else _TINY


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom (df may be fractional)."""
    if math.isinf(t):
        return 0.0
    return betainc(df / 2.0, 0.5, df / (df + t * t))


def t_quantile_975(df: float) -> float:
    """The t distribution's 97.5th percentile (the 95% interval's half-width in standard errors)."""
    low, high = 0.0, 1.0
    while t_two_sided_p(high, df) > 0.05:
        high *= 2.0
    for _ in range(200):  # bisection: the tail is monotone in t
        mid = (low + high) / 2.0
        if t_two_sided_p(mid, df) > 0.05:
            low = mid
        else:
            high = mid
        if high - low < 1e-12:
            break
    return (low + high) / 2.0


def gammaincc(a: float, x: float) -> float:
    """The regularized upper incomplete gamma function Q(a, x)."""
    if x <= 0.0:
        return 1.0
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:  # the series for P, then Q = 1 - P
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * _EPS:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    b = x + 1.0 - a  # the continued fraction for Q (modified Lentz)
    c, d = 1.0 / _TINY, 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = 1.0 / _nonzero(an * d + b)
        c = _nonzero(b + an / c)
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return math.exp(log_front) * h


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion k/n (None without observations)."""
    if n <= 0:
        return None
    p = k / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    center = (p + z2 / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1.0 - p) / n + z2 / (4 * n * n))
    return max(0.0, center - half), min(1.0, center + half)


def two_proportion_z(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float] | None:
    """(z, two-sided p) of the pooled z-test that k2/n2 differs from k1/n1; None if n is 0."""
    if n1 <= 0 or n2 <= 0:
        return None
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2))
    if se == 0.0:  # both all-0 or both all-1: no evidence of a difference
        return 0.0, 1.0
    z = (k2 / n2 - k1 / n1) / se
    return z, normal_two_sided_p(z)


@dataclass(frozen=True, slots=True)
class Sample:
    """Summary of a sample: size, mean and (n - 1) sample variance."""

    n: int
    mean: float
    variance: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Sample:
        n = len(values)
        mean = math.fsum(values) / n if n else math.nan
        variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else math.nan
        return cls(n, mean, variance)

    def interval(self) -> tuple[float, float] | None:
        """The 95% t interval of the mean (None below two observations)."""
        if self.n < 2:
            return None
        half = t_quantile_975(self.n - 1) * math.sqrt(self.variance / self.n)
        return self.mean - half, self.mean + half


def welch_t(a: Sample, b: Sample) -> tuple[float, float, float] | None:
    """(t, df, two-sided p) of Welch's test that b's mean differs from a's; None below n=2."""
    if a.n < 2 or b.n < 2:
        return None
    va, vb = a.variance / a.n, b.variance / b.n
    se2 = va + vb
    diff = b.mean - a.mean
    if se2 == 0.0:  # two constant samples
        return (0.0, math.inf, 1.0) if diff == 0 else (math.copysign(math.inf, diff), math.inf, 0.0)
    df = se2 * se2 / (va * va / (a.n - 1) + vb * vb / (b.n - 1))
    t = diff / math.sqrt(se2)
    return t, df, t_two_sided_p(t, df)


def chi_square_p(observed: Sequence[int], shares: Sequence[float]) -> float | None:
    """p-value of Pearson's goodness-of-fit test of counts against expected shares."""
    total = sum(observed)
    if total == 0 or len(observed) < 2:
        return None
    chi2 = sum((o - total * s) ** 2 / (total * s) for o, s in zip(observed, shares, strict=True))
    return gammaincc((len(observed) - 1) / 2.0, chi2 / 2.0)


# -- feedback -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Feedback:
    request_id: str
    score: float | None = None
    thumbs: bool | None = None  # True: up
    converted: bool | None = None
    comment: str | None = None


def add_feedback(
    conn: sqlite3.Connection,
    feedback: Feedback,
    tenant: str,
    key_id: str | None = None,
    ts: float | None = None,
) -> int | None:
    """Store feedback on a request of ``tenant``; its row id, or None if no such request."""

    def flag(value: bool | None) -> int | None:
        return None if value is None else int(value)

    with conn:
        found = conn.execute(
            "SELECT 1 FROM requests WHERE id = ? AND tenant = ?", (feedback.request_id, tenant)
        ).fetchone()
        if found is None:
            return None
        cursor = conn.execute(
            "INSERT INTO feedback (request_id, ts, tenant, key_id, score, thumbs, converted, "
            "comment) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
    return cursor.lastrowid


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


def _prefix_range(experiment: str) -> tuple[str, str]:
    # every "NAME:…" sorts in ["NAME:", "NAME;"): ';' is the code point after ':'
    return f"{experiment}:", f"{experiment};"


def _where(
    experiment: str, since: float, until: float | None, tenant: str | None
) -> tuple[str, list[Any]]:
    low, high = _prefix_range(experiment)
    clauses = ["r.ts >= ?", "r.variant >= ?", "r.variant < ?"]
    params: list[Any] = [since, low, high]
    if until is not None:
        clauses.append("r.ts < ?")
        params.append(until)
    if tenant is not None:
        clauses.append("r.tenant = ?")
        params.append(tenant)
    return " AND ".join(clauses), params


def ab_report(
    conn: sqlite3.Connection,
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
    if not sqlite_path(url).exists():
        return _finish(experiment, since, until, {n: _Arm() for n in configured or {}}, {})
    conn = connect(url)
    try:
        return ab_report(conn, experiment, since, until, configured)
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        return _finish(experiment, since, until, {n: _Arm() for n in configured or {}}, {})
    finally:
        conn.close()


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

"""Small-sample statistics without scipy: intervals and tests for A/B reports and evals.

The normal tail comes from ``math.erfc``; Student's t and chi-square from the regularized
incomplete beta and gamma functions (continued fractions, Numerical Recipes §6).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054  # the standard normal's 97.5th percentile
_EPS = 3e-16
_TINY = 1e-300


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

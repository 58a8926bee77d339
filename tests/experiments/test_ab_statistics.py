"""The A/B statistics against hand-computed values and published tables."""

from __future__ import annotations

import math

import pytest

from thrifty.stats import (
    Sample,
    chi_square_p,
    normal_cdf,
    t_quantile_975,
    t_two_sided_p,
    two_proportion_z,
    welch_t,
    wilson_interval,
)


def test_two_proportion_z_test() -> None:
    # 50/100 vs 65/100: pooled 0.575, se = sqrt(0.575 * 0.425 * (1/100 + 1/100))
    z, p = two_proportion_z(50, 100, 65, 100) or (0, 0)
    se = math.sqrt(0.575 * 0.425 * 0.02)
    assert z == pytest.approx(0.15 / se, rel=1e-12)
    assert z == pytest.approx(2.1456, abs=1e-4)
    assert p == pytest.approx(0.031905, abs=1e-6)  # 2 * (1 - Φ(2.1456))
    assert two_proportion_z(0, 10, 0, 20) == (0.0, 1.0)
    assert two_proportion_z(0, 0, 1, 2) is None


def test_welch_t_test_textbook_example() -> None:
    # Welch (1947) as worked in Wikipedia's "Welch's t-test", example 1: t 2.46, df 25.0, p 0.021
    a = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
    b = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]
    t, df, p = welch_t(Sample.of(a), Sample.of(b)) or (0, 0, 0)
    sa, sb = Sample.of(a), Sample.of(b)
    by_hand = (sb.mean - sa.mean) / math.sqrt(sa.variance / 15 + sb.variance / 15)
    assert t == pytest.approx(by_hand, rel=1e-12)
    assert (round(t, 2), round(df, 1), round(p, 3)) == (2.46, 25.0, 0.021)
    assert welch_t(Sample.of([1.0]), sb) is None


def test_student_t_against_the_tables() -> None:
    assert t_quantile_975(1) == pytest.approx(12.706205, abs=1e-5)
    assert t_quantile_975(10) == pytest.approx(2.228139, abs=1e-6)
    assert t_quantile_975(30) == pytest.approx(2.042272, abs=1e-6)
    assert t_two_sided_p(2.228139, 10) == pytest.approx(0.05, abs=1e-6)
    assert t_two_sided_p(0.0, 7) == pytest.approx(1.0)
    assert t_two_sided_p(50.0, 1e6) == pytest.approx(0.0, abs=1e-12)
    assert normal_cdf(1.959963984540054) == pytest.approx(0.975, abs=1e-12)


def test_mean_interval() -> None:
    sample = Sample.of([1.0, 2.0, 3.0, 4.0, 5.0])
    low, high = sample.interval() or (0, 0)
    half = 2.776445 * math.sqrt(2.5 / 5)  # t(0.975, 4) = 2.776445
    assert (low, high) == (pytest.approx(3 - half, abs=1e-5), pytest.approx(3 + half, abs=1e-5))


def test_wilson_interval() -> None:
    # 81 of 263 (Wilson 1927 / Newcombe 1998's example): 0.2553 to 0.3662
    low, high = wilson_interval(81, 263) or (0, 0)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    low, high = wilson_interval(0, 10) or (1, 1)
    assert low == 0.0 and high == pytest.approx(0.277532, abs=1e-6)
    assert wilson_interval(0, 0) is None


def test_chi_square_sample_ratio() -> None:
    # 2 df: the survival function is exp(-x/2); 4.6052 is the 90th percentile
    p = chi_square_p([700, 180, 120], [0.7, 0.2, 0.1])
    chi2 = 0 + 20**2 / 200 + 20**2 / 100
    assert p == pytest.approx(math.exp(-chi2 / 2), rel=1e-9)
    assert chi_square_p([50, 50], [0.5, 0.5]) == pytest.approx(1.0)
    assert chi_square_p([0, 0], [0.5, 0.5]) is None

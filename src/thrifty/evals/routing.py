"""How much routing saves at what quality: the threshold sweep behind `thrifty route eval`.

Every evaluated item was answered by both targets (a cheap one, "local", and a strong one,
"cloud"), so for any router score we can replay the decision without asking again. A router
gives each item a score, P(local is good enough); at threshold ``t`` an item goes local when its
score is at least ``t``, else to the cloud. One point per distinct score (plus the all-cloud
point above every score) gives the curve of quality against the share of cloud calls.

The figures routers publish (RouteLLM's), from that curve:

- PGR, performance gap recovered: (quality - all-local) / (all-cloud - all-local);
- APGR: the area under PGR against cloud share (trapezoids from all-local to all-cloud); a random
  router scores 0.5, an oracle near 1;
- CPT(x): the least cloud share whose PGR reaches x (``"50"``, ``"80"``, ``"95"``);
- at quality Q: the cheapest point with quality at least Q of all-cloud's, and its cost saving
  against all-cloud (how many times cheaper).

Quality is an item's score on a 0-1 scale (pass/fail suites are already; judged 1-10 ones are
divided by 10).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ALL_CLOUD = 1.000001  # a threshold above every score: nothing goes local


@dataclass(frozen=True, slots=True)
class Pair:
    """One item, answered by both targets."""

    key: str
    p_local: float  # the router's score: P(local is good enough)
    local: float  # quality of the local answer, 0-1
    cloud: float
    local_nanos: int
    cloud_nanos: int


@dataclass(frozen=True, slots=True)
class Point:
    threshold: float
    cloud_share: float
    quality: float
    quality_vs_cloud: float | None
    cost_usd: float

    def as_dict(self) -> dict[str, float | None]:
        return {
            "threshold": round(self.threshold, 6),
            "cloud_share": round(self.cloud_share, 6),
            "quality": round(self.quality, 6),
            "quality_vs_cloud": None
            if self.quality_vs_cloud is None
            else round(self.quality_vs_cloud, 6),
            "cost_usd": round(self.cost_usd, 9),
        }


def _point(pairs: Sequence[Pair], threshold: float, cloud_quality: float) -> Point:
    n = len(pairs)
    to_cloud = [p.p_local < threshold for p in pairs]
    quality = sum(p.cloud if c else p.local for p, c in zip(pairs, to_cloud, strict=True)) / n
    nanos = sum(p.cloud_nanos if c else p.local_nanos for p, c in zip(pairs, to_cloud, strict=True))
    return Point(
        threshold,
        sum(to_cloud) / n,
        quality,
        quality / cloud_quality if cloud_quality > 0 else None,
        nanos / 1e9,
    )


def sweep(pairs: Sequence[Pair]) -> list[Point]:
    """One point per distinct score (local when score >= threshold), then all-cloud."""
    if not pairs:
        return []
    cloud_quality = sum(p.cloud for p in pairs) / len(pairs)
    thresholds = [*sorted({p.p_local for p in pairs}), ALL_CLOUD]
    return [_point(pairs, t, cloud_quality) for t in thresholds]


def pgr(quality: float, local: float, cloud: float) -> float | None:
    gap = cloud - local
    return None if gap <= 0 else (quality - local) / gap


def summarize(pairs: Sequence[Pair], quality_target: float) -> dict[str, Any]:
    """The JSON `route eval` prints: points, apgr, cpt, at_quality (keys fixed)."""
    points = sweep(pairs)
    result: dict[str, Any] = {
        "points": [p.as_dict() for p in points],
        "apgr": None,
        "cpt": {"50": None, "80": None, "95": None},
        "at_quality": {
            "target": quality_target,
            "threshold": None,
            "cloud_share": None,
            "quality_vs_cloud": None,
            "cost_saving_x": None,
        },
    }
    if not points:
        return result
    all_cloud = points[-1]
    local_q = sum(p.local for p in pairs) / len(pairs)
    cloud_q = all_cloud.quality
    curve = sorted(
        ((p.cloud_share, pgr(p.quality, local_q, cloud_q)) for p in points),
        key=lambda xy: xy[0],
    )
    if all(y is not None for _, y in curve):
        xs = [0.0] + [x for x, _ in curve] + [1.0]
        ys = [0.0] + [float(y) for _, y in curve if y is not None] + [1.0]
        area = sum((xs[i + 1] - xs[i]) * (ys[i + 1] + ys[i]) / 2 for i in range(len(xs) - 1))
        result["apgr"] = round(area, 6)
        for key, share in (("50", 0.5), ("80", 0.8), ("95", 0.95)):
            reached = [x for x, y in curve if y is not None and y >= share - 1e-12]
            result["cpt"][key] = round(min(reached), 6) if reached else None
    good = [
        p
        for p in points
        if p.quality_vs_cloud is not None and p.quality_vs_cloud >= quality_target - 1e-12
    ]
    if good:
        best = min(good, key=lambda p: (p.cost_usd, p.cloud_share))
        saving = all_cloud.cost_usd / best.cost_usd if best.cost_usd > 0 else None
        result["at_quality"] = {
            "target": quality_target,
            "threshold": round(best.threshold, 6),
            "cloud_share": round(best.cloud_share, 6),
            "quality_vs_cloud": None
            if best.quality_vs_cloud is None
            else round(best.quality_vs_cloud, 6),
            "cost_saving_x": None if saving is None else round(saving, 4),
        }
    return result


def oracle_curve(pairs: Sequence[Pair]) -> list[tuple[float, float]]:
    """The best any router could do at each cloud share: send where the cloud helps most."""
    n = len(pairs)
    gain = sorted((p.cloud - p.local for p in pairs), reverse=True)
    quality = sum(p.local for p in pairs) / n
    out = [(0.0, quality)]
    for k, g in enumerate(gain, 1):
        quality += g / n
        out.append((k / n, quality))
    best = [(0.0, out[0][1])]
    for x, y in out[1:]:
        best.append((x, max(y, best[-1][1])))  # the oracle may leave helpful-less calls local
    return best


def random_pairs(pairs: Sequence[Pair], seed: int = 0) -> list[Pair]:
    """The same items with random router scores: the baseline any scorer must beat."""
    rng = random.Random(seed)
    return [
        Pair(p.key, rng.random(), p.local, p.cloud, p.local_nanos, p.cloud_nanos) for p in pairs
    ]


def write_plot(pairs: Sequence[Pair], points: Sequence[Point], path: Path, title: str) -> None:
    """Quality against cloud share: the router, random (a straight line) and the oracle."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("the plot needs matplotlib: pip install 'thrifty[plot]'") from None
    local_q = sum(p.local for p in pairs) / len(pairs)
    cloud_q = sum(p.cloud for p in pairs) / len(pairs)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ordered = sorted(points, key=lambda p: p.cloud_share)
    ax.plot([p.cloud_share for p in ordered], [p.quality for p in ordered], "o-", label="router")
    ax.plot([0, 1], [local_q, cloud_q], "--", color="grey", label="random")
    oracle = oracle_curve(pairs)
    ax.plot([x for x, _ in oracle], [y for _, y in oracle], ":", color="green", label="oracle")
    ax.set_xlabel("share of requests sent to the cloud")
    ax.set_ylabel("quality (mean score)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)

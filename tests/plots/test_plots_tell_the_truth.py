"""Plots that tell the truth at a glance: a negative saving is extra cost in red, never "saved";
eval labels never collide."""

from __future__ import annotations

import itertools
import time
from decimal import Decimal

from matplotlib.collections import PolyCollection
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.text import Text

from thrifty.costs.plot import EXTRA_COLOR, SAVED_COLOR, usage_figure
from thrifty.evals.plot import eval_figure
from thrifty.evals.report import Summary
from thrifty.evals.store import Run
from thrifty.store.reports import Bucket, UsageReport, UsageRow

HOUR = 3600
T0 = 1_750_000_000.0


def report(buckets: list[Bucket]) -> UsageReport:
    cost = sum(b.cost_nanos for b in buckets)
    baseline = sum(b.baseline_nanos for b in buckets)
    total = UsageRow(
        key="total",
        requests=sum(sum(b.requests.values()) for b in buckets),
        errors=0,
        server_errors=0,
        prompt_tokens=0,
        completion_tokens=0,
        cost_nanos=cost,
        baseline_nanos=baseline,
        saved_nanos=baseline - cost,
        cost_unknown=0,
        baseline_unknown=0,
        cache_hits=0,
        latency_mean_ms=None,
        latency_p50_ms=None,
        latency_p95_ms=None,
    )
    return UsageReport(since=T0, until=T0 + len(buckets) * HOUR, by=None, rows=[], total=total)


def shading(figure: Figure) -> dict[str, str]:
    """Each shaded area's legend label → its colour."""
    money = figure.axes[0]
    return {
        str(c.get_label()): to_hex(c.get_facecolor()[0], keep_alpha=False)
        for c in money.collections
        if isinstance(c, PolyCollection)
    }


def test_a_negative_saving_is_extra_cost_in_red_never_saved() -> None:
    # a cloud answered everything and thrifty's own cost was above the baseline
    buckets = [Bucket(T0 + i * HOUR, 300_000, 200_000, {"deepseek-chat": 3}) for i in range(4)]
    figure = usage_figure(report(buckets), buckets, HOUR, "USD", Decimal("7.2"))
    assert shading(figure) == {"extra cost (above all-cloud)": to_hex(EXTRA_COLOR)}
    title = figure.axes[0].get_title()
    assert "MORE than all-cloud" in title and "saved" not in title
    labels = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert "saved" not in labels


def test_a_saving_then_a_loss_shades_each_where_it_happened() -> None:
    buckets = [
        Bucket(T0, 100_000, 400_000, {"local": 4}),  # saved 0.0003 USD
        Bucket(T0 + HOUR, 900_000, 100_000, {"deepseek-chat": 1}),  # then 0.0008 more
    ]
    figure = usage_figure(report(buckets), buckets, HOUR, "USD", Decimal("7.2"))
    assert shading(figure) == {
        "saved": to_hex(SAVED_COLOR),
        "extra cost (above all-cloud)": to_hex(EXTRA_COLOR),
    }
    assert "MORE than all-cloud" in figure.axes[0].get_title()
    saving = [Bucket(T0, 100_000, 400_000, {"local": 4})]
    figure = usage_figure(report(saving), saving, HOUR, "USD", Decimal("7.2"))
    assert shading(figure) == {"saved": to_hex(SAVED_COLOR)}
    assert "saved 0.000300" in figure.axes[0].get_title()


def summary(suite: str, model: str, score: float, cost: int | None) -> Summary:
    run = Run(
        id=f"{suite}-{model}",
        suite=suite,
        source="",
        model=model,
        base_url="",
        rated=False,
        planned=10,
        params={},
        created=time.time(),
        updated=time.time(),
        status="done",
    )
    return Summary(
        run=run, n=10, score=score, low=max(score - 0.1, 0), high=min(score + 0.1, 1),
        correct=round(score * 10), errors=0, p50_ms=None, p95_ms=None, prompt_tokens=0,
        completion_tokens=0, cost_nanos=cost, cost_known=10 if cost is not None else 0,
        judge_cost_nanos=None,
    )  # fmt: skip


def test_eval_labels_do_not_collide_even_for_runs_on_the_same_spot() -> None:
    runs = [
        summary(suite, model, 0.5, 1000)  # four runs on exactly the same point
        for suite, model in itertools.product(("gsm8k", "humaneval"), ("local", "deepseek-chat"))
    ] + [summary("mmlu", "local", 0.52, None), summary("mmlu", "deepseek-chat", 0.5, None)]
    figure = eval_figure(runs)
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    figure.draw(renderer)
    texts = [t for t in figure.findobj(Text) if t.get_visible() and t.get_text().strip()]
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    named = [text for text, _ in boxes if "·" in text and ":" in text]
    assert len(named) == len(runs)  # every run is named once
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        assert not box_a.overlaps(box_b), f"{a!r} collides with {b!r}"

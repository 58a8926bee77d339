"""Summaries of stored runs: score with a 95% interval, latency, tokens, cost per correct answer.

Pass/fail scores are proportions with Wilson score intervals (sound at small n and near 0 or 1,
where the normal approximation leaves [0, 1]). Judged 1–10 scores are means with Student-t
intervals. Latency percentiles are by nearest rank, as in `thrifty usage`.
"""

from __future__ import annotations

from dataclasses import dataclass

from thrifty.costs.money import format_nanos, round_half_even
from thrifty.evals.store import ItemResult, Run
from thrifty.stats import Sample, wilson_interval
from thrifty.store.reports import nearest_rank as _nearest_rank


def wilson(successes: int, n: int) -> tuple[float, float]:
    """The Wilson 95% interval of ``successes / n``; (0, 1) when nothing was scored."""
    return wilson_interval(successes, n) or (0.0, 1.0)


def mean_interval(values: list[float]) -> tuple[float, float]:
    """A 95% Student-t interval for the mean of ``values``."""
    if len(values) < 2:
        return (values[0], values[0]) if values else (0.0, 0.0)
    interval = Sample.of(values).interval()
    assert interval is not None
    return interval


def nearest_rank(values: list[float], q: float) -> float | None:
    """The ``q`` percentile (0–100) by nearest rank."""
    return _nearest_rank(sorted(values), q)


@dataclass(frozen=True, slots=True)
class Summary:
    """One run, summarised."""

    run: Run
    n: int
    score: float  # accuracy (0–1) or mean rating (1–10)
    low: float
    high: float
    correct: int | None  # pass/fail only
    errors: int
    p50_ms: float | None
    p95_ms: float | None
    prompt_tokens: int
    completion_tokens: int
    cost_nanos: int | None  # None: no item's cost is known
    cost_known: int  # items whose cost is known
    judge_cost_nanos: int | None

    @property
    def cost_per_correct_nanos(self) -> int | None:
        """The model's cost divided by its correct answers; None when undefined or unknown."""
        if self.correct is None or not self.correct or self.cost_nanos is None:
            return None
        if self.cost_known < self.n:
            return None
        return round_half_even(self.cost_nanos, self.correct)


def summarize(run: Run, results: list[ItemResult]) -> Summary:
    """Score, interval, latency, tokens and cost of a run's stored items."""
    n = len(results)
    latencies = [r.latency_ms for r in results]
    if run.rated:
        scores = [r.score for r in results]
        score = sum(scores) / n if n else 0.0
        low, high = mean_interval(scores)
        correct = None
    else:
        correct = sum(1 for r in results if r.passed)
        score = correct / n if n else 0.0
        low, high = wilson(correct, n)
    costs = [r.cost_nanos for r in results if r.cost_nanos is not None]
    judge_costs = [r.judge_cost_nanos for r in results if r.judge_cost_nanos is not None]
    return Summary(
        run=run,
        n=n,
        score=score,
        low=low,
        high=high,
        correct=correct,
        errors=sum(1 for r in results if r.error),
        p50_ms=nearest_rank(latencies, 50),
        p95_ms=nearest_rank(latencies, 95),
        prompt_tokens=sum(r.prompt_tokens for r in results),
        completion_tokens=sum(r.completion_tokens for r in results),
        cost_nanos=sum(costs) if costs else None,
        cost_known=len(costs),
        judge_cost_nanos=sum(judge_costs) if judge_costs else None,
    )


def _score_text(s: Summary) -> str:
    if s.run.rated:
        return f"{s.score:.2f} [{s.low:.2f}, {s.high:.2f}]"
    return f"{s.score:.1%} [{s.low:.1%}, {s.high:.1%}]"


def _money(nanos: int | None, partial: bool = False) -> str:
    if nanos is None:
        return "-"
    return format_nanos(nanos) + ("*" if partial else "")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


COLUMNS = (
    "run", "suite", "model", "n", "score [95% CI]", "p50 ms", "p95 ms", "tok in", "tok out",
    "cost USD", "USD/correct",
)  # fmt: skip


def table_rows(summaries: list[Summary]) -> list[list[str]]:
    """One row of cells per run, in `COLUMNS` order."""
    rows = []
    for s in summaries:
        n = f"{s.n}" if s.n == s.run.planned else f"{s.n}/{s.run.planned}"
        rows.append(
            [
                s.run.id,
                s.run.suite,
                s.run.model,
                n,
                _score_text(s),
                _ms(s.p50_ms),
                _ms(s.p95_ms),
                f"{s.prompt_tokens:,}",
                f"{s.completion_tokens:,}",
                _money(s.cost_nanos, partial=0 < s.cost_known < s.n),
                _money(s.cost_per_correct_nanos),
            ]
        )
    return rows


def render(summaries: list[Summary]) -> str:
    """The side-by-side table, with its footnotes."""
    rows = table_rows(summaries)
    widths = [max(len(title), *(len(r[i]) for r in rows)) for i, title in enumerate(COLUMNS)]
    left = {0, 1, 2}

    def line(cells: list[str] | tuple[str, ...]) -> str:
        return "  ".join(
            f"{c:<{w}}" if i in left else f"{c:>{w}}"
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [line(COLUMNS), *(line(r) for r in rows), ""]
    out.append(
        "score: share correct with a Wilson 95% interval; judged suites: mean 1-10 rating "
        "with a t interval."
    )
    out.append(
        "cost: x-thrifty-cost-usd summed (the model's answers, not the judge's); "
        "USD/correct = cost / correct answers."
    )
    if any(0 < s.cost_known < s.n for s in summaries):
        out.append(
            "*: some items' cost unknown (not answered through thrifty); USD/correct left out."
        )
    judged = [s for s in summaries if s.judge_cost_nanos is not None]
    for s in judged:
        out.append(f"judge cost of {s.run.id}: {format_nanos(s.judge_cost_nanos or 0)} USD")
    unfinished = [s for s in summaries if s.n < s.run.planned]
    if unfinished:
        names = ", ".join(s.run.id for s in unfinished)
        out.append(f"unfinished ({names}): rerun `thrifty eval run` with the same --run-id.")
    errors = sum(s.errors for s in summaries)
    if errors:
        out.append(f"{errors} item(s) refused by the endpoint were scored as wrong.")
    return "\n".join(out)


def parse_threshold(text: str) -> tuple[str, float]:
    """``gsm8k=0.4`` or ``gsm8k=40%`` → ``("gsm8k", 0.4)``; a judged suite's bar is a rating."""
    suite, sep, value = text.partition("=")
    if not sep or not suite.strip() or not value.strip():
        raise ValueError(f"expected SUITE=SCORE, got {text!r}")
    value = value.strip()
    try:
        bar = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise ValueError(f"not a score: {value!r}") from None
    return suite.strip(), bar


def failures(summaries: list[Summary], thresholds: list[tuple[str, float]]) -> list[str]:
    """One line per threshold that is not met (a suite with no run fails its threshold)."""
    problems = []
    for suite, bar in thresholds:
        runs = [s for s in summaries if s.run.suite == suite]
        if not runs:
            problems.append(f"{suite}: no run to check against {bar:g}")
        for s in runs:
            if s.score < bar:
                shown = f"{s.score:.3g}" if s.run.rated else f"{s.score:.1%}"
                problems.append(f"{suite} × {s.run.model} ({s.run.id}): {shown} < {bar:g}")
    return problems

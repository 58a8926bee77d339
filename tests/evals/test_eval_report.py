"""`thrifty eval report` on small stored runs whose numbers were worked out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from thrifty.cli import main
from thrifty.evals import store
from thrifty.evals.report import mean_interval, summarize, wilson


def item(
    n: int, passed: bool | None, score: float, latency: float, cost: int | None
) -> store.ItemResult:
    return store.ItemResult(
        item_id=f"i{n}",
        position=n,
        answers=[f"answer {n}"],
        expected="x",
        score=score,
        passed=passed,
        detail="",
        error=None,
        latency_ms=latency,
        prompt_tokens=10 * (n + 1),
        completion_tokens=n + 1,
        route="local",
        cost_nanos=cost,
        judge_cost_nanos=None,
    )


def save_run(
    db: Path, run_id: str, suite: str, rated: bool, results: list[store.ItemResult]
) -> None:
    conn = store.connect(db)
    store.start_run(
        conn, run_id, suite=suite, source=suite, model="local", base_url="http://x/v1",
        rated=rated, planned=len(results), params={},
    )  # fmt: skip
    for result in results:
        store.save_item(conn, run_id, result)
    store.finish_run(conn, run_id, "done")
    conn.close()


# pass/fail: 3 of 5 right; latencies 100..1000 ms; costs 1,000..5,000 nano-USD
PASSED = [True, True, False, True, False]
LATENCY = [300.0, 100.0, 1000.0, 200.0, 400.0]
COST = [1000, 2000, 3000, 4000, 5000]
# judged: ratings 6, 8, 7, 9
RATINGS = [6.0, 8.0, 7.0, 9.0]


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    db = tmp_path / "evals.db"
    save_run(db, "old", "count", False, [item(i, False, 0.0, 1.0, 1) for i in range(5)])
    results = [item(i, ok, float(ok), LATENCY[i], COST[i]) for i, ok in enumerate(PASSED)]
    save_run(db, "new", "count", False, results)
    save_run(
        db, "judged", "chat", True, [item(i, None, r, 50.0, None) for i, r in enumerate(RATINGS)]
    )
    return tmp_path


def report(home: Path, *args: str) -> Result:
    return CliRunner().invoke(
        main, ["eval", "report", *args], env={"THRIFTY_HOME": str(home), "THRIFTY_CONFIG": None}
    )


def test_numbers_by_hand(home: Path) -> None:
    conn = store.connect(home / "evals.db")
    run = store.get_run(conn, "new")
    assert run is not None
    s = summarize(run, store.items(conn, "new"))
    # Wilson, 3/5, z=1.96: centre (0.6 + z²/10)/(1 + z²/5) = 0.5566, half-width 0.3258
    assert s.score == 0.6 and s.correct == 3
    assert s.low == pytest.approx(0.2307, abs=1e-4) and s.high == pytest.approx(0.8824, abs=1e-4)
    assert (s.p50_ms, s.p95_ms) == (300.0, 1000.0)  # nearest rank: 3rd and 5th of 5
    assert (s.prompt_tokens, s.completion_tokens) == (150, 15)
    assert s.cost_nanos == 15_000 and s.cost_per_correct_nanos == 5_000
    judged = store.get_run(conn, "judged")
    assert judged is not None
    j = summarize(judged, store.items(conn, "judged"))
    # mean 7.5, sd sqrt(5/3) = 1.2910, t(3) = 3.182: 7.5 ± 2.054
    assert j.score == 7.5 and j.correct is None
    assert j.low == pytest.approx(5.446, abs=1e-3) and j.high == pytest.approx(9.554, abs=1e-3)
    assert j.cost_nanos is None and j.cost_per_correct_nanos is None
    conn.close()


def test_interval_edges() -> None:
    assert wilson(0, 0) == (0.0, 1.0)
    low, high = wilson(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    assert mean_interval([5.0]) == (5.0, 5.0)


def test_table_shows_the_latest_run_of_each_suite_and_model(home: Path) -> None:
    result = report(home)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:4] == ["run", "suite", "model", "n"]
    assert "old" not in {line.split()[0] for line in lines[1:3]}
    new = next(line for line in lines if line.startswith("new "))
    assert "60.0% [23.1%, 88.2%]" in new
    assert "0.000015000" in new and "0.000005000" in new  # cost, cost per correct answer
    assert "300" in new and "1,000" in new  # p50, p95
    judged = next(line for line in lines if line.startswith("judged "))
    assert "7.50 [5.45, 9.55]" in judged


def test_named_runs_and_the_plot(home: Path) -> None:
    plot = home / "score_vs_cost.png"
    result = report(home, "old", "new", "judged", "--plot", str(plot))
    assert result.exit_code == 0, result.output
    assert "old " in result.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report(home, "missing").exit_code == 1


@pytest.mark.parametrize(
    ("gates", "code"),
    [
        (["count=0.5"], 0),
        (["count=60%"], 0),  # 0.6 is not below 0.6
        (["count=0.61"], 1),
        (["chat=7"], 0),
        (["chat=8"], 1),  # the judged suite's bar is a 1-10 rating
        (["count=0.5", "nosuch=0.1"], 1),  # no run to vouch for a suite fails its gate
    ],
)
def test_fail_under_exit_codes(home: Path, gates: list[str], code: int) -> None:
    args = [arg for gate in gates for arg in ("--fail-under", gate)]
    result = report(home, *args)
    assert result.exit_code == code, result.output


def test_fail_under_rejects_a_malformed_gate(home: Path) -> None:
    assert report(home, "--fail-under", "count").exit_code == 2

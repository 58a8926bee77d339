"""`thrifty ab report`: its numbers equal the ones computed by hand from the rows inserted."""

from __future__ import annotations

import json
import math
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from support import database_url
from thrifty.cli import main
from thrifty.stats import Sample, welch_t, wilson_interval
from thrifty.store.ab import Feedback, ab_report, add_feedback
from thrifty.store.db import connect
from thrifty.store.migrations import migrate
from thrifty.store.reports import nearest_rank
from thrifty.store.request_log import COLUMNS

NOW = 1_750_000_000.0
CONFIG = {
    "control": {"model": "local", "weight": 0.7},
    "lora": {"model": "local-lora", "weight": 0.2},
    "cloud": {"model": "deepseek-chat", "weight": 0.1},
}


def request_row(
    i: int, variant: str | None, status: int, latency: float, cost: int | None
) -> tuple[Any, ...]:
    values = dict.fromkeys(COLUMNS, 0)
    values |= {
        "id": f"req-{i}", "ts": NOW - 3600 + i, "tenant": "acme", "key_id": None,
        "endpoint": "chat", "model": "m", "route": "local", "reason": "r",
        "upstream_model": None, "latency_ms": latency, "ttft_ms": None, "cost_nanos": cost,
        "baseline_nanos": None, "status": status, "error_code": None, "pii": "",
        "cache": "", "variant": variant, "trace_id": None,
    }  # fmt: skip
    return tuple(values[c] for c in COLUMNS)


@pytest.fixture()
def logged(tmp_path: Path) -> tuple[str, dict[str, list[tuple[Any, ...]]]]:
    """A request log with 200 requests of chat-ab, others' rows, and feedback on some."""
    path = database_url(tmp_path)
    conn = connect(path)
    migrate(conn)
    rng = random.Random(7)
    by_variant: dict[str, list[tuple[Any, ...]]] = {"control": [], "lora": [], "cloud": []}
    rows = []
    for i in range(200):
        variant = rng.choices(list(by_variant), [0.7, 0.2, 0.1])[0]
        status = 500 if rng.random() < 0.05 else 200
        cost = None if i % 17 == 0 else rng.randrange(1_000, 900_000)
        row = request_row(i, f"chat-ab:{variant}", status, rng.uniform(5, 900), cost)
        by_variant[variant].append(row)
        rows.append(row)
    rows.append(request_row(900, "chat-ab-2:control", 200, 1.0, 5))  # another experiment
    rows.append(request_row(901, None, 200, 1.0, 5))
    too_old = list(request_row(902, "chat-ab:control", 200, 1.0, 5))
    too_old[COLUMNS.index("ts")] = NOW - 30 * 86400
    rows.append(tuple(too_old))
    placeholders = ", ".join("?" * len(COLUMNS))
    with conn.transaction():
        conn.executemany(f"INSERT INTO requests VALUES ({placeholders})", rows)
    for i in range(0, 200, 3):
        first = Feedback(f"req-{i}", score=float(i % 5), thumbs=i % 2 == 0, converted=i % 4 == 0)
        assert add_feedback(conn, first, "acme", ts=NOW) is not None
    for i in range(0, 200, 9):  # corrections: the latest value of a field counts
        assert add_feedback(conn, Feedback(f"req-{i}", score=4.5, thumbs=False), "acme") is not None
    assert add_feedback(conn, Feedback("req-1", comment="wrong tenant"), "other") is None
    conn.close()
    return path, by_variant


def by_hand(path: str, rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    ids = [r[0] for r in rows]
    conn = connect(path)
    latest: dict[str, dict[str, Any]] = {}
    for request_id, score, thumbs, converted in conn.execute(
        "SELECT request_id, score, thumbs, converted FROM feedback ORDER BY id"
    ):
        if request_id not in ids:
            continue
        fields = latest.setdefault(request_id, {})
        for name, value in (("score", score), ("thumbs", thumbs), ("converted", converted)):
            if value is not None:
                fields[name] = value
    conn.close()
    status, latency, cost = (
        COLUMNS.index("status"),
        COLUMNS.index("latency_ms"),
        COLUMNS.index("cost_nanos"),
    )
    costs = [r[cost] for r in rows if r[cost] is not None]
    scores = [f["score"] for f in latest.values() if "score" in f]
    thumbs = [f["thumbs"] for f in latest.values() if "thumbs" in f]
    return {
        "requests": len(rows),
        "errors": sum(r[status] >= 400 for r in rows),
        "p95": nearest_rank(sorted(r[latency] for r in rows), 95),
        "cost_nanos": sum(costs),
        "cost_unknown": len(rows) - len(costs),
        "cost_per_request": (Decimal(sum(costs)) / len(costs) / 10**9).quantize(Decimal("1e-12")),
        "score_mean": sum(scores) / len(scores),
        "scores": scores,
        "thumbs": (sum(thumbs), len(thumbs)),
        "converted": sum(f.get("converted", 0) for f in latest.values()),
    }


def test_report_numbers_equal_the_request_log(
    logged: tuple[str, dict[str, list[tuple[Any, ...]]]],
) -> None:
    path, by_variant = logged
    conn = connect(path)
    configured = {name: (v["model"], v["weight"]) for name, v in CONFIG.items()}
    report = ab_report(conn, "chat-ab", NOW - 86400, None, configured)
    conn.close()
    assert [v.variant for v in report.variants] == ["control", "lora", "cloud"]
    control = by_hand(path, by_variant["control"])
    for v in report.variants:
        want = by_hand(path, by_variant[v.variant])
        assert v.requests == want["requests"]
        assert (v.error_rate.k, v.error_rate.n) == (want["errors"], want["requests"])
        assert v.latency_p95_ms == want["p95"]
        assert (v.cost_nanos, v.cost_unknown) == (want["cost_nanos"], want["cost_unknown"])
        assert v.cost_per_request == want["cost_per_request"]
        assert v.score.mean == pytest.approx(want["score_mean"], rel=1e-12)
        assert (v.thumbs_up.k, v.thumbs_up.n) == want["thumbs"]
        assert (v.conversion.k, v.conversion.n) == (want["converted"], want["requests"])
        assert v.thumbs_up.interval == wilson_interval(*want["thumbs"])
        if v.variant == "control":
            assert v.score.p_value is None and v.error_rate.p_value is None
        else:
            welch = welch_t(Sample.of(control["scores"]), Sample.of(want["scores"]))
            assert welch is not None and v.score.p_value == welch[2]
            assert v.error_rate.p_value is not None and 0 <= v.error_rate.p_value <= 1
    counts = [len(by_variant[n]) for n in CONFIG]
    chi2 = sum((o - 200 * w) ** 2 / (200 * w) for o, w in zip(counts, [0.7, 0.2, 0.1], strict=True))
    assert report.sample_ratio_p == pytest.approx(math.exp(-chi2 / 2), rel=1e-9)


def test_cli_table_and_json(
    logged: tuple[str, dict[str, list[tuple[Any, ...]]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, by_variant = logged
    monkeypatch.delenv("THRIFTY_CONFIG", raising=False)
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    config = tmp_path / "thrifty.yaml"
    config.write_text(
        yaml.safe_dump(
            {"home": str(tmp_path), "experiments": {"chat-ab": {"variants": CONFIG}}},
            sort_keys=False,
        )
    )
    runner = CliRunner()
    # the rows are from a fixed past time: a window from an ISO date before them
    since = "2025-06-15"
    result = runner.invoke(
        main, ["ab", "report", "chat-ab", "--since", since, "-c", str(config), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    lora = by_hand(path, by_variant["lora"])
    (row,) = [v for v in data["variants"] if v["variant"] == "lora"]
    assert row["requests"] == lora["requests"]
    assert row["cost_nanos"] == lora["cost_nanos"]
    assert Decimal(row["cost"]) == Decimal(lora["cost_nanos"]).scaleb(-9)
    assert Decimal(row["cost_per_request"]) == lora["cost_per_request"]
    assert row["model"] == "local-lora" and row["weight"] == 0.2
    table = runner.invoke(main, ["ab", "report", "chat-ab", "--since", since, "-c", str(config)])
    assert table.exit_code == 0, table.output
    assert "experiment chat-ab: 200 requests" in table.output
    assert "p=" in table.output and "thumbs up" in table.output
    assert table.output.index("\nlora") < table.output.index("\ncloud")  # config order
    print(table.output)
    empty = runner.invoke(main, ["ab", "report", "nope", "-c", str(config)])
    assert empty.exit_code == 0 and "No requests logged for experiment 'nope'" in empty.output

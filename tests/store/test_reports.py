"""store/reports.py: usage totals and groups equal hand-computed sums, to the nano-dollar."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from support import database_url
from thrifty.context import RequestContext
from thrifty.store.db import Connection, connect
from thrifty.store.migrations import migrate
from thrifty.store.reports import (
    auto_bucket,
    load_usage,
    nearest_rank,
    parse_duration,
    parse_since,
    report_dict,
    time_span,
    timeseries,
    usage_report,
)
from thrifty.store.request_log import COLUMNS, RequestLog

DAY = 1_748_736_000.0  # 2025-06-01T00:00:00Z
H = 3600.0
UNTIL = DAY + 2 * 86400  # exclusive


def log_row(
    route: str,
    model: str,
    tenant: str,
    status: int,
    prompt: int,
    completion: int,
    latency_ms: float,
    cost: int | None,
    baseline: int | None,
    ts: float,
) -> dict[str, Any]:
    return {
        "id": f"req-{ts}-{route}-{latency_ms}",
        "ts": ts,
        "tenant": tenant,
        "endpoint": "chat",
        "model": model,
        "route": route,
        "reason": "test",
        "stream": 0,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "latency_ms": latency_ms,
        "cost_nanos": cost,
        "baseline_nanos": baseline,
        "status": status,
    }


# route, model asked, tenant, status, prompt, completion, latency ms, cost, baseline, ts
ROWS = [
    log_row("cache", "auto", "acme", 200, 100, 20, 2.0, 0, 48_000, DAY + H),
    log_row("cache", "auto", "beta", 200, 60, 10, 4.0, 0, 30_000, DAY + 2 * H),
    log_row("local", "auto", "acme", 200, 400, 150, 300.0, 1_500, 500_000, DAY + 3 * H),
    log_row("local", "local", "acme", 200, 500, 200, 900.0, 2_500, 700_000, DAY + 4 * H),
    log_row("local", "local", "beta", 200, 80, 40, 450.0, 1_000, None, DAY + 5 * H),
    log_row("deepseek-chat", "deepseek-chat", "beta", 502, 0, 0, 50.0, 0, None, DAY + 6 * H),
    log_row("", "", "acme", 400, 0, 0, 0.5, 0, None, DAY + 7 * H),
    log_row("deepseek-chat", "deepseek-chat", "acme", 200, 2000, 1000, 1200.0, 1_640_000,
            1_640_000, DAY + 86400 + H),
    log_row("deepseek-chat", "auto", "beta", 200, 1000, 500, 800.0, None, 900_000,
            DAY + 86400 + 2 * H),
]  # fmt: skip
OUTSIDE = [  # just before the window, and exactly at its (exclusive) end
    log_row("local", "local", "acme", 200, 9, 9, 9.0, 10**12, 10**12, DAY - 0.001),
    log_row("local", "local", "acme", 200, 9, 9, 9.0, 10**12, 10**12, UNTIL),
]


def insert(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert the way the request log's writer does: every column, in `COLUMNS` order."""
    sql = f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    defaults = {"key_id": None, "upstream_model": None, "cached_tokens": 0, "ttft_ms": None}
    defaults |= {"error_code": None, "pii": "", "cache": "", "variant": None, "trace_id": None}
    with conn.transaction():
        conn.executemany(sql, [tuple({**defaults, **r}[c] for c in COLUMNS) for r in rows])


@pytest.fixture()
def conn(tmp_path: Path) -> Iterator[Connection]:
    db = connect(database_url(tmp_path))
    migrate(db)
    insert(db, ROWS + OUTSIDE)
    yield db
    db.close()


def test_totals_equal_hand_sums(conn: Connection) -> None:
    total = usage_report(conn, DAY, UNTIL).total
    assert total.requests == 9
    assert total.errors == 2  # the 502 and the 400
    assert total.server_errors == 1
    assert total.prompt_tokens == 100 + 60 + 400 + 500 + 80 + 2000 + 1000
    assert total.completion_tokens == 20 + 10 + 150 + 200 + 40 + 1000 + 500
    assert total.cost_nanos == 1_500 + 2_500 + 1_000 + 1_640_000  # the unpriced row left out
    assert total.cost_unknown == 1
    assert total.baseline_nanos == 48_000 + 30_000 + 500_000 + 700_000 + 1_640_000 + 900_000
    assert total.baseline_unknown == 3
    # only rows with both known: the two cache hits, two local answers, one cloud answer
    assert total.saved_nanos == 48_000 + 30_000 + (500_000 - 1_500) + (700_000 - 2_500) + 0
    assert total.cache_hits == 2 and total.cache_hit_rate == pytest.approx(2 / 9)
    # latencies sorted: 0.5 2 4 50 300 450 800 900 1200; ranks ⌈4.5⌉ = 5 and ⌈8.55⌉ = 9
    assert (total.latency_p50_ms, total.latency_p95_ms) == (300.0, 1200.0)
    assert total.latency_mean_ms == pytest.approx(3706.5 / 9)


def test_no_grouping_has_only_the_total(conn: Connection) -> None:
    report = usage_report(conn, DAY, UNTIL)
    assert report.rows == [] and report.by is None and not report.empty


def test_by_route(conn: Connection) -> None:
    rows = {row.key: row for row in usage_report(conn, DAY, UNTIL, "route").rows}
    assert list(rows) == ["deepseek-chat", "local", "cache", ""]  # most requests first
    cache, local, cloud, refused = rows["cache"], rows["local"], rows["deepseek-chat"], rows[""]
    assert (cache.requests, cache.cost_nanos, cache.baseline_nanos) == (2, 0, 78_000)
    assert cache.saved_nanos == 78_000 and cache.cache_hit_rate == 1.0
    assert (cache.latency_p50_ms, cache.latency_p95_ms) == (2.0, 4.0)
    assert (local.requests, local.cost_nanos, local.baseline_nanos) == (3, 5_000, 1_200_000)
    assert local.saved_nanos == 498_500 + 697_500 and local.baseline_unknown == 1
    assert (local.latency_p50_ms, local.latency_p95_ms) == (450.0, 900.0)
    assert (cloud.requests, cloud.errors, cloud.server_errors) == (3, 1, 1)
    assert (cloud.cost_nanos, cloud.cost_unknown) == (1_640_000, 1)
    assert (cloud.baseline_nanos, cloud.baseline_unknown, cloud.saved_nanos) == (2_540_000, 1, 0)
    assert cloud.cache_hit_rate == 0.0
    assert (refused.requests, refused.errors, refused.server_errors) == (1, 1, 0)
    # the groups add up to the total
    total = usage_report(conn, DAY, UNTIL).total
    for name in ("requests", "cost_nanos", "baseline_nanos", "saved_nanos", "prompt_tokens"):
        assert sum(getattr(row, name) for row in rows.values()) == getattr(total, name)


def test_by_model_tenant_and_day(conn: Connection) -> None:
    def counts(by: Any) -> dict[str, int]:
        return {row.key: row.requests for row in usage_report(conn, DAY, UNTIL, by).rows}

    assert counts("model") == {"auto": 4, "local": 2, "deepseek-chat": 2, "": 1}
    assert counts("tenant") == {"acme": 5, "beta": 4}
    days = usage_report(conn, DAY, UNTIL, "day").rows
    assert [(d.key, d.requests) for d in days] == [("2025-06-01", 7), ("2025-06-02", 2)]
    assert days[1].cost_nanos == 1_640_000 and days[1].baseline_nanos == 2_540_000


def test_window_is_since_inclusive_until_exclusive(conn: Connection) -> None:
    assert usage_report(conn, DAY - 1, UNTIL + 1).total.requests == 11
    assert usage_report(conn, DAY, None).total.requests == 10  # no end: the row at UNTIL too
    assert usage_report(conn, DAY + H, DAY + 2 * H).total.requests == 1
    empty = usage_report(conn, DAY + 3 * 86400, None, "route")
    assert empty.empty and empty.rows == [] and empty.total.latency_p50_ms is None
    assert empty.total.cache_hit_rate is None


def test_bad_grouping_is_a_value_error(conn: Connection) -> None:
    with pytest.raises(ValueError, match="cannot group by 'color'"):
        usage_report(conn, DAY, UNTIL, "color")  # type: ignore[arg-type]


def test_sums_stay_exact_beyond_float_precision(tmp_path: Path) -> None:
    db = connect(database_url(tmp_path))
    migrate(db)
    big = 2**53 + 1  # a float cannot hold it: float(big) == 2**53
    insert(db, [log_row("x", "x", "t", 200, 1, 1, 1.0, big, big + 3, DAY + i) for i in range(3)])
    total = usage_report(db, DAY, UNTIL).total
    db.close()
    assert total.cost_nanos == 3 * big and total.saved_nanos == 9
    stored = load_usage(database_url(tmp_path), DAY, UNTIL)
    assert report_dict(stored)["total"]["cost_nanos"] == 3 * big


@pytest.mark.parametrize(
    ("values", "percent", "expected"),
    [
        ([15, 20, 35, 40, 50], 5, 15),
        ([15, 20, 35, 40, 50], 30, 20),
        ([15, 20, 35, 40, 50], 40, 20),
        ([15, 20, 35, 40, 50], 50, 35),
        ([15, 20, 35, 40, 50], 100, 50),
        ([7], 95, 7),
        ([1, 2], 50, 1),
        ([], 50, None),
    ],
)
def test_nearest_rank(values: list[float], percent: float, expected: float | None) -> None:
    assert nearest_rank(values, percent) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", 1_000_000 - 1800),
        ("24h", 1_000_000 - 86400),
        ("7d", 1_000_000 - 7 * 86400),
        ("2w", 1_000_000 - 14 * 86400),
        ("90s", 1_000_000 - 90),
        ("2025-06-01", DAY),
        ("2025-06-01T08:00:00+08:00", DAY),
        ("2025-06-01T01:00:00Z", DAY + H),
        ("2025-06-01 01:00", DAY + H),
    ],
)
def test_parse_since(text: str, expected: float) -> None:
    assert parse_since(text, now=1_000_000.25) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "7 days", "-7d", "2025-13-01", "7y"])
def test_parse_since_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a time"):
        parse_since(text, now=1_000_000)


def test_parse_duration() -> None:
    assert parse_duration("1.5h") == 5400
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("1h30m")


def test_timeseries_by_day_and_hour(conn: Connection) -> None:
    days = timeseries(conn, DAY, 86400, UNTIL)
    assert [b.start for b in days] == [DAY, DAY + 86400]
    assert days[0].requests == {"cache": 2, "local": 3, "deepseek-chat": 1, "": 1}
    assert days[0].cost_nanos == 5_000 and days[0].baseline_nanos == 1_278_000
    assert days[1].requests == {"deepseek-chat": 2} and days[1].cost_nanos == 1_640_000
    hours = timeseries(conn, DAY, 3600, UNTIL)
    assert hours[0].start == DAY + H and hours[-1].start == DAY + 86400 + 2 * H
    assert len(hours) == 24 + 2  # from the first request's hour to the last's, gaps included
    assert sum(sum(b.requests.values()) for b in hours) == 9
    assert sum(b.cost_nanos for b in hours) == usage_report(conn, DAY, UNTIL).total.cost_nanos
    assert timeseries(conn, UNTIL + 1, 3600) == []
    with pytest.raises(ValueError):
        timeseries(conn, DAY, 0)


def test_time_span_and_auto_bucket(conn: Connection) -> None:
    assert time_span(conn, DAY, UNTIL) == (DAY + H, DAY + 86400 + 2 * H)
    assert time_span(conn, UNTIL + 1) is None
    assert auto_bucket(30 * 60) == 60
    assert auto_bucket(20 * 3600) == 900  # 80 quarter-hours
    assert auto_bucket(25 * 3600) == 3600  # 100 quarter-hours would be too many
    assert auto_bucket(3 * 86400) == 3600
    assert auto_bucket(30 * 86400) == 86400
    assert auto_bucket(3650 * 86400) == 7 * 86400


def test_report_dict_money_is_strings_and_nanos(conn: Connection) -> None:
    data = report_dict(usage_report(conn, DAY, UNTIL, "route"))
    assert data["since"] == "2025-06-01T00:00:00Z" and data["until"] == "2025-06-03T00:00:00Z"
    assert data["by"] == "route" and data["currency"] == "USD"
    total = data["total"]
    assert (total["cost"], total["cost_nanos"]) == ("0.001645000", 1_645_000)
    assert (total["saved"], total["saved_nanos"]) == ("0.001274000", 1_274_000)
    assert total["latency_p95_ms"] == 1200.0 and total["key"] == "total"
    assert [row["key"] for row in data["rows"]] == ["deepseek-chat", "local", "cache", ""]
    cny = report_dict(usage_report(conn, DAY, UNTIL), "cny", Decimal("7.2"))
    assert cny["currency"] == "CNY" and cny["cny_per_usd"] == "7.2"
    assert (cny["total"]["cost"], cny["total"]["cost_nanos"]) == ("0.011844000", 11_844_000)


def test_missing_database_is_an_empty_report(tmp_path: Path) -> None:
    report = load_usage(database_url(tmp_path), DAY, None, "route")
    assert report.empty and not (tmp_path / "thrifty.db").exists()  # SQLite: no file made
    with pytest.raises(ValueError, match=r"unsupported database URL 'mysql://u:\*\*\*@db/t'"):
        load_usage("mysql://u:secret@db/t", DAY)


def test_rows_from_the_real_writer_are_reported(tmp_path: Path) -> None:
    """The report reads what RequestLog writes (a refusal: status 400, cost 0, no baseline)."""
    log = RequestLog(database_url(tmp_path), flush_interval_s=0.01)
    log.open()
    try:
        for status in (400, 503):
            ctx = RequestContext("chat", {}, "auto", False, tenant="acme")
            ctx.status, ctx.cost_nanos = status, 0
            ctx.finished_at = ctx.started + 0.25
            log.append(ctx)
        assert log.flush()
    finally:
        log.close()
    report = load_usage(log.url, 0, None, "tenant")
    assert [(r.key, r.requests, r.errors, r.server_errors) for r in report.rows] == [
        ("acme", 2, 2, 1)
    ]
    assert report.total.cost_nanos == 0 and report.total.baseline_unknown == 2
    assert report.total.latency_p50_ms == pytest.approx(250.0)

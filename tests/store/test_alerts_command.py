"""`thrifty alerts`: checks over the request log's last window, exit 1 on a breach."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from support import database_url
from thrifty.cli import main
from thrifty.commands.alerts import CHECKS, DEFAULTS, Thresholds, Window, alerts, evaluate
from thrifty.store.db import connect
from thrifty.store.migrations import migrate
from thrifty.store.reports import usage_report
from thrifty.store.request_log import COLUMNS

RULES = Path(__file__).parents[2] / "deploy" / "prometheus" / "rules.yaml"


def write_log(home: Path, rows: list[tuple[str, int, float, int | None]], at: float) -> None:
    """(route, status, latency ms, cost nanos) rows at time ``at``, inserted as the writer does."""
    conn = connect(database_url(home))
    migrate(conn)
    sql = f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    values = []
    for n, (route, status, latency_ms, cost) in enumerate(rows):
        row = {c: None for c in COLUMNS} | {"pii": "", "cache": "", "cached_tokens": 0}
        row |= {"id": f"req-{n}", "ts": at, "tenant": "default", "endpoint": "chat", "stream": 0}
        row |= {"model": "auto", "route": route, "reason": "test", "status": status}
        row |= {"prompt_tokens": 10, "completion_tokens": 10, "latency_ms": latency_ms}
        row |= {"cost_nanos": cost, "baseline_nanos": 1_000_000}
        values.append(tuple(row[c] for c in COLUMNS))
    with conn.transaction():
        conn.executemany(sql, values)
    conn.close()


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    config = tmp_path / "thrifty.yaml"
    config.write_text(yaml.safe_dump({"home": str(tmp_path)}))
    monkeypatch.setenv("THRIFTY_CONFIG", str(config))
    return tmp_path


HEALTHY = [
    ("cache", 200, 3.0, 0),
    ("local", 200, 300.0, 5_000),
    ("local", 200, 450.0, 7_000),
    ("deepseek-chat", 200, 480.0, 1_640_000),
]
# local averages (300 + 900) / 2 = 600 ms; the cloud answers 1 of 4 with 502 (25% > 5%)
BREACHING = [
    ("local", 200, 300.0, 5_000),
    ("local", 200, 900.0, 7_000),
    *[("deepseek-chat", 200, 400.0, 1_640_000)] * 3,
    ("deepseek-chat", 502, 40.0, 0),
]


def invoke(*args: str) -> Any:
    return CliRunner().invoke(alerts, list(args), catch_exceptions=False)


def test_healthy_log_exits_0(home: Path) -> None:
    write_log(home, HEALTHY, time.time() - 60)
    result = invoke()
    assert result.exit_code == 0, result.output
    assert "4 requests" in result.output and "BREACH" not in result.output
    assert "All 9 checks OK." in result.output  # three checks on three routes
    lines = [line.split() for line in result.output.splitlines()]
    assert ["average", "latency", "local", "375.0", "ms", "500", "ms", "OK"] in lines


def test_breaching_log_exits_1_and_names_each_breach(home: Path) -> None:
    write_log(home, BREACHING, time.time() - 60)
    result = invoke()
    assert result.exit_code == 1, result.output
    lines = [line.split() for line in result.output.splitlines()]
    assert ["average", "latency", "local", "600.0", "ms", "500", "ms", "BREACH"] in lines
    assert ["5xx", "error", "rate", "deepseek-chat", "25.00%", "(1/4)", "5.00%", "BREACH"] in lines
    # cost per priced request: 3 × 1,640,000 / 4 = 1,230,000 nanos, under 0.002 USD
    assert [
        "cost",
        "per",
        "request",
        "deepseek-chat",
        "0.001230000",
        "USD",
        "0.002",
        "USD",
        "OK",
    ] in (lines)
    assert "2 breaches: average latency on local, 5xx error rate on deepseek-chat." in (
        result.output
    )


def test_thresholds_are_options(home: Path) -> None:
    write_log(home, BREACHING, time.time() - 60)
    relaxed = ["--max-latency-ms", "600", "--max-error-rate", "0.25"]
    assert invoke(*relaxed).exit_code == 0  # equal to the limit is not above it
    strict = invoke(*relaxed, "--max-cost-per-request-usd", "0.00122999")
    assert strict.exit_code == 1
    assert "cost per request on deepseek-chat" in strict.output


def test_the_window_bounds_the_checks(home: Path) -> None:
    write_log(home, BREACHING, time.time() - 2 * 3600)  # two hours ago
    result = invoke()
    assert result.exit_code == 0 and "nothing to check" in result.output
    assert invoke("--window", "3h").exit_code == 1


def test_empty_log_exits_0(home: Path) -> None:
    result = invoke()
    assert result.exit_code == 0 and "0 requests" in result.output


def test_bad_options_exit_2(home: Path) -> None:
    for args in (["--window", "soon"], ["--window", "0m"], ["--max-error-rate", "2"]):
        assert CliRunner().invoke(alerts, args).exit_code == 2, args
    result = CliRunner().invoke(alerts, ["--max-cost-per-request-usd", "lots"])
    assert result.exit_code == 2 and "not an amount of money" in result.output
    result = CliRunner().invoke(alerts, ["-c", str(home / "missing.yaml")])
    assert result.exit_code == 2 and "config file not found" in result.output


def test_defaults_match_the_prometheus_rules() -> None:
    rules = {
        rule["alert"]: rule["expr"]
        for group in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    assert rules["ThriftyHighLatency"].strip().endswith(f"> {DEFAULTS.max_latency_ms / 1000:g}")
    assert rules["ThriftyHighErrorRate"].strip().endswith(f"> {DEFAULTS.max_error_rate:g}")
    cost = rules["ThriftyCostPerRequestAboveTarget"].strip()
    assert cost.endswith(f"> {DEFAULTS.max_cost_per_request_usd}")


def test_checks_are_pluggable(home: Path) -> None:
    """A new check is a function over the window; `evaluate` runs what it is given."""
    write_log(home, HEALTHY, 1000.0)
    conn = connect(database_url(home))
    window = Window(0, 2000, usage_report(conn, 0, 2000, "route"))
    conn.close()

    def always_breaches(window: Window, limits: Thresholds) -> list[Any]:
        from thrifty.commands.alerts import Result

        return [Result("quality floor", "local", "0.1", "0.5", True)]

    results = evaluate(window, Thresholds(), [*CHECKS, always_breaches])
    assert results[-1].check == "quality floor" and results[-1].breach
    assert not any(r.breach for r in results[:-1])
    assert Thresholds(max_cost_per_request_usd=Decimal("0")).max_cost_per_request_usd == 0


def test_registered_on_the_main_group() -> None:
    result = CliRunner().invoke(main, ["alerts", "--help"])
    assert result.exit_code == 0 and "--max-cost-per-request-usd" in result.output
    assert "Exit status: 0 all OK, 1 a threshold breached" in result.output

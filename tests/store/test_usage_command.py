"""`thrifty usage` through click's CliRunner, and `GET /v1/usage` in-process: the same report."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from support import database_url, query
from thrifty.api.app import build_app
from thrifty.cli import main
from thrifty.commands.usage import usage
from thrifty.config import Settings
from thrifty.store.db import connect
from thrifty.store.migrations import migrate
from thrifty.store.request_log import COLUMNS

DAY = 1_748_736_000.0  # 2025-06-01T00:00:00Z
H = 3600.0
WINDOW = ["--since", "2025-06-01", "--until", "2025-06-03"]

# route, tenant, status, prompt, completion, latency ms, cost, baseline (nano-USD), ts
ROWS = [
    ("cache", "acme", 200, 100, 20, 2.0, 0, 48_000, DAY + H),
    ("local", "acme", 200, 400, 150, 300.0, 1_500, 500_000, DAY + 3 * H),
    ("local", "beta", 200, 500, 200, 900.0, 2_500, 700_000, DAY + 4 * H),
    ("deepseek-chat", "beta", 502, 0, 0, 50.0, 0, None, DAY + 6 * H),
    ("deepseek-chat", "acme", 200, 2000, 1000, 1200.0, 1_640_000, 1_640_000, DAY + 30 * H),
]


def write_log(home: Path, rows: list[tuple[Any, ...]]) -> None:
    """Rows as the request log's writer inserts them (every column, in `COLUMNS` order)."""
    conn = connect(database_url(home))
    migrate(conn)
    sql = f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    values = []
    for n, (route, tenant, status, prompt, completion, ms, cost, baseline, ts) in enumerate(rows):
        row = {c: None for c in COLUMNS} | {"pii": "", "cache": "", "cached_tokens": 0}
        row |= {"id": f"req-{n}", "ts": ts, "tenant": tenant, "endpoint": "chat"}
        row |= {"model": "auto", "route": route, "reason": "test", "stream": 0, "status": status}
        row |= {"prompt_tokens": prompt, "completion_tokens": completion, "latency_ms": ms}
        row |= {"cost_nanos": cost, "baseline_nanos": baseline}
        values.append(tuple(row[c] for c in COLUMNS))
    with conn.transaction():
        conn.executemany(sql, values)
    conn.close()


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home with a request log, and a config naming it (monkeypatch restores the env)."""
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    config = tmp_path / "thrifty.yaml"
    config.write_text(yaml.safe_dump({"home": str(tmp_path), "costs": {"cny_per_usd": 7.2}}))
    monkeypatch.setenv("THRIFTY_CONFIG", str(config))
    write_log(tmp_path, ROWS)
    return tmp_path


def invoke(*args: str) -> Any:
    return CliRunner().invoke(usage, list(args), catch_exceptions=False)


def test_table_is_aligned_with_exact_money(home: Path) -> None:
    result = invoke(*WINDOW, "--by", "route")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (
        "thrifty usage: 2025-06-01 00:00 → 2025-06-03 00:00 UTC, by route, money in USD"
    )
    table = lines[2:8]
    header = "route requests errors prompt tok compl tok cost baseline saved cache p50 ms p95 ms"
    assert table[0].split() == header.split()
    assert len({len(line) for line in table}) == 1  # every line as wide as the header
    squashed = {line.split()[0]: line.split()[1:] for line in table[1:] if line[0] != "-"}
    assert squashed["local"] == [
        "2", "0", "900", "350", "0.000004000", "0.001200000", "0.001196000", "0.0%", "300.0",
        "900.0",
    ]  # fmt: skip
    assert squashed["total"][:7] == [
        "5", "1", "3,000", "1,370", "0.001644000", "0.002888000", "0.001244000",
    ]  # fmt: skip
    assert "Left out of money sums: 1 request without a baseline" in result.output


def test_currency_cny_converts_at_the_configured_rate(home: Path) -> None:
    result = invoke(*WINDOW, "--currency", "cny", "--format", "json")
    total = json.loads(result.stdout)["total"]
    assert (total["cost"], total["cost_nanos"]) == ("0.011836800", 1_644_000 * 72 // 10)
    assert "money in CNY at 7.2 CNY/USD" in invoke(*WINDOW, "--currency", "CNY").output


def test_json_has_money_as_strings_and_nanos(home: Path) -> None:
    result = invoke(*WINDOW, "--by", "day", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["since"] == "2025-06-01T00:00:00Z" and data["by"] == "day"
    assert [(r["key"], r["requests"]) for r in data["rows"]] == [
        ("2025-06-01", 4),
        ("2025-06-02", 1),
    ]
    assert data["rows"][1]["cost"] == "0.001640000" and data["rows"][1]["cost_nanos"] == 1_640_000
    assert data["total"]["saved_nanos"] == 48_000 + 498_500 + 697_500 + 0
    assert data["total"]["server_errors"] == 1 and data["total"]["baseline_unknown"] == 1


def test_csv_has_a_header_groups_and_a_total(home: Path) -> None:
    result = invoke(*WINDOW, "--by", "tenant", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["key"], r["requests"]) for r in rows] == [
        ("acme", "3"),
        ("beta", "2"),
        ("(total)", "5"),
    ]
    assert rows[-1]["cost"] == "0.001644000" and rows[-1]["cost_nanos"] == "1644000"
    assert int(rows[0]["cost_nanos"]) + int(rows[1]["cost_nanos"]) == 1_644_000


def test_relative_since_and_bad_windows(home: Path) -> None:
    # the rows are from 2025: relative windows ending now see none of them
    assert "No requests logged from" in invoke("--since", "30m").output
    for args, hint in [
        (["--since", "yesterday"], "--since"),
        (["--since", "7d", "--until", "8d"], "--until"),
        (["--until", "soon"], "--until"),
    ]:
        result = CliRunner().invoke(usage, args)
        assert result.exit_code == 2 and hint in result.output, result.output


def test_empty_log_is_a_friendly_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THRIFTY_HOME", str(tmp_path / "fresh"))
    monkeypatch.setenv("THRIFTY_CONFIG", str(tmp_path / "empty.yaml"))
    (tmp_path / "empty.yaml").write_text("{}\n")
    result = invoke("--plot", str(tmp_path / "x.png"))
    assert result.exit_code == 0
    assert "No requests logged from" in result.output and "--since 30d" in result.output
    assert "nothing to plot" in result.output and not (tmp_path / "x.png").exists()
    assert not (tmp_path / "fresh" / "thrifty.db").exists()  # a report creates nothing
    data = json.loads(invoke("--format", "json").stdout)
    assert data["rows"] == [] and data["total"]["requests"] == 0


def test_plot_writes_a_png(home: Path) -> None:
    png = home / "usage.png"
    result = invoke(*WINDOW, "--plot", str(png))
    assert result.exit_code == 0, result.output
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 30_000  # two panels, curves, bars and legends, not an empty canvas
    assert f"wrote {png}" in result.output


def test_plot_without_matplotlib_gives_a_hint(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    result = invoke(*WINDOW, "--plot", str(home / "x.png"))
    assert result.exit_code == 1 and "pip install 'thrifty[plot]'" in result.output


def test_registered_and_help_teaches() -> None:
    result = CliRunner().invoke(main, ["usage", "--help"])
    assert result.exit_code == 0
    assert "thrifty usage --since 24h --by route" in result.output
    assert "--plot" in result.output and "30m, 24h, 7d" in result.output


# -- GET /v1/usage ------------------------------------------------------------------------------


def get(home: Path, path: str) -> httpx.Response:
    app = build_app(Settings(home=home, local={"enabled": False}, costs={"cny_per_usd": 7.2}))

    async def go() -> httpx.Response:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await client.get(path)

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("query", "args"),
    [
        ("by=route", ["--by", "route"]),
        ("by=tenant&currency=CNY", ["--by", "tenant", "--currency", "CNY"]),
        ("", []),
    ],
)
def test_api_equals_the_cli_json(home: Path, query: str, args: list[str]) -> None:
    response = get(home, f"/v1/usage?since=2025-06-01&until=2025-06-03&{query}")
    assert response.status_code == 200, response.text
    cli = invoke(*WINDOW, *args, "--format", "json")
    assert response.json() == json.loads(cli.stdout)


def test_api_default_window_and_fresh_rows(home: Path) -> None:
    """The default is the last 7 days; rows the gateway just logged are in it (flushed first)."""
    app = build_app(Settings(home=home, local={"enabled": False}))

    async def go() -> tuple[httpx.Response, httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                await client.post("/v1/chat/completions", json={"model": "gpt-9", "messages": []})
                return await client.get("/v1/usage"), await client.get("/v1/usage?since=1h")

    week, hour = asyncio.run(go())
    assert week.json()["total"]["requests"] == hour.json()["total"]["requests"] == 1
    assert week.json()["total"]["errors"] == 1 and week.json()["until"] is None


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("by=color", "by"),
        ("since=yesterday", "since"),
        ("since=1d&until=2d", "until"),
        ("currency=EUR", "currency"),
        ("group_by=route", "group_by"),
    ],
)
def test_api_bad_params_are_400(home: Path, query: str, param: str) -> None:
    response = get(home, f"/v1/usage?{query}")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert error["message"]


def test_api_reports_are_not_logged_as_requests(home: Path) -> None:
    response = get(home, "/v1/usage?by=route")
    assert response.status_code == 200
    assert query(database_url(home), "SELECT COUNT(*) AS n FROM requests") == [{"n": len(ROWS)}]

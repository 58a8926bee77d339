"""`thrifty prices` and `thrifty prices check`, on the shipped tables and a config's own rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from thrifty.cli import main


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("THRIFTY_CONFIG", "DEEPSEEK_API_KEY", "DEEPSEEK_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def run(*args: str) -> Any:
    return CliRunner().invoke(main, ["prices", *args])


def listing(*args: str) -> dict[str, dict[str, Any]]:
    result = run(*args, "--format", "json")
    assert result.exit_code == 0, result.output
    return {row["model"]: row for row in json.loads(result.output)["models"]}


def config(tmp_path: Path, data: dict[str, Any]) -> str:
    path = tmp_path / "thrifty.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_v4_launch_prices_with_source_and_check() -> None:
    rows = listing("--at", "2026-04-25")
    flash = rows["deepseek-v4-flash"]
    assert flash["prices"] == {
        "currency": "USD",
        "basis": "billed",
        "input_cache_hit": "0.028",
        "input_cache_miss": "0.14",
        "output": "0.28",
    }
    assert flash["effective_to"] == "2026-04-26T12:15:00+00:00"
    assert flash["source"] and flash["checked"] == "2026-12-02"
    assert rows["deepseek-v4-pro"]["prices"]["input_cache_miss"] == "0.435"


def test_the_pro_discount_end_is_a_period_boundary() -> None:
    before = listing("--at", "2026-05-31T15:58:59Z", "-m", "deepseek-v4-pro")["deepseek-v4-pro"]
    after = listing("--at", "2026-05-31 15:59", "-m", "deepseek-v4-pro")["deepseek-v4-pro"]
    assert before["effective_to"] == after["effective_from"] == "2026-05-31T15:59:00+00:00"
    assert after["effective_to"] is None


def test_before_v4_there_was_no_v4_price() -> None:
    row = listing("--at", "2026-04-23", "-m", "deepseek-v4-flash")["deepseek-v4-flash"]
    assert row == {
        "model": "deepseek-v4-flash",
        "in_force": False,
        "note": "no period covers this time",
    }


def test_yuan_as_published_or_converted() -> None:
    rows = listing("--at", "2026-04-25", "--currency", "cny")
    assert rows["deepseek-v4-flash"]["prices"]["basis"] == "published"
    assert rows["deepseek-v4-flash"]["prices"]["output"] == "2"
    # V3.2 has no published yuan row here: converted at the default 7.2 CNY/USD
    v32 = listing("--at", "2026-01-01", "--currency", "CNY", "-m", "deepseek-chat")["deepseek-chat"]
    assert v32["prices"]["basis"].startswith("converted at 7.2")
    assert v32["prices"]["output"] == "3.024"  # 0.42 × 7.2


def test_the_table_shows_the_window_in_force() -> None:
    result = run("--at", "2025-03-01 17:00", "-m", "deepseek-chat")
    assert result.exit_code == 0, result.output
    assert "off-peak 16:30-00:30 UTC" in result.output and "<- now" in result.output


def test_a_bad_time_is_a_usage_error() -> None:
    result = run("--at", "yesterday-ish")
    assert result.exit_code == 2 and "not a date or time" in result.output


def test_help_has_an_example() -> None:
    for args in (["--help"], ["check", "--help"]):
        result = run(*args)
        assert result.exit_code == 0 and "Examples:" in result.output


def _upstream(models: dict[str, Any], base_url: str = "http://127.0.0.1:9/v1") -> dict[str, Any]:
    return {"name": "cloud", "base_url": base_url, "models": models}


def test_check_passes_on_current_prices(tmp_path: Path) -> None:
    path = config(tmp_path, {"upstreams": [_upstream({"fast": "deepseek-v4-flash"})]})
    result = run("check", "-c", path, "--at", "2026-12-01")
    assert result.exit_code == 0, result.output
    assert "ok    deepseek-v4-flash" in result.output


def test_check_warns_about_stale_missing_and_unpriced(tmp_path: Path) -> None:
    row = {"effective_from": "2026-01-01", "input_cache_hit": 1, "input_cache_miss": 2, "output": 3}
    ended = {**row, "effective_to": "2026-06-01"}
    data = {
        "upstreams": [
            _upstream({"old": "my-old-model", "gone": "my-ended-model", "free": "my-own-vllm"})
        ],
        "prices": {"my-old-model": [row], "my-ended-model": [ended]},
    }
    result = run("check", "-c", config(tmp_path, data), "--at", "2026-12-01", "--format", "json")
    assert result.exit_code == 1, result.output
    found = {f["model"]: f for f in json.loads(result.output)["findings"]}
    assert "334 days ago (over 180)" in found["my-old-model"]["message"]
    assert "no price period covers now" in found["my-ended-model"]["message"]
    assert "not priced" in found["my-own-vllm"]["message"]
    assert found["deepseek-v4-flash"]["ok"]  # the cost baseline
    # the same config checked in spring: every price was fresh then
    early = run("check", "-c", config(tmp_path, data), "--at", "2026-03-01", "--max-age-days", "90")
    assert "my-old-model: priced" in early.output


def test_check_warns_about_retired_deepseek_names(tmp_path: Path) -> None:
    up = _upstream({"deepseek-chat": "deepseek-chat"}, "https://api.deepseek.com")
    path = config(tmp_path, {"upstreams": [up]})
    assert run("check", "-c", path, "--at", "2026-07-01").exit_code == 0
    late = run("check", "-c", path, "--at", "2026-08-01")
    assert late.exit_code == 1
    assert "DeepSeek retired" in late.output and "thinking: {type: disabled}" in late.output

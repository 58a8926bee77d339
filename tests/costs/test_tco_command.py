"""`thrifty tco` through click's CliRunner: the printed lines, JSON, the PNG and clean errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from thrifty.commands.tco import tco
from thrifty.costs.plot import _crossing
from thrifty.costs.pricebook import PriceBook
from thrifty.costs.tco import project
from thrifty.costs.tco_config import TcoConfig

EXAMPLE = Path(__file__).parents[2] / "examples" / "tco.yaml"
# The same machine and model as test_tco_projection.py, without growth: local 22.40 a day,
# cloud 1,000 × 0.0035 = 3.50 a day, break-even 22.40 / 0.0035 = 6,400 requests a day.
SMALL: dict[str, Any] = {
    "years": 2,
    "currency": "USD",
    "local": {
        "hardware_price": 7300,
        "depreciation_years": 2,
        "power_watts": 500,
        "electricity_per_kwh": 0.2,
        "ops_per_year": 3650,
    },
    "cloud": {"model": "test-model", "price_date": "2025-06-01"},
    "traffic": {
        "requests_per_day": 1000,
        "input_tokens": 1000,
        "output_tokens": 500,
        "cache_hit_share": 0.5,
        "hybrid_local_share": 0.5,
    },
    "prices": {
        "test-model": [
            {
                "effective_from": "2025-01-01",
                "input_cache_hit": 1,
                "input_cache_miss": 2,
                "output": 4,
            }
        ]
    },
}


def write_config(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "tco.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def invoke(*args: str) -> Any:
    return CliRunner().invoke(tco, list(args), catch_exceptions=False)


def test_table_prints_the_day_lines_and_break_even(tmp_path: Path) -> None:
    result = invoke("--config", str(write_config(tmp_path, SMALL)))
    assert result.exit_code == 0, result.output
    squashed = [" ".join(line.split()) for line in result.output.splitlines()]
    # columns: local, cloud, hybrid
    assert "depreciation 10.00 0.00 10.00" in squashed
    assert "power 2.40 0.00 2.40" in squashed
    assert "ops 10.00 0.00 10.00" in squashed
    assert "cloud tokens 0.00 3.50 1.75" in squashed
    assert "total 22.40 3.50 24.15" in squashed
    assert "2 years 16,352.00 2,555.00 17,629.50" in squashed  # × 730 days
    assert "Break-even traffic: 6,400 requests/day" in result.output
    assert "Recommendation: " in result.output


def test_json_format(tmp_path: Path) -> None:
    result = invoke("--config", str(write_config(tmp_path, SMALL)), "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["break_even_requests_per_day"] == 6400
    assert data["per_day"][0]["local"] == {
        "machines": 1,
        "depreciation": 10.0,
        "power": 2.4,
        "ops": 10.0,
        "cloud_tokens": 0.0,
        "total": 22.4,
    }
    assert data["totals"] == {"local": 16352.0, "cloud": 2555.0, "hybrid": 17629.5}
    assert data["score"]["verdict"] in {"go", "pilot", "stay"}


def test_currency_option_converts(tmp_path: Path) -> None:
    config = write_config(tmp_path, {**SMALL, "cny_per_usd": 7})
    result = invoke("--config", str(config), "--currency", "cny", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["per_day"][0]["cloud"]["total"] == 24.5  # 3.50 × 7


def test_plot_writes_a_png(tmp_path: Path) -> None:
    png = tmp_path / "tco.png"
    result = invoke("--config", str(write_config(tmp_path, SMALL)), "--plot", str(png))
    assert result.exit_code == 0, result.output
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000  # three curves, labels and a legend, not an empty canvas
    assert f"wrote {png}" in result.output


def test_plot_without_matplotlib_gives_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    config = str(write_config(tmp_path, SMALL))
    result = invoke("--config", config, "--plot", str(tmp_path / "x.png"))
    assert result.exit_code == 1
    assert "pip install 'thrifty[plot]'" in result.output
    assert "Traceback" not in result.output


def test_weights_not_summing_to_one_is_a_clean_error(tmp_path: Path) -> None:
    bad = {**SMALL, "score": {"weights": {"feasibility": 0.5, "economics": 0.4, "urgency": 0.3}}}
    result = invoke("--config", str(write_config(tmp_path, bad)))
    assert result.exit_code == 1
    assert "score.weights: weights must sum to 1, got 1.2" in result.output
    assert "Traceback" not in result.output


def test_unknown_field_and_bad_yaml_are_clean_errors(tmp_path: Path) -> None:
    result = invoke("--config", str(write_config(tmp_path, {**SMALL, "yeras": 3})))
    assert result.exit_code == 1 and "yeras: Extra inputs are not permitted" in result.output
    broken = tmp_path / "broken.yaml"
    broken.write_text("local: [unclosed", encoding="utf-8")
    result = invoke("--config", str(broken))
    assert result.exit_code == 1 and "cannot read" in result.output


def test_example_config_runs() -> None:
    result = invoke("--config", str(EXAMPLE))
    assert result.exit_code == 0, result.output
    assert "Per day, year 1" in result.output
    assert "228.31" in result.output  # ¥250,000 / 3 / 365 depreciation a day
    assert "4.32" in result.output  # 0.3 kW × 24 h × ¥0.6 power a day
    assert "821.92" in result.output  # ¥300,000 / 365 ops a day


def test_help_teaches() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    assert "thrifty tco --config examples/tco.yaml --plot tco.png" in result.output


def test_plot_marks_the_break_even_month(tmp_path: Path) -> None:
    busy = {**SMALL, "traffic": {**SMALL["traffic"], "requests_per_day": 10_000}}
    config = TcoConfig.model_validate(busy)
    projection = project(config, PriceBook.load(config.prices))
    # local spends 7,300 up front then 12.40 a day, the cloud 35.00 a day; they meet after
    # 7,300 / (35.00 − 12.40) = 323.01 days = 10.62 months of 365/12 days
    assert projection.payback_month == 11
    month, spent = _crossing(projection, 11)
    assert month == pytest.approx(10.6195, abs=1e-4)
    assert spent == pytest.approx(11_305.31, abs=0.01)  # 35.00 × 323.009 days
    png = tmp_path / "payback.png"
    result = invoke("--config", str(write_config(tmp_path, busy)), "--plot", str(png))
    assert result.exit_code == 0, result.output
    assert "Payback: local's cumulative spend meets cloud's in month 11" in result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

"""deploy/prometheus/rules.yaml: well formed, on the gateway's real metric names, and firing.

The structural checks always run. Where `promtool` is installed (Debian's `prometheus` package),
it checks the file and runs each alert against synthetic series, asserting exactly which alerts
fire: the thresholds are exercised, not just parsed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

RULES = Path(__file__).parents[2] / "deploy" / "prometheus" / "rules.yaml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)"
)

COUNTERS = {
    "thrifty_requests_total",
    "thrifty_tokens_total",
    "thrifty_cost_usd_total",
    "thrifty_baseline_cost_usd_total",
    "thrifty_store_dropped_rows_total",
}
GAUGES = {
    "thrifty_local_queue_depth",
    "thrifty_upstream_breaker_state",
    "thrifty_store_buffered_rows",
}
HISTOGRAMS = {"thrifty_request_duration_seconds", "thrifty_ttft_seconds"}
EXPORTED = (
    COUNTERS
    | GAUGES
    | {f"{name}_{suffix}" for name in HISTOGRAMS for suffix in ("sum", "count", "bucket")}
)
REQUIRED_ALERTS = {
    "ThriftyHighLatency",
    "ThriftyCostPerRequestAboveTarget",
    "ThriftyHighErrorRate",
    "ThriftyUpstreamBreakerOpen",
    "ThriftyRequestLogDropping",
    "ThriftyStoreUnreachable",
    "ThriftyLocalQueueSaturated",
}


def load_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and set(data) == {"groups"}
    rules = []
    for group in data["groups"]:
        assert isinstance(group["name"], str) and group["rules"], group
        rules.extend(group["rules"])
    return rules


def test_rules_are_well_formed() -> None:
    rules = load_rules()
    recorded = {rule["record"] for rule in rules if "record" in rule}
    alerts = [rule for rule in rules if "alert" in rule]
    assert {rule["alert"] for rule in alerts} >= REQUIRED_ALERTS
    assert len({rule["alert"] for rule in alerts}) == len(alerts), "duplicate alert names"
    for rule in rules:
        assert ("record" in rule) != ("alert" in rule), rule
        assert isinstance(rule["expr"], str) and rule["expr"].strip(), rule
        # every thrifty_* series an expression reads is one the gateway exports
        used = set(re.findall(r"(?<![:\w])thrifty_[a-z0-9_]+(?![:\w])", rule["expr"]))
        assert used <= EXPORTED, f"unknown metrics {used - EXPORTED} in {rule}"
        names = set(re.findall(r"\b[a-z_]+:[a-z0-9_:]+", rule["expr"]))
        assert names <= recorded, f"unknown recording rules {names - recorded}"
    for rule in alerts:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s")), rule
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule
        assert {"summary", "description"} <= set(rule["annotations"]), rule


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


HEALTHY = [  # 60 requests a minute on two routes, fast, cheap, nothing broken
    ('thrifty_requests_total{route="local",model="auto",status="200"}', "0+60x120"),
    (
        'thrifty_requests_total{route="deepseek-chat",model="deepseek-chat",status="200"}',
        "0+60x120",
    ),
    ('thrifty_request_duration_seconds_sum{route="local"}', "0+6x120"),  # 0.1 s each
    ('thrifty_request_duration_seconds_count{route="local"}', "0+60x120"),
    ('thrifty_cost_usd_total{route="deepseek-chat",model="deepseek-chat"}', "0+0.06x120"),
    ('thrifty_baseline_cost_usd_total{route="deepseek-chat",model="deepseek-chat"}', "0+0.06x120"),
    ('thrifty_baseline_cost_usd_total{route="local",model="auto"}', "0+0.06x120"),
    ('thrifty_upstream_breaker_state{upstream="deepseek"}', "0x120"),
    ("thrifty_local_queue_depth", "2x120"),
    ('thrifty_store_dropped_rows_total{writer="request-log"}', "0x120"),
    ('thrifty_store_buffered_rows{writer="request-log"}', "0 3 0 0 12 0x115"),  # written soon
]

# name → (series added to or replacing HEALTHY's, minutes to evaluate at, alerts expected)
SCENARIOS: dict[str, tuple[list[tuple[str, str]], int, list[str]]] = {
    "healthy": ([], 90, []),
    "slow": (
        [('thrifty_request_duration_seconds_sum{route="local"}', "0+45x120")],  # 0.75 s each
        15,
        ['alertname="ThriftyHighLatency",route="local",severity="warning"'],
    ),
    "slow_first_token": (
        [
            ('thrifty_ttft_seconds_bucket{route="local",le="1"}', "0+50x120"),
            ('thrifty_ttft_seconds_bucket{route="local",le="5"}', "0+60x120"),
            ('thrifty_ttft_seconds_bucket{route="local",le="+Inf"}', "0+60x120"),
        ],
        15,
        ['alertname="ThriftySlowFirstToken",route="local",severity="warning"'],
    ),
    "errors": (  # 6 of 60 requests a minute answer 503: 10%
        [('thrifty_requests_total{route="local",model="auto",status="503"}', "0+6x120")],
        15,
        ['alertname="ThriftyHighErrorRate",route="local",severity="critical"'],
    ),
    "few_errors": (  # 1 of 60: under 5%
        [('thrifty_requests_total{route="local",model="auto",status="500"}', "0+1x120")],
        15,
        [],
    ),
    "expensive": (  # 0.3 USD over 60 requests a minute: 0.005 a request, target 0.002
        [('thrifty_cost_usd_total{route="deepseek-chat",model="deepseek-chat"}', "0+0.3x120")],
        45,
        [
            'alertname="ThriftyCostPerRequestAboveTarget",model="deepseek-chat",'
            'route="deepseek-chat",severity="warning"'
        ],
    ),
    "costs_above_baseline": (  # spends 0.3 a minute against a 0.12 baseline, for over an hour
        [
            ('thrifty_cost_usd_total{route="local",model="auto"}', "0+0.1x120"),
            ('thrifty_cost_usd_total{route="deepseek-chat",model="deepseek-chat"}', "0+0.2x120"),
        ],
        100,
        [
            'alertname="ThriftyCostAboveBaseline",severity="warning"',
            'alertname="ThriftyCostPerRequestAboveTarget",model="deepseek-chat",'
            'route="deepseek-chat",severity="warning"',
        ],
    ),
    "breaker_open": (
        [
            ('thrifty_upstream_breaker_state{upstream="deepseek"}', "0 0 2x118"),
            ('thrifty_upstream_breaker_state{upstream="vllm"}', "1x120"),  # half-open: quiet
        ],
        5,
        ['alertname="ThriftyUpstreamBreakerOpen",severity="critical",upstream="deepseek"'],
    ),
    "log_dropping": (
        [('thrifty_store_dropped_rows_total{writer="request-log"}', "0 0 0 3 7 7 7 7")],
        5,
        ['alertname="ThriftyRequestLogDropping",severity="critical",writer="request-log"'],
    ),
    "store_unreachable": (  # rows have waited 7 minutes: the database is away
        [('thrifty_store_buffered_rows{writer="audit-log"}', "0 0 5 40 90 150 200 260 330 400")],
        9,
        ['alertname="ThriftyStoreUnreachable",severity="warning",writer="audit-log"'],
    ),
    "queue_saturated": (
        [("thrifty_local_queue_depth", "2 2 16x118")],
        8,
        ['alertname="ThriftyLocalQueueSaturated",severity="warning"'],
    ),
    "queue_spike": (  # one minute full is a burst, not saturation
        [("thrifty_local_queue_depth", "2 2 40 2x117")],
        6,
        [],
    ),
}


@needs_promtool
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_alerts_fire_exactly_when_they_should(scenario: str, tmp_path: Path) -> None:
    assert PROMTOOL is not None
    changes, minutes, expected = SCENARIOS[scenario]
    series = dict(HEALTHY) | dict(changes)
    test = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "30s",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": name, "values": v} for name, v in series.items()],
                "promql_expr_test": [
                    {
                        "expr": 'ALERTS{alertstate="firing"}',
                        "eval_time": f"{minutes}m",
                        "exp_samples": [
                            {"labels": f'ALERTS{{alertstate="firing",{labels}}}', "value": 1}
                            for labels in expected
                        ],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "test.yaml"
    path.write_text(yaml.safe_dump(test), encoding="utf-8")
    done = subprocess.run(
        [PROMTOOL, "test", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr

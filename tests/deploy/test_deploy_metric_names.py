"""Every `thrifty_*` name the deployment reads is one a running gateway exports.

The Grafana dashboard, the Prometheus rules, and the Prometheus adapter rule behind the HPA all
name metrics in PromQL. A renamed metric would leave a panel empty or an alert silent, with no
error anywhere; this test builds the app in-process (no local model; the fake upstream as the
cloud), sends requests that make every labelled series appear (a cache hit, a stream, a 404, an
upstream failure with retries), scrapes `/metrics`, and checks each referenced name against the
series in the exposition.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from fakes.upstream import FakeUpstream, start_upstream
from thrifty.api.app import build_app
from thrifty.config import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CHAT = "/v1/chat/completions"
# a metric name, not a recording-rule name (`route:thrifty_...:avg5m`) or a label value
_NAME = re.compile(r"(?<![\w:])thrifty_[a-z0-9_]+(?![\w:])")
# what the adapter serves to the HPA: derived from thrifty_requests_total, never exported
ADAPTER_METRIC = "thrifty_requests_per_second"


def names_in(expr: str) -> set[str]:
    return set(_NAME.findall(expr))


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "thrifty.json").read_text(encoding="utf-8"))
    exprs = []
    for panel in dashboard["panels"]:
        exprs.extend(target["expr"] for target in panel.get("targets", []))
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            exprs.append(query["query"])
    return exprs


def rules_exprs() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yaml").read_text(encoding="utf-8"))
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def adapter_rules() -> list[dict[str, Any]]:
    configmap = yaml.safe_load((DEPLOY / "k8s" / "prometheus-adapter.yaml").read_text())
    rules: list[dict[str, Any]] = yaml.safe_load(configmap["data"]["config.yaml"])["rules"]
    return rules


def hpa_metric_names() -> set[str]:
    hpa = yaml.safe_load((DEPLOY / "k8s" / "hpa.yaml").read_text(encoding="utf-8"))
    return {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"}


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with start_upstream() as up:
        yield up


@pytest.fixture(scope="module")
def exposition(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, set[str]]:
    """Sample names by family, scraped after traffic that touches every series."""
    mp = pytest.MonkeyPatch()
    mp.delenv("DEEPSEEK_API_KEY", raising=False)
    try:
        settings = Settings(
            home=tmp_path_factory.mktemp("metrics-home"),
            local={"enabled": False},
            upstreams=[
                {
                    "name": "fake",
                    "base_url": upstream.url,
                    "models": {"deepseek-chat": "fake-chat"},
                    "max_retries": 1,
                    "timeout_s": 5,
                }
            ],
        )
        app = build_app(settings)
        text = asyncio.run(_traffic_then_scrape(app, upstream))
    finally:
        mp.undo()
    families: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        families.setdefault(family.name, set()).update(s.name for s in family.samples)
    return families


async def _traffic_then_scrape(app: Any, upstream: FakeUpstream) -> str:
    ask = {"model": "deepseek-chat", "messages": [{"role": "user", "content": "hi"}]}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for _ in range(2):  # the second is a cache hit
                response = await client.post(CHAT, json={**ask, "temperature": 0})
                assert response.status_code == 200, response.text
            assert response.headers["x-thrifty-route"] == "cache"
            streamed = await client.post(CHAT, json={**ask, "stream": True})
            assert streamed.status_code == 200
            missing = await client.post(CHAT, json={**ask, "model": "no-such-model"})
            assert missing.status_code == 404
            upstream.set_mode("http500", times=2)  # the call and its one retry fail
            failed = await client.post(
                CHAT, json={**ask, "messages": [{"role": "user", "content": "x"}]}
            )
            assert failed.status_code >= 500, failed.text
            scrape = await client.get("/metrics")
            assert scrape.status_code == 200
            return scrape.text


def test_the_traffic_made_labelled_series(exposition: dict[str, set[str]]) -> None:
    samples = set().union(*exposition.values())
    for name in (
        "thrifty_requests_total",
        "thrifty_cache_hits_total",
        "thrifty_ttft_seconds_bucket",
    ):
        assert name in samples


def test_dashboard_names_are_exported(exposition: dict[str, set[str]]) -> None:
    referenced = set().union(*(names_in(e) for e in dashboard_exprs()))
    assert len(referenced) >= 10, referenced
    samples = set().union(*exposition.values())
    assert sorted(referenced - samples) == []


def test_rules_names_are_exported(exposition: dict[str, set[str]]) -> None:
    referenced = set().union(*(names_in(e) for e in rules_exprs()))
    assert referenced
    samples = set().union(*exposition.values())
    assert sorted(referenced - samples) == []


def test_hpa_metric_comes_from_an_exported_counter(exposition: dict[str, set[str]]) -> None:
    samples = set().union(*exposition.values())
    assert hpa_metric_names() == {ADAPTER_METRIC}
    served = {}
    for rule in adapter_rules():
        (series,) = names_in(rule["seriesQuery"])
        assert series in samples
        assert re.fullmatch(rule["name"]["matches"].strip("^$"), series)
        served[rule["name"]["as"]] = series
        assert "rate(<<.Series>>" in rule["metricsQuery"]
        assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}
    assert served == {ADAPTER_METRIC: "thrifty_requests_total"}


def test_readme_adapter_snippet_matches_the_configmap() -> None:
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", readme, re.S)
    snippets = [yaml.safe_load(_dedent(b)) for b in blocks if "seriesQuery" in b]
    assert snippets and snippets[0]["rules"] == adapter_rules()


def _dedent(block: str) -> str:
    import textwrap

    return textwrap.dedent(block)


def test_names_in_skips_recording_rules_and_finds_suffixed_series() -> None:
    expr = (
        "route:thrifty_requests_5xx:ratio5m > 0.05 and on() "
        'histogram_quantile(0.9, sum by (le) (rate(thrifty_ttft_seconds_bucket{route="x"}[5m])))'
    )
    assert names_in(expr) == {"thrifty_ttft_seconds_bucket"}

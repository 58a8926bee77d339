"""Traces end to end: a real `thrifty serve` exports to a real OTLP/HTTP receiver.

The local engine and the cloud are fake OpenAI-compatible servers (routing without models); the
receiver decodes ExportTraceServiceRequest with opentelemetry-proto, as a collector would.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fakes.otlp import OtlpReceiver
from fakes.upstream import FakeUpstream
from support import ThriftyServer

SERVER, CLIENT = 2, 3
ERROR = 2  # Status.STATUS_CODE_ERROR


@pytest.fixture(scope="module")
def traced(
    receiver: OtlpReceiver, fake_local: FakeUpstream, fake_cloud: FakeUpstream
) -> Iterator[ThriftyServer]:
    config = {
        "local": {"url": fake_local.url, "system_prompt": None},
        "upstreams": [
            {
                "name": "deepseek",
                "base_url": fake_cloud.url,
                "models": {"deepseek-chat": "cloud-fake"},
                "max_retries": 0,
            }
        ],
        "router": {"rules": [{"name": "cloud-first", "target": ["deepseek-chat", "local"]}]},
        "telemetry": {"export_interval_s": 0.05, "service_name": "thrifty-test"},
    }
    # the endpoint from the environment, as a deployment would set it
    env = {"THRIFTY_TELEMETRY__OTLP_ENDPOINT": receiver.url + "/"}
    with ThriftyServer(config=config, env=env) as server:
        yield server


def _chat(server: ThriftyServer, model: str, text: str, **extra: Any) -> httpx.Response:
    headers = extra.pop("headers", {})
    body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    response = httpx.post(
        server.base_url + "/chat/completions", json=body, headers=headers, timeout=30
    )
    assert response.status_code == 200, response.text
    return response


def _spans(receiver: OtlpReceiver, response: httpx.Response) -> tuple[dict[str, Any], list[Any]]:
    trace_id = response.headers["x-thrifty-trace-id"]
    assert len(trace_id) == 32 and int(trace_id, 16)
    spans = receiver.trace(trace_id)
    roots = [s for s in spans if s["kind"] == SERVER]
    assert len(roots) == 1, (spans, receiver.requests)
    root = roots[0]
    children = [s for s in spans if s is not root]
    for child in children:  # every other span hangs off the request's span, inside its time
        assert child["parent"] == root["span_id"]
        assert root["start"] <= child["start"] <= child["end"] <= root["end"]
    return root, children


def _stages(children: list[Any]) -> dict[str, dict[str, Any]]:
    return {s["attributes"]["thrifty.stage"]: s for s in children if s["name"].startswith("stage")}


def _attempts(children: list[Any]) -> list[dict[str, Any]]:
    return sorted((s for s in children if s["kind"] == CLIENT), key=lambda s: s["start"])


def test_local_request(traced: ThriftyServer, receiver: OtlpReceiver) -> None:
    response = _chat(traced, "local", "echo:hello there", max_tokens=16, temperature=0.5)
    root, children = _spans(receiver, response)
    attrs = root["attributes"]
    assert root["name"] == "chat local"
    assert root["parent"] == ""  # no traceparent came in: a new trace
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "local"
    assert attrs["gen_ai.system"] == "llama.cpp"
    assert attrs["gen_ai.request.max_tokens"] == 16
    assert attrs["gen_ai.request.temperature"] == 0.5
    usage = response.json()["usage"]
    assert attrs["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert attrs["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
    assert attrs["thrifty.route"] == "local" == response.headers["x-thrifty-route"]
    assert attrs["thrifty.reason"] == response.headers["x-thrifty-reason"]
    assert attrs["thrifty.request_id"] == response.headers["x-thrifty-request-id"]
    assert attrs["thrifty.cost_usd"] == pytest.approx(
        float(response.headers["x-thrifty-cost-usd"]), abs=1e-9
    )
    assert attrs["thrifty.saving_usd"] == pytest.approx(
        attrs["thrifty.baseline_usd"] - attrs["thrifty.cost_usd"]
    )
    stages = _stages(children)
    for name in ("Admit", "PIIScan", "ModelRoute", "ResponseCache", "Limiter"):
        assert name in stages, sorted(stages)
    (attempt,) = _attempts(children)
    assert attempt["name"] == "attempt local"
    assert attempt["attributes"]["http.response.status_code"] == 200
    assert attempt["attributes"]["gen_ai.system"] == "llama.cpp"
    assert {s["name"] for s in children} >= {"intake", "meter"}
    assert receiver.resources[-1]["service.name"] == "thrifty-test"
    row = traced.row(response.headers["x-thrifty-request-id"])
    assert row["trace_id"] == response.headers["x-thrifty-trace-id"]


def test_cloud_then_cached_continuing_traceparent(
    traced: ThriftyServer, receiver: OtlpReceiver
) -> None:
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    text = "echo:一个被缓存的问题"  # Chinese text is first-class here too
    first = _chat(
        traced,
        "deepseek-chat",
        text,
        temperature=0,
        headers={"traceparent": f"00-{trace_id}-{parent}-01"},
    )
    assert first.headers["x-thrifty-trace-id"] == trace_id
    root, children = _spans(receiver, first)
    assert root["parent"] == parent  # the caller's span is the request span's parent
    attrs = root["attributes"]
    assert attrs["thrifty.route"] == "deepseek-chat" == first.headers["x-thrifty-route"]
    assert attrs["gen_ai.system"] == "deepseek"
    assert attrs["gen_ai.response.model"] == "cloud-fake"
    assert attrs["thrifty.cache"] == "miss"
    (attempt,) = _attempts(children)
    assert attempt["attributes"]["thrifty.upstream"] == "deepseek"
    assert attempt["attributes"]["http.response.status_code"] == 200

    second = _chat(traced, "deepseek-chat", text, temperature=0)
    assert second.headers["x-thrifty-trace-id"] != trace_id  # a new request, a new trace
    root, children = _spans(receiver, second)
    attrs = root["attributes"]
    assert attrs["thrifty.route"] == "cache" == second.headers["x-thrifty-route"]
    assert attrs["thrifty.cache"].startswith("hit")
    assert attrs["thrifty.cost_usd"] == 0
    assert attrs["thrifty.saving_usd"] > 0
    assert _attempts(children) == []  # nothing was called
    cache = _stages(children)["ResponseCache"]["attributes"]
    assert cache["thrifty.answered"] is True
    assert "Limiter" not in _stages(children)  # the cache answered: later stages never ran


def test_fallen_back_request(
    traced: ThriftyServer, receiver: OtlpReceiver, fake_cloud: FakeUpstream
) -> None:
    fake_cloud.set_mode("http500", times=1)
    response = _chat(traced, "auto", "echo:fall back please")
    root, children = _spans(receiver, response)
    assert root["attributes"]["thrifty.route"] == "local"
    assert root["attributes"]["thrifty.reason"].startswith("rule:cloud-first")
    failed, answered = _attempts(children)
    assert failed["name"] == "attempt deepseek-chat"
    assert failed["status"] == ERROR
    assert failed["attributes"]["http.response.status_code"] >= 500
    assert failed["attributes"]["error.type"]
    assert answered["name"] == "attempt local"
    assert answered["attributes"]["thrifty.fallback"] is True
    assert failed["end"] <= answered["start"]


def test_refused_request_is_traced(traced: ThriftyServer, receiver: OtlpReceiver) -> None:
    response = httpx.post(traced.base_url + "/chat/completions", json={"model": 3}, timeout=30)
    assert response.status_code == 400
    root, _ = _spans(receiver, response)
    assert root["attributes"]["http.response.status_code"] == 400
    assert response.json()["error"]["code"] is None  # nothing more precise than the status
    assert root["attributes"]["error.type"] == "400"

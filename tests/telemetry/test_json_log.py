"""`telemetry.log_format: json`: one JSON line per request, and tracing off costs nothing."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson

from fakes.upstream import FakeUpstream
from support import ThriftyServer
from thrifty.backends import build_registry
from thrifty.config import Settings
from thrifty.gateway.build import build_gateway
from thrifty.gateway.metrics import Metrics
from thrifty.gateway.pipeline import Gateway


def _lines(server: ThriftyServer, request_id: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        found = []
        for line in server.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                found.append(orjson.loads(line))  # every such line is one whole JSON object
        if any(f["request_id"] == request_id for f in found) or time.monotonic() > deadline:
            return [f for f in found if f["request_id"] == request_id]
        time.sleep(0.05)


def test_one_json_line_per_request(
    tmp_path: Any, fake_local: FakeUpstream, fake_cloud: FakeUpstream
) -> None:
    config = {
        "local": {"url": fake_local.url, "system_prompt": None},
        "upstreams": [
            {"name": "deepseek", "base_url": fake_cloud.url, "models": {"deepseek-chat": "x"}}
        ],
        "telemetry": {"log_format": "json"},
    }
    secret = "my card 4111 1111 1111 1111 秘密的问题"
    with ThriftyServer(config=config, home=tmp_path) as server:
        for model in ("local", "deepseek-chat"):
            response = httpx.post(
                server.base_url + "/chat/completions",
                json={"model": model, "messages": [{"role": "user", "content": secret}]},
                headers={"authorization": "Bearer sk-not-to-be-logged"},
                timeout=30,
            )
            assert response.status_code == 200, response.text
            # tracing is off: no trace id anywhere
            assert "x-thrifty-trace-id" not in response.headers
            request_id = response.headers["x-thrifty-request-id"]
            (line,) = _lines(server, request_id)
            usage = response.json()["usage"]
            assert line["route"] == response.headers["x-thrifty-route"]
            assert line["reason"] == response.headers["x-thrifty-reason"]
            assert line["status"] == 200
            assert line["trace_id"] is None
            assert line["prompt_tokens"] == usage["prompt_tokens"]
            assert line["completion_tokens"] == usage["completion_tokens"]
            assert line["cost_usd"] == float(response.headers["x-thrifty-cost-usd"])
            assert line["latency_ms"] > 0
            assert line["model"] == model
            assert server.row(request_id)["trace_id"] is None
        refused = httpx.post(server.base_url + "/chat/completions", json={"model": 1}, timeout=30)
        assert refused.status_code == 400
        (line,) = _lines(server, refused.headers["x-thrifty-request-id"])
        assert line["status"] == 400
        log = server.log_path.read_text(errors="replace")
    assert "4111" not in log and "秘密" not in log and "sk-not-to-be-logged" not in log


def test_tracing_off_leaves_the_gateway_untouched(tmp_path: Any) -> None:
    """No tracer, and no method of the gateway replaced: the request path is the untraced one."""
    settings = Settings(home=tmp_path, local={"enabled": False})
    parts = build_gateway(settings, build_registry(settings), Metrics())
    gateway = parts.gateway
    assert gateway.tracer is None and parts.exporter is None
    assert {"handle", "finish"}.isdisjoint(vars(gateway))
    assert all(call == stage.on_request for call, stage in _calls(gateway))


def _calls(gateway: Gateway) -> list[Any]:
    return [(call, gateway.stages[i]) for i, call in gateway._requests]

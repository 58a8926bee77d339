"""End to end: masked personal data, and cost figures that add up across local, cloud and cache."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal

import httpx
import openai
import pytest

from fakes.upstream import FakeUpstream
from support import ThriftyServer

pytestmark = pytest.mark.slow

USAGE = [sys.executable, "-m", "thrifty.cli", "usage"]
PHONE = "13812345678"
ID_CARD = "11010519491231002X"


@pytest.fixture(scope="module")
def masking(fake: FakeUpstream) -> Iterator[ThriftyServer]:
    config = {
        "local": {"enabled": False},
        "privacy": {"on_pii": "mask"},
        "upstreams": [
            {"name": "cloud", "base_url": fake.url, "models": {"cloud-chat": "fake-chat"}}
        ],
    }
    with ThriftyServer(config=config) as server:
        yield server


@pytest.mark.parametrize("stream", [False, True])
def test_cloud_sees_placeholders_client_sees_values(
    fake: FakeUpstream, masking: ThriftyServer, stream: bool
) -> None:
    fake.reset()
    client = openai.OpenAI(base_url=masking.base_url, api_key="x", max_retries=0)
    content = f"echo:请回拨 {PHONE}，身份证 {ID_CARD}，谢谢。"
    messages = [
        {"role": "system", "content": f"Customer phone on file: {PHONE}."},
        {"role": "user", "content": content},
    ]
    if stream:
        chunks = client.chat.completions.create(
            model="cloud-chat",
            messages=messages,
            stream=True,  # type: ignore[arg-type]
        )
        answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        reply = client.chat.completions.create(model="cloud-chat", messages=messages)  # type: ignore[arg-type]
        answer = reply.choices[0].message.content or ""
    # the client gets its own values back, restored from the placeholders the cloud echoed
    assert answer == f"请回拨 {PHONE}，身份证 {ID_CARD}，谢谢。"
    seen = json.dumps(fake.stats()["bodies"], ensure_ascii=False)
    assert PHONE not in seen and ID_CARD not in seen
    assert "<PHONE_1>" in seen and "<ID_CARD_1>" in seen


def _post(server: ThriftyServer, model: str, content: str, **body: object) -> httpx.Response:
    payload = {"model": model, "messages": [{"role": "user", "content": content}], **body}
    response = httpx.post(server.base_url + "/chat/completions", json=payload, timeout=120)
    assert response.status_code == 200, response.text
    return response


def test_usage_totals_equal_the_request_log(gateway: ThriftyServer) -> None:
    """A mixed run — local, cloud, cache — then `thrifty usage --format json` against the log."""
    responses = [
        _post(gateway, "local", "Name a colour.", max_tokens=8),
        _post(gateway, "deepseek-chat", "Name a fruit.", max_tokens=8),
        _post(gateway, "local", "Name a city.", max_tokens=8, temperature=0),
        _post(gateway, "local", "Name a city.", max_tokens=8, temperature=0),  # from the cache
    ]
    routes = [r.headers["x-thrifty-route"] for r in responses]
    assert routes == ["local", "deepseek-chat", "local", "cache"]
    for response in responses:
        row = gateway.row(response.headers["x-thrifty-request-id"])
        header = Decimal(response.headers["x-thrifty-cost-usd"])
        assert header == Decimal(row["cost_nanos"]) / 10**9
    assert gateway.row(responses[3].headers["x-thrifty-request-id"])["cost_nanos"] == 0

    out = subprocess.run(
        [*USAGE, "--since", "1d", "--by", "route", "--format", "json"],
        capture_output=True,
        text=True,
        env={**gateway.env},
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    rows = gateway.rows()
    total = report["total"]
    assert total["requests"] == len(rows)
    assert total["prompt_tokens"] == sum(r["prompt_tokens"] for r in rows)
    assert total["completion_tokens"] == sum(r["completion_tokens"] for r in rows)
    assert total["cost_nanos"] == sum(r["cost_nanos"] or 0 for r in rows)
    assert total["baseline_nanos"] == sum(r["baseline_nanos"] or 0 for r in rows)
    by_route = {row["key"]: row for row in report["rows"]}
    assert by_route["cache"]["cost_nanos"] == 0 and by_route["cache"]["baseline_nanos"] > 0

"""The verified cascade end to end: a real local model answers, a failed check escalates.

The local target is the bundled model under llama-server; the cloud is the fake upstream with
an answer book. Each kind of check is made to fail the way it fails in production (a sentence
where a label was wanted, an answer the model is unsure of, JSON or code cut off by max_tokens),
whole and streamed; an answer that passes (the fake engine, which says what it is told) stays
local and never reaches the cloud.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from fakes.upstream import FakeUpstream, start_upstream
from support import ThriftyServer
from thrifty.costs.pricebook import PriceBook
from thrifty.costs.usage import TokenUsage

CASCADE = ["local", "deepseek-chat"]
RULES = [
    {"name": "code", "when": {"header": {"x-check": "code"}},
     "target": {"cascade": CASCADE, "checks": ["code"]}},
    {"name": "schema", "when": {"header": {"x-check": "schema"}},
     "target": {"cascade": CASCADE, "checks": ["schema"]}},
    {"name": "logprob", "when": {"header": {"x-check": "logprob"}},
     "target": {"cascade": CASCADE, "checks": ["logprob"], "min_logprob": -0.0001}},
    {"name": "labels",
     "target": {"cascade": CASCADE, "checks": ["labels"], "labels": ["refund", "other"]}},
]  # fmt: skip
ASKS: dict[str, dict[str, Any]] = {
    "code": {
        "messages": [
            {"role": "system", "content": "Answer with a Python code block only."},
            {"role": "user", "content": "Write a Python function that adds two numbers."},
        ],
        "max_tokens": 12,  # the block is cut off mid-definition
    },
    "schema": {
        "messages": [{"role": "user", "content": "The intent of 'I want my money back' as JSON"}],
        "max_tokens": 4,  # the JSON object is cut off
        "response_format": {"type": "json_object"},
    },
    "logprob": {"messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 8},
    "labels": {"messages": [{"role": "user", "content": "I want my money back"}], "max_tokens": 8},
}
# the local engine's power price makes its share of a cost stand out: 0.15 USD a busy second
PRICEY = {
    "local": {"power_watts": 3_600_000, "electricity_per_kwh": 0.15},
    "local_basis": "marginal",
}


@pytest.fixture(scope="module")
def cloud() -> Iterator[FakeUpstream]:
    with start_upstream(model_name="deepseek-chat") as upstream:
        upstream.set_answers({"*": "refund"})
        yield upstream


@pytest.fixture(scope="module")
def gateway(cloud: FakeUpstream) -> Iterator[ThriftyServer]:
    config = {
        "local": {"parallel": 1, "ctx_size": 1024},
        "upstreams": [
            {
                "name": "deepseek",
                "base_url": cloud.url,
                "models": {"deepseek-chat": "deepseek-chat"},
            }
        ],
        "cache": {"enabled": False},
        "costs": PRICEY,
        "router": {"rules": RULES},
    }
    with ThriftyServer(config=config) as server:
        yield server


def ask(
    server: ThriftyServer, check: str, stream: bool
) -> tuple[dict[str, str], str, dict[str, Any]]:
    """Headers, the answer's text, and (streams) the x_thrifty facts of the last chunk."""
    body = {"model": "auto", "temperature": 0, "stream": stream, **ASKS[check]}
    with httpx.stream(
        "POST", server.base_url + "/chat/completions", json=body, headers={"x-check": check},
        timeout=120,
    ) as response:  # fmt: skip
        assert response.status_code == 200, response.read()
        headers = dict(response.headers)
        if not stream:
            data = orjson.loads(response.read())
            return headers, data["choices"][0]["message"]["content"], {}
        text, facts = "", {}
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = orjson.loads(line[6:])
            for choice in chunk.get("choices") or []:
                text += choice.get("delta", {}).get("content") or ""
            facts = chunk.get("x_thrifty") or facts
        return headers, text, facts


@pytest.mark.slow
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("check", ["labels", "logprob", "schema", "code"])
def test_a_failed_check_escalates(
    gateway: ThriftyServer, cloud: FakeUpstream, check: str, stream: bool
) -> None:
    before = cloud.stats()["requests"]
    headers, text, facts = ask(gateway, check, stream)
    assert headers["x-thrifty-route"] == "deepseek-chat"
    note = f"cascade: local failed {check} -> deepseek-chat"
    assert headers["x-thrifty-reason"].startswith(f"rule:{check}")
    assert note in headers["x-thrifty-reason"]
    assert text == "refund"  # the cloud's answer, not the local one
    assert cloud.stats()["requests"] == before + 1
    if stream:
        assert note in facts["reason"]
    row = gateway.row(headers["x-thrifty-request-id"])
    assert row["route"] == "deepseek-chat" and note in row["reason"]
    # both attempts are paid for: more than the cloud's answer alone, priced from its own usage
    usage = TokenUsage(row["prompt_tokens"], row["completion_tokens"], row["cached_tokens"])
    at = datetime.fromtimestamp(row["ts"], UTC)
    cloud_only = PriceBook.load().cost_nanos("deepseek-chat", usage, at)
    assert cloud_only is not None and row["cost_nanos"] > cloud_only > 0


def test_a_passing_answer_stays_local_whole_and_streamed(
    two_fakes: Any, fake_cloud: FakeUpstream
) -> None:
    config = two_fakes(router={"rules": RULES})
    with ThriftyServer(config=config) as server:
        fake_cloud.reset()
        for stream in (False, True):
            body = {"model": "auto", "stream": stream,
                    "messages": [{"role": "user", "content": "echo:Refund."}]}  # fmt: skip
            response = httpx.post(server.base_url + "/chat/completions", json=body, timeout=30)
            assert response.status_code == 200, response.text
            assert response.headers["x-thrifty-route"] == "local"
            assert "cascade" not in response.headers["x-thrifty-reason"]
            if stream:
                assert '"content":"Refund."' in response.text.replace(" ", "")
                assert "logprobs" not in response.text  # the client did not ask for them
            else:
                message = response.json()["choices"][0]
                assert message["message"]["content"] == "Refund." and "logprobs" not in message
        assert fake_cloud.stats()["requests"] == 0

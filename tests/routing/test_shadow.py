"""Shadow evaluation on real gateways: labels by reference or judge, never PII, within its cap."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from fakes.upstream import FakeUpstream
from support import ThriftyServer, query

QUESTIONS = ["Is it sunny?", "今天天气怎么样？", "Will it rain?", "明天会下雨吗？"]
LONG = "x" * 300  # 100 of the fake's 3-character tokens


def shadow_config(two_fakes: Any, **shadow: Any) -> dict[str, Any]:
    config = two_fakes(router={"shadow": {"sample": 1.0, **shadow}, "expected_output_tokens": 100})
    # the fake cloud is priced (1,000 USD per 1M tokens, to make the cap bite in a few calls)
    config["upstreams"][0]["models"] = {"deepseek-chat": "deepseek-chat"}
    price = {"currency": "USD", "input_cache_hit": 1000, "input_cache_miss": 1000, "output": 1000}
    config["prices"] = {"deepseek-chat": [{"effective_from": "2020-01-01", **price}]}
    return config


def ask(server: ThriftyServer, content: str, **extra: Any) -> httpx.Response:
    response = httpx.post(
        server.base_url + "/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": content}], **extra},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response


def shadow_rows(server: ThriftyServer, want: int, timeout: float = 10) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = query(server.database_url, "SELECT * FROM outcomes WHERE source = 'shadow'")
        if len(rows) >= want or time.monotonic() > deadline:
            return sorted(rows, key=lambda r: r["id"])
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def books(fake_local: FakeUpstream, fake_cloud: FakeUpstream) -> None:
    fake_local.set_answers({q: "sunny" if "sunny" in q else "no idea" for q in QUESTIONS})
    fake_cloud.set_answers({**{q: "sunny, or rain" for q in QUESTIONS}, "*": "Rating: [[3]]"})
    fake_local.reset()
    fake_cloud.reset()


def test_reference_and_judge_label_the_cheaper_answer(two_fakes: Any) -> None:
    with ThriftyServer(config=shadow_config(two_fakes)) as server:
        by_ref = ask(server, "Is it sunny?", thrifty={"reference": "sunny"})
        assert by_ref.headers["x-thrifty-route"] == "local"  # the client's answer, unchanged
        assert by_ref.json()["choices"][0]["message"]["content"] == "sunny"
        rows = shadow_rows(server, 2)
        assert {(r["target"], r["ok"], r["detail"]) for r in rows} == {
            ("local", 1, "reference"),
            ("deepseek-chat", 1, "reference"),
        }
        assert {r["request_id"] for r in rows} == {by_ref.headers["x-thrifty-request-id"]}
        assert all(r["text"] == "Is it sunny?" for r in rows)
        judged = ask(server, "Will it rain?")  # no reference: the cloud judges local's answer
        rows = shadow_rows(server, 4)[2:]
        assert {(r["target"], r["ok"], r["score"], r["detail"]) for r in rows} == {
            ("local", 0, 0.3, "judge:deepseek-chat"),
            ("deepseek-chat", 1, 1.0, "judge:deepseek-chat"),
        }
        assert rows[0]["request_id"] == judged.headers["x-thrifty-request-id"]
        cloud_cost = next(r["cost_nanos"] for r in rows if r["target"] == "deepseek-chat")
        assert cloud_cost > 0
        bad = httpx.post(
            server.base_url + "/chat/completions",
            json={"model": "auto", "messages": [{"role": "user", "content": "hi"}],
                  "thrifty": {"reference": "x", "scorer": "nope"}},
        )  # fmt: skip
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "thrifty.scorer"


def test_personal_data_is_never_shadowed_to_the_cloud(
    two_fakes: Any, fake_cloud: FakeUpstream
) -> None:
    with ThriftyServer(config=shadow_config(two_fakes)) as server:
        pii = ask(server, "我的手机号是13812345678，明天会下雨吗？")
        assert pii.headers["x-thrifty-route"] == "local"
        ask(server, "今天天气怎么样？", thrifty={"reference": "sunny"})  # a clean one, shadowed
        rows = shadow_rows(server, 2)
        time.sleep(0.3)  # a shadow of the first request would have landed by now
        rows = shadow_rows(server, 2)
    assert len(rows) == 2
    assert {r["request_id"] for r in rows} != {pii.headers["x-thrifty-request-id"]}
    sent = [str(b) for b in fake_cloud.stats()["bodies"]]
    assert len(sent) == 1 and "13812345678" not in sent[0]


def test_the_daily_spend_cap_holds(two_fakes: Any, fake_cloud: FakeUpstream) -> None:
    fake_cloud.set_answers({q: LONG for q in QUESTIONS})  # each shadow answer: ~0.1 USD
    with ThriftyServer(config=shadow_config(two_fakes, max_usd_per_day=0.25)) as server:
        for n, question in enumerate(QUESTIONS):
            ask(server, question, thrifty={"reference": "sunny"})
            shadow_rows(server, min(2 * (n + 1), 4), timeout=3)
        rows = shadow_rows(server, 4)
    assert len(rows) == 4  # two shadows fit in 0.25 USD, the third and fourth would not
    assert fake_cloud.stats()["requests"] == 2
    spent = sum(r["cost_nanos"] for r in rows if r["target"] == "deepseek-chat")
    assert 0 < spent <= 250_000_000

"""Routing decisions on a registry of scripted backends: rules, default policy, privacy guard."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from thrifty.backends import Registry, Target
from thrifty.config import PrivacySettings, RouterSettings
from thrifty.context import RequestContext
from thrifty.errors import RouteRejected
from thrifty.gateway.complexity import HeuristicScorer, estimate_tokens
from thrifty.gateway.pii import PIIDetector
from thrifty.gateway.privacy import PIIScan, PrivacyGuard, StreamRestorer, unmask_payload
from thrifty.gateway.route import ModelRoute
from thrifty.gateway.router import RateWindow, Router, in_window

PHONE = "我的手机号是13812345678，请帮我查询订单。"
HARD = "Prove that sqrt(2) is irrational, step by step, then compare it with sqrt(3) in detail."


class Engine:
    """A stand-in local engine whose load we set."""

    kind = "local"
    name = "local"
    parallel = 2

    def __init__(self) -> None:
        self.in_flight = 0

    def saturated(self) -> bool:
        return self.in_flight >= self.parallel

    def load(self) -> int:
        return max(0, self.in_flight - self.parallel)


def registry(local: bool = True, cloud: bool = True) -> tuple[Registry, Engine]:
    reg = Registry()
    engine = Engine()
    if local:
        reg.local = engine  # type: ignore[assignment]
        reg.add(["local", "smollm2-135m"], Target("local", engine, "smollm2-135m"))  # type: ignore[arg-type]
    if cloud:
        reg.add(
            ["deepseek-chat"],
            Target("deepseek-chat", object(), "deepseek-chat", upstream="deepseek"),  # type: ignore[arg-type]
        )
    return reg, engine


def route(
    reg: Registry,
    content: str,
    *,
    model: str = "auto",
    router: RouterSettings | None = None,
    privacy: PrivacySettings | None = None,
    tenant: str = "default",
    headers: dict[str, str] | None = None,
    **body: Any,
) -> RequestContext:
    detector = PIIDetector()
    stages = [
        PIIScan(detector),
        Router(router or RouterSettings(), reg),
        ModelRoute(reg),
        PrivacyGuard(privacy or PrivacySettings(), reg, detector),
    ]
    ctx = RequestContext(
        "chat",
        {"model": model, "messages": [{"role": "user", "content": content}], **body},
        model,
        False,
        tenant=tenant,
        request_headers=headers or {},
    )

    async def run() -> None:
        for stage in stages:
            await stage.on_request(ctx)

    asyncio.run(run())
    return ctx


def routes(ctx: RequestContext) -> list[str]:
    return [t.route for t in ctx.targets]


def test_default_policy() -> None:
    reg, engine = registry()
    assert routes(route(reg, PHONE)) == ["local"]
    assert route(reg, PHONE).reason_header == "rule:pii-local (pii=phone)"
    assert routes(route(reg, HARD)) == ["deepseek-chat", "local"]
    assert route(reg, HARD).reason.startswith("rule:default (cheapest meeting 0.95: deepseek-chat")
    assert routes(route(reg, "What is the capital of France?")) == ["local", "deepseek-chat"]
    engine.in_flight = 2
    busy = route(reg, "What is the capital of France?")
    assert routes(busy) == ["deepseek-chat", "local"]
    assert busy.reason_header == "rule:local-saturated (local_saturated=true)"
    assert routes(route(reg, PHONE)) == ["local"]  # saturated or not, PII stays


def test_without_cloud_everything_is_local_and_without_local_cloud() -> None:
    reg, _ = registry(cloud=False)
    assert routes(route(reg, HARD)) == ["local"]
    reg, _ = registry(local=False)
    assert routes(route(reg, "hello")) == ["deepseek-chat"]


def test_pii_never_reaches_cloud_even_when_asked_by_name() -> None:
    reg, _ = registry()
    ctx = route(reg, PHONE, model="deepseek-chat")
    assert routes(ctx) == ["local"]
    assert ctx.reason_header == "model:deepseek-chat; pii=phone -> local only"
    # a rule that sends PII to the cloud is overruled too, fallbacks included
    rules = RouterSettings(rules=[{"name": "all-cloud", "target": ["deepseek-chat", "local"]}])
    assert routes(route(reg, PHONE, router=rules)) == ["local"]


def test_pii_with_no_local_model_is_refused() -> None:
    reg, _ = registry(local=False)
    with pytest.raises(RouteRejected):
        route(reg, PHONE, model="deepseek-chat")


def test_pii_actions_reject_allow_mask() -> None:
    reg, _ = registry()
    with pytest.raises(RouteRejected):
        route(reg, PHONE, model="deepseek-chat", privacy=PrivacySettings(on_pii="reject"))
    allowed = route(reg, PHONE, model="deepseek-chat", privacy=PrivacySettings(on_pii="allow"))
    assert routes(allowed) == ["deepseek-chat"]
    masked = route(reg, PHONE, model="deepseek-chat", privacy=PrivacySettings(on_pii="mask"))
    assert routes(masked) == ["deepseek-chat"]
    sent = masked.body["messages"][0]["content"]
    assert "13812345678" not in sent and "<PHONE_1>" in sent
    assert masked.pii_mapping == {"<PHONE_1>": "13812345678"}


def test_rule_overrides_can_mask_and_tune() -> None:
    reg, _ = registry()
    rules = RouterSettings(
        rules=[
            {
                "name": "cloud-masked",
                "when": {"pii": ["phone"]},
                "target": "deepseek-chat",
                "overrides": {"mask_pii": True, "temperature": 0.2, "system_prompt": "Be brief."},
            },
            {"name": "rest", "target": "local"},
        ]
    )
    ctx = route(reg, PHONE, router=rules)
    assert routes(ctx) == ["deepseek-chat"] and ctx.pii_mapping
    assert ctx.body["temperature"] == 0.2
    assert ctx.body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_conditions_tenant_header_tokens_reject() -> None:
    reg, _ = registry()
    rules = RouterSettings(
        rules=[
            {"name": "vip", "when": {"tenant": ["acme"]}, "target": "deepseek-chat"},
            {"name": "beta", "when": {"header": {"x-beta": "1"}}, "target": "deepseek-chat"},
            {"name": "long", "when": {"max_tokens": {"gt": 1000}}, "target": "reject",
             "message": "too long for us"},
            {"name": "big", "when": {"prompt_tokens": {"gte": 100}}, "target": "deepseek-chat"},
            {"name": "rest", "target": "local"},
        ]
    )  # fmt: skip
    assert route(reg, "hi", router=rules, tenant="acme").reason_header == "rule:vip (tenant=acme)"
    assert (
        route(reg, "hi", router=rules, headers={"x-beta": "1"}).reason_header
        == "rule:beta (header)"
    )
    with pytest.raises(RouteRejected, match="too long for us"):
        route(reg, "hi", router=rules, max_tokens=2000)
    assert route(reg, "word " * 500, router=rules).reason.startswith("rule:big (prompt_tokens=")
    assert route(reg, "hi", router=rules).reason_header == "rule:rest"


def test_unknown_rule_target_fails_at_start() -> None:
    reg, _ = registry()
    with pytest.raises(ValueError, match="unknown model"):
        Router(RouterSettings(rules=[{"name": "x", "target": "gpt-9"}]), reg)


def test_time_window_wraps_midnight_and_weekdays() -> None:
    from thrifty.config import TimeWindow

    peak = TimeWindow(start="16:30", end="00:30", days=["mon", "tue", "wed", "thu", "fri"])
    assert in_window(peak, datetime(2026, 11, 24, 17, 0, tzinfo=UTC))  # Tuesday
    assert in_window(peak, datetime(2026, 11, 24, 0, 10, tzinfo=UTC))
    assert not in_window(peak, datetime(2026, 11, 24, 12, 0, tzinfo=UTC))
    assert not in_window(peak, datetime(2026, 11, 29, 17, 0, tzinfo=UTC))  # Sunday


def test_rate_window() -> None:
    now = [0.0]
    qps = RateWindow(window_s=10, clock=lambda: now[0])
    for _ in range(50):
        qps.hit()
    assert qps.rate() == 5.0
    now[0] = 11.0
    assert qps.rate() == 0.0


@pytest.mark.parametrize(
    ("prompt", "low"),
    [
        ("What is the capital of France?", True),
        ("我的订单什么时候到？", True),
        ("Translate 'good morning' to French.", True),
        (HARD, False),
        ("请详细分析并证明：对于任意正整数n，n^3 - n 能被 6 整除。请分步骤推理。", False),
        (
            "```python\nclass A:\n  def f(self): return 1\n```\n"
            "Fix it and explain why step by step.",
            False,
        ),
    ],
)
def test_complexity_scorer_separates_easy_from_hard(prompt: str, low: bool) -> None:
    score = HeuristicScorer().score([{"role": "user", "content": prompt}])
    assert 0 <= score <= 1
    assert (score < 0.3) if low else (score >= 0.7)


def test_token_estimate_counts_cjk_per_character() -> None:
    assert estimate_tokens("你好世界") == 4
    assert estimate_tokens("abcdefgh") == 2


def test_unmasking_whole_and_streamed() -> None:
    mapping = {"<PHONE_1>": "13812345678"}
    payload = {"choices": [{"message": {"content": "已记录 <PHONE_1>。"}}]}
    unmask_payload(payload, mapping)
    assert payload["choices"][0]["message"]["content"] == "已记录 13812345678。"
    restorer = StreamRestorer(mapping)
    pieces = ["Call <PH", "ONE_", "1> now", ""]
    out = ""
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        reason = "stop" if last else None
        choice = {"index": 0, "delta": {"content": piece}, "finish_reason": reason}
        chunk = {"choices": [choice]}
        out += restorer.chunk(chunk)["choices"][0]["delta"]["content"]
    assert out == "Call 13812345678 now"

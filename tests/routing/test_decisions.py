"""Cost-aware decisions: expected cost and P(good enough) per target; the cheapest qualifies."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from support import THRIFTY
from thrifty.backends import Registry, Target
from thrifty.config import CostSettings, RouterSettings
from thrifty.context import RequestContext
from thrifty.costs.local import LocalCost
from thrifty.gateway.pii import PIIDetector
from thrifty.gateway.policy import Candidate, choose
from thrifty.gateway.privacy import PIIScan
from thrifty.gateway.router import Router

EASY = "What is the capital of France?"
MEDIUM = "Write a function that returns the square of a number."
HARD = "Prove that sqrt(2) is irrational, step by step, then compare it with sqrt(3) in detail."

PRICEY_LOCAL = CostSettings(local=LocalCost(power_watts=Decimal(200_000)))  # a power station


class Engine:
    kind = "local"
    name = "local"
    parallel = 2
    in_flight = 0

    def saturated(self) -> bool:
        return False

    def load(self) -> int:
        return 0


def registry() -> Registry:
    reg = Registry()
    engine = Engine()
    reg.local = engine  # type: ignore[assignment]
    reg.add(["local"], Target("local", engine, "smollm2-135m"))  # type: ignore[arg-type]
    reg.add(
        ["deepseek-chat"],
        Target("deepseek-chat", object(), "deepseek-chat", upstream="deepseek"),  # type: ignore[arg-type]
    )
    return reg


def decide(router: Router, content: str, **body: Any) -> RequestContext:
    ctx = RequestContext(
        "chat", {"model": "auto", "messages": [{"role": "user", "content": content}], **body},
        "auto", False,
    )  # fmt: skip

    async def run() -> None:
        await PIIScan(PIIDetector()).on_request(ctx)
        await router.on_request(ctx)

    asyncio.run(run())
    return ctx


def test_cheap_good_local_wins_and_hard_requests_go_to_the_cloud() -> None:
    router = Router(RouterSettings(), registry())
    easy = decide(router, EASY)
    assert [t.route for t in easy.targets] == ["local", "deepseek-chat"]
    local, cloud = sorted(easy.candidates, key=lambda c: c.name != "local")
    assert local.cost_nanos is not None and cloud.cost_nanos is not None
    assert 0 < local.cost_nanos < cloud.cost_nanos  # marginal local cost is power only
    assert local.p_ok > 0.99 and cloud.p_ok == 1.0
    hard = decide(router, HARD)
    assert hard.route == "deepseek-chat"
    assert "cheapest meeting 0.95: deepseek-chat" in hard.reason
    assert next(c for c in hard.candidates if c.name == "local").p_ok < 0.95


def test_a_dearer_worse_local_target_is_not_chosen() -> None:
    router = Router(RouterSettings(), registry(), costs=PRICEY_LOCAL)
    for prompt in (EASY, MEDIUM, HARD):
        ctx = decide(router, prompt)
        local = next(c for c in ctx.candidates if c.name == "local")
        cloud = next(c for c in ctx.candidates if c.name == "deepseek-chat")
        assert local.cost_nanos is not None and cloud.cost_nanos is not None
        assert local.cost_nanos > cloud.cost_nanos and local.p_ok <= cloud.p_ok
        assert ctx.route == "deepseek-chat", prompt
        assert [t.route for t in ctx.targets] == ["deepseek-chat", "local"]  # local: fallback


def test_the_winner_is_never_dominated() -> None:
    rng = random.Random(7)
    targets = [Target(f"t{i}", object(), f"m{i}") for i in range(4)]  # type: ignore[arg-type]
    for _ in range(2000):
        candidates = [
            Candidate(t.route, t, rng.choice([None, rng.randrange(1, 50)]), rng.random())
            for t in targets[: rng.randrange(1, 5)]
        ]
        bar = rng.choice([0.5, 0.8, 0.95, 1.0])
        winner, *rest = choose(candidates, bar)
        price = float("inf") if winner.cost_nanos is None else winner.cost_nanos
        for other in rest:
            cheaper = other.cost_nanos is not None and other.cost_nanos < price
            assert not (cheaper and other.p_ok > winner.p_ok), (winner, other)
        assert winner.p_ok >= bar * max(c.p_ok for c in candidates) - 1e-12


def test_max_tokens_and_prompt_length_change_the_expected_cost() -> None:
    router = Router(RouterSettings(), registry())
    short = decide(router, EASY, max_tokens=16)
    long = decide(router, EASY * 40, max_tokens=16)
    wordy = decide(router, EASY)

    def cloud(ctx: RequestContext) -> int:
        nanos = next(c for c in ctx.candidates if c.name == "deepseek-chat").cost_nanos
        assert nanos is not None
        return nanos

    assert cloud(short) < cloud(long)  # more prompt tokens
    assert cloud(short) < cloud(wordy)  # 256 expected answer tokens against 16


def test_p_ok_condition() -> None:
    settings = RouterSettings.model_validate(
        {
            "rules": [
                {"name": "sure", "when": {"p_ok": {"target": "local", "gte": 0.99}},
                 "target": "local"},
                {"name": "else", "target": "deepseek-chat"},
            ]
        }
    )  # fmt: skip
    router = Router(settings, registry())
    easy = decide(router, EASY)
    assert (easy.route, easy.reason) == ("local", "rule:sure (p_ok[local]=1)")
    assert decide(router, HARD).route == "deepseek-chat"


def test_start_warning_when_local_costs_more_than_the_cloud() -> None:
    cheap = Router(RouterSettings(), registry(), costs=CostSettings(local_basis="marginal"))
    assert cheap.warning is None
    shipped = Router(RouterSettings(), registry())  # fully loaded 2,000 USD box at 25% use
    assert shipped.warning is not None
    assert "reports (fully_loaded)" in shipped.warning and "routing" not in shipped.warning
    pricey = Router(RouterSettings(), registry(), costs=PRICEY_LOCAL)
    assert pricey.warning is not None and "routing (marginal)" in pricey.warning


def test_route_explain_shows_costs_and_probabilities(tmp_path: Path) -> None:
    config = tmp_path / "thrifty.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "home": str(tmp_path),
                "upstreams": [
                    {"name": "deepseek", "base_url": "http://127.0.0.1:9/v1",
                     "models": {"deepseek-chat": "deepseek-chat"}}
                ],
            }
        )
    )  # fmt: skip
    out = subprocess.run(
        [*THRIFTY, "route", "explain", "-c", str(config), "--json", HARD],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    decision = json.loads(out.stdout)
    assert decision["route"] == "deepseek-chat"
    by_target = {c["target"]: c for c in decision["candidates"]}
    assert set(by_target) == {"local", "deepseek-chat"}
    assert by_target["deepseek-chat"]["meets_bar"] and not by_target["local"]["meets_bar"]
    assert by_target["local"]["expected_cost_usd"] < by_target["deepseek-chat"]["expected_cost_usd"]
    assert 0 < by_target["local"]["p_ok"] < 0.95
    # the table form says why one won; the start-up warning names the loaded local cost
    table = subprocess.run(
        [*THRIFTY, "route", "explain", "-c", str(config), "把这句话翻译成英文：你好"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "won: local (the cheapest that meets the bar)" in table.stdout
    assert "P(good)" in table.stdout
    assert "exceeds the cloud's" in table.stderr


def test_a_slow_local_engine_is_priced_at_its_measured_speed() -> None:
    reg = registry()
    router = Router(RouterSettings(), reg)
    assert decide(router, EASY).route == "local"  # 40 tokens/s assumed: local is cheaper
    local = reg.resolve("local")
    for _ in range(5):  # five answers of 20 tokens that took 20 s each: 1 token a second
        ctx = RequestContext("chat", {"model": "auto", "messages": []}, "auto", False)
        ctx.answered_by, ctx.usage = local, {"prompt_tokens": 10, "completion_tokens": 20}
        ctx.finished_at = ctx.started + 20.0
        router.on_finish(ctx)
    slow = decide(router, EASY)
    local_cost = next(c.cost_nanos for c in slow.candidates if c.name == "local")
    cloud_cost = next(c.cost_nanos for c in slow.candidates if c.name == "deepseek-chat")
    assert local_cost is not None and cloud_cost is not None and local_cost > cloud_cost
    assert slow.route == "deepseek-chat"  # as good, and now cheaper
    fixed = Router(RouterSettings(measure_local_speed=False), reg)
    for _ in range(5):
        ctx = RequestContext("chat", {"model": "auto", "messages": []}, "auto", False)
        ctx.answered_by, ctx.usage = local, {"prompt_tokens": 10, "completion_tokens": 20}
        ctx.finished_at = ctx.started + 20.0
        fixed.on_finish(ctx)
    assert decide(fixed, EASY).route == "local"

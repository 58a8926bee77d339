"""The autopilot's routing rules: a promoted task's `auto` traffic goes to its student, and only
that task's; the file is reread live; the metrics and budgets the cycle relies on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from routing.test_decisions import registry
from thrifty.autopilot.metrics import contains, exact, similarity
from thrifty.autopilot.work import Budget, BudgetExhausted
from thrifty.backends import Target
from thrifty.config import RouterSettings
from thrifty.context import RequestContext
from thrifty.gateway.promoted import PromotedRules, Promotion, read_promotions, write_promotions
from thrifty.gateway.router import Router
from thrifty.store.outcomes import task_key

SYSTEM = "You answer Acme's customers about returns."
TASK = task_key(SYSTEM)


def _router(home: Path) -> Router:
    reg = registry()
    reg.add(["student"], Target("local", reg.local, "student"))  # type: ignore[arg-type]
    return Router(RouterSettings(), reg, home=home)


def _ctx(system: str | None, tenant: str = "default") -> RequestContext:
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": "Can I return shoes after 20 days?"})
    body = {"model": "auto", "messages": messages}
    return RequestContext("chat", body, "auto", False, tenant=tenant)


def _route(router: Router, ctx: RequestContext) -> tuple[str, str]:
    asyncio.run(router.on_request(ctx))
    return ctx.targets[0].model, ctx.reason or ""


def test_a_promotion_sends_its_task_and_nothing_else_to_the_student(tmp_path: Path) -> None:
    write_promotions(tmp_path, [Promotion(TASK, "student", "run1", 1.0)])
    router = _router(tmp_path)
    model, reason = _route(router, _ctx(SYSTEM))
    assert model == "student"
    assert reason.startswith(f"rule:autopilot:{TASK}") and f"task={TASK}" in reason
    other, why = _route(router, _ctx("You write poems."))
    assert other != "student" and "autopilot" not in why
    bare, _ = _route(router, _ctx(None))
    assert bare != "student"


def test_a_tenant_promotion_leaves_other_tenants_alone(tmp_path: Path) -> None:
    write_promotions(tmp_path, [Promotion(TASK, "student", "run1", 1.0, tenant="acme")])
    router = _router(tmp_path)
    assert _route(router, _ctx(SYSTEM, tenant="acme"))[0] == "student"
    assert _route(router, _ctx(SYSTEM, tenant="globex"))[0] != "student"


def test_the_router_follows_the_file_and_skips_unknown_models(tmp_path: Path) -> None:
    now = [0.0]
    reg = registry()
    rules = PromotedRules(tmp_path, lambda name: reg.resolve(name) is not None, lambda: now[0])
    assert rules.rules == []
    write_promotions(tmp_path, [Promotion(TASK, "not-yet", "run1", 1.0)])
    now[0] += 2
    assert rules.refresh() is False and rules.rules == []  # the registry does not know it yet
    reg.add(["not-yet"], Target("local", reg.local, "not-yet"))  # type: ignore[arg-type]
    now[0] += 0.5
    assert rules.refresh() is False  # looked less than a second ago
    now[0] += 1
    assert rules.refresh() is True and rules.rules[0].name == f"autopilot:{TASK}"
    write_promotions(tmp_path, [])
    now[0] += 2
    assert rules.refresh() is True and rules.rules == []


def test_a_damaged_rules_file_means_no_rules(tmp_path: Path) -> None:
    path = tmp_path / "autopilot" / "rules.json"
    path.parent.mkdir()
    path.write_text("{not json")
    assert read_promotions(tmp_path) == []
    path.write_text('{"promotions": [{"task": "x"}]}')  # no model
    assert read_promotions(tmp_path) == []


def test_metrics_score_against_the_clouds_answer() -> None:
    assert exact("  Refund ", "refund") == 1.0 and exact("refund please", "refund") == 0.0
    assert contains("It is a refund.", "refund") == 1.0 and contains("nope", "refund") == 0.0
    assert similarity("退货请在七天内申请", "退货请在七天内申请") == 1.0
    near = similarity("Returns are accepted within 30 days.", "Returns accepted within 30 days")
    far = similarity("Returns are accepted within 30 days.", "我们的营业时间是早九点到晚五点")
    assert 0.6 < near < 1.0 and far == 0.0


def test_a_budget_stops_on_cpu_and_on_cloud_money() -> None:
    budget = Budget(cpu_s=10, usd_nanos=1000)
    budget.check()
    budget.spent_cpu_s = 10
    with pytest.raises(BudgetExhausted, match="CPU budget spent"):
        budget.check()
    money = Budget(cpu_s=10, usd_nanos=1000)
    money.spend_cloud(600)
    with pytest.raises(BudgetExhausted, match="cloud budget spent"):
        money.spend_cloud(600)


def test_a_rule_whose_student_left_the_registry_is_passed_over(tmp_path: Path) -> None:
    write_promotions(tmp_path, [Promotion(TASK, "student", "run1", 1.0)])
    router = _router(tmp_path)
    del router.registry.targets["student"]  # removed before the router reread the rules file
    model, reason = _route(router, _ctx(SYSTEM))
    assert model != "student" and "autopilot" not in reason

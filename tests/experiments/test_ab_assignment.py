"""Variant assignment: shares follow the weights, users are sticky, weight changes move few."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from pydantic import ValidationError

from thrifty.backends import Registry, Target
from thrifty.config import ExperimentSettings, Settings
from thrifty.context import RequestContext
from thrifty.gateway.experiments import Experiment, Experiments, layout

WEIGHTS = {"control": 0.7, "lora": 0.2, "cloud": 0.1}
MODELS = {"control": "local", "lora": "local-lora", "cloud": "deepseek-chat"}


def settings(weights: dict[str, float] = WEIGHTS) -> ExperimentSettings:
    return ExperimentSettings.model_validate(
        {"variants": {name: {"model": MODELS[name], "weight": w} for name, w in weights.items()}}
    )


def registry(*names: str) -> Registry:
    reg = Registry()
    for name in names:
        reg.add([name], Target(name, object(), name))  # type: ignore[arg-type]
    return reg


def stage() -> Experiments:
    return Experiments({"chat-ab": settings()}, registry(*MODELS.values()))


def ctx(user: str | None = None, **fields: object) -> RequestContext:
    body: dict[str, object] = {"model": "chat-ab", "messages": []}
    if user is not None:
        body["user"] = user
    return RequestContext("chat", body, "chat-ab", False, **fields)  # type: ignore[arg-type]


def run(experiments: Experiments, context: RequestContext) -> RequestContext:
    assert asyncio.run(experiments.on_request(context)) is None
    return context


def test_shares_follow_the_weights_over_3000_requests() -> None:
    experiments = stage()

    async def assign_all() -> tuple[Counter[str], Counter[str]]:
        by_user: Counter[str] = Counter()
        anonymous: Counter[str] = Counter()
        for i in range(3000):
            with_user = ctx(f"user-{i}")
            await experiments.on_request(with_user)
            by_user[str(with_user.variant)] += 1
            nobody = ctx()  # no user, header or key: assigned per request
            await experiments.on_request(nobody)
            anonymous[str(nobody.variant)] += 1
        return by_user, anonymous

    for counts in asyncio.run(assign_all()):
        assert sum(counts.values()) == 3000
        for variant, weight in WEIGHTS.items():
            share = counts[f"chat-ab:{variant}"] / 3000
            assert abs(share - weight) <= 0.03, (variant, share)


def test_the_variant_sets_model_and_label() -> None:
    context = run(stage(), ctx("alice"))
    variant = str(context.variant).removeprefix("chat-ab:")
    assert variant in WEIGHTS
    assert context.model == MODELS[variant]


def test_a_user_is_sticky_and_users_spread() -> None:
    experiments = stage()
    seen = {str(run(experiments, ctx("alice")).variant) for _ in range(100)}
    assert len(seen) == 1
    # the header and the key id are units too, used in that order after the body's user
    by_header = {
        str(run(experiments, ctx(request_headers={"x-thrifty-user": "bob"})).variant)
        for _ in range(100)
    }
    assert by_header == {str(run(experiments, ctx("bob")).variant)}
    by_key = {str(run(experiments, ctx(key_id="key_abc")).variant) for _ in range(100)}
    assert len(by_key) == 1
    spread = {str(run(experiments, ctx(f"u{i}")).variant) for i in range(200)}
    assert spread == {f"chat-ab:{v}" for v in WEIGHTS}


def test_other_models_pass_through() -> None:
    context = RequestContext("chat", {"model": "local"}, "local", False)
    run(stage(), context)
    assert (context.model, context.variant) == ("local", None)


def test_ramping_one_variant_moves_only_the_shifted_share() -> None:
    before = Experiment.build("chat-ab", settings())
    after = Experiment.build("chat-ab", settings({"control": 0.6, "lora": 0.3, "cloud": 0.1}))
    moved: Counter[tuple[str, str]] = Counter()
    for i in range(20_000):
        old, new = before.assign(f"user:u{i}"), after.assign(f"user:u{i}")
        if old != new:
            moved[(old, new)] += 1
    assert set(moved) == {("control", "lora")}  # nobody else moves
    assert abs(sum(moved.values()) / 20_000 - 0.1) < 0.01
    assert layout(["control", "lora", "cloud"]) == ["lora", "control", "cloud"]


def _variants(**weights: float) -> dict[str, object]:
    return {name: {"model": "local", "weight": w} for name, w in weights.items()}


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        (_variants(a=0.5, b=0.5), "control"),
        (_variants(control=0.7, b=0.2), "sum to 1"),
        (_variants(control=1.0, b=0), "greater than 0"),
    ],
)
def test_bad_experiments_are_config_errors(variants: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(experiments={"chat-ab": {"variants": variants}})


def test_weights_summing_to_one_within_rounding_are_accepted() -> None:
    thirds = {"control": 1 / 3, "lora": 1 / 3, "cloud": 1 / 3}
    experiment = Experiment.build("x", settings(thirds))
    assert experiment.bounds[-1] == 1 << 64


def test_unknown_variant_models_fail_at_start() -> None:
    with pytest.raises(ValueError, match="variant 'lora' uses unknown model 'local-lora'"):
        Experiments({"chat-ab": settings()}, registry("local", "deepseek-chat"))
    # a router model (auto) is a fine variant: the router decides after the rewrite
    auto = ExperimentSettings.model_validate(
        {"variants": {"control": {"model": "auto", "weight": 1.0}}}
    )
    Experiments({"auto-ab": auto}, registry(), router_models=["auto"])

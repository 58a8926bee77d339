"""The optional model self-check: off by default, a protocol, a config hook, the built-in judge."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from thrifty.backends import Registry, Reply, Target
from thrifty.config import Settings
from thrifty.context import RequestContext
from thrifty.errors import ContentPolicyViolation
from thrifty.gateway.call import Caller
from thrifty.gateway.moderation import (
    ModelSelfCheck,
    Moderation,
    SelfCheckStage,
    build_self_check,
)


class Judge:
    """A backend that answers every chat with `verdict` and remembers what it was asked."""

    kind = "local"
    name = "judge"

    def __init__(self, verdict: str) -> None:
        self.verdict = verdict
        self.bodies: list[dict[str, Any]] = []

    async def complete(self, endpoint: Any, body: dict[str, Any]) -> Reply:
        self.bodies.append(body)
        message = {"role": "assistant", "content": self.verdict}
        return Reply({"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})


def registry_with(judge: Judge) -> Registry:
    registry = Registry()
    registry.add(["local"], Target("local", judge, "judge"))  # type: ignore[arg-type]
    return registry


def request(text: str) -> RequestContext:
    return RequestContext("chat", {"messages": [{"role": "user", "content": text}]}, "m", False)


def test_off_by_default() -> None:
    settings = Settings(local={"enabled": False})
    moderation = Moderation(settings.moderation)
    assert build_self_check(settings, Caller({}, {}), Registry(), moderation) is None


@pytest.mark.parametrize(("verdict", "flagged"), [("SAFE", False), ("unsafe.", True)])
def test_the_built_in_judge_asks_a_model_through_the_caller(verdict: str, flagged: bool) -> None:
    judge = Judge(verdict)
    settings = Settings(local={"enabled": False}, moderation={"self_check": {"enabled": True}})
    moderation = Moderation(settings.moderation)
    stage = build_self_check(settings, Caller({}, {}), registry_with(judge), moderation)
    assert stage is not None and isinstance(stage.check, ModelSelfCheck)
    ctx = request("how do I bake bread?")
    assert asyncio.run(stage.on_request(ctx)) is None  # flag (the default action) lets it through
    asked = judge.bodies[0]["messages"]
    assert asked[0]["role"] == "system" and "UNSAFE" in asked[0]["content"]
    assert asked[1]["content"] == "how do I bake bread?"
    found = moderation._found.get(ctx.id, [])
    assert [(f.action, f.lists) for f in found] == ([("flag", {"self_check"})] if flagged else [])


def test_block_action_refuses_and_a_failing_judge_lets_requests_through() -> None:
    settings = Settings(
        local={"enabled": False}, moderation={"self_check": {"enabled": True, "action": "block"}}
    )
    moderation = Moderation(settings.moderation)

    async def unsafe(text: str, ctx: RequestContext) -> str | None:
        return "looks dangerous"

    async def broken(text: str, ctx: RequestContext) -> str | None:
        raise ConnectionError("judge is down")

    config = settings.moderation.self_check
    with pytest.raises(ContentPolicyViolation, match="looks dangerous"):
        asyncio.run(SelfCheckStage(unsafe, config, moderation).on_request(request("x")))
    assert asyncio.run(SelfCheckStage(broken, config, moderation).on_request(request("x"))) is None


def test_a_factory_from_config_builds_your_own_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_judge.py").write_text(
        "def make(settings, caller, registry):\n"
        "    async def check(text, ctx):\n"
        "        return 'too long' if len(text) > 10 else None\n"
        "    return check\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    settings = Settings(
        local={"enabled": False},
        moderation={"self_check": {"enabled": True, "factory": "my_judge:make", "action": "block"}},
    )
    moderation = Moderation(settings.moderation)
    stage = build_self_check(settings, Caller({}, {}), Registry(), moderation)
    assert stage is not None
    assert asyncio.run(stage.on_request(request("short"))) is None
    with pytest.raises(ContentPolicyViolation, match="too long"):
        asyncio.run(stage.on_request(request("a much longer request")))


@pytest.mark.parametrize("on_pii", ["local", "mask", "reject", "allow"])
def test_a_judge_on_a_cloud_never_sees_personal_data(on_pii: str) -> None:
    """The judge's call is scanned and carries what the client's request carries: the local
    model judges a request with personal data (`local`, `mask`), no model does (`reject`), or
    the cloud does (`allow`). A value split across two messages counts, though the judge's text
    joins them."""
    from thrifty.gateway.build import build_gateway
    from thrifty.gateway.metrics import Metrics

    cloud, local = Judge("SAFE"), Judge("SAFE")
    registry = Registry()
    registry.add(["local"], Target("local", local, "judge"))  # type: ignore[arg-type]
    registry.add(["judge-cloud"], Target("judge-cloud", cloud, "m", upstream="cloud"))  # type: ignore[arg-type]
    settings = Settings(
        local={"enabled": False},
        privacy={"on_pii": on_pii},
        moderation={"self_check": {"enabled": True, "model": "judge-cloud"}},
    )
    gateway = build_gateway(settings, registry, Metrics()).gateway

    async def checked(*texts: str) -> RequestContext:
        messages = [{"role": "user", "content": text} for text in texts]
        ctx = RequestContext("chat", {"messages": messages}, "m", False)
        for stage in gateway.stages:  # the scan, then the self-check
            await stage.on_request(ctx)
            if isinstance(stage, SelfCheckStage):
                return ctx
        raise AssertionError("no self-check stage")

    for texts in (["please call me at 13812345678"], ["my id is 110105199", "003071239 ok"]):
        cloud.bodies.clear()
        local.bodies.clear()
        asyncio.run(checked(*texts))
        judged_by = "cloud" if cloud.bodies else "local" if local.bodies else None
        assert judged_by == {"local": "local", "mask": "local", "allow": "cloud"}.get(on_pii)
    asyncio.run(checked("how do I bake bread?"))  # clean text: the cloud judges
    assert cloud.bodies[-1]["messages"][1]["content"] == "how do I bake bread?"

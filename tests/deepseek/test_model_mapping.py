"""Upstream model mappings that carry request fields, such as DeepSeek's `thinking`."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from thrifty.backends import Target, build_registry
from thrifty.config import Settings, UpstreamSettings
from thrifty.context import RequestContext
from thrifty.gateway.call import upstream_body


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in ("THRIFTY_CONFIG", "DEEPSEEK_API_KEY", "DEEPSEEK_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def upstream(models: dict[str, Any]) -> UpstreamSettings:
    return UpstreamSettings(name="up", base_url="http://127.0.0.1:9/v1", models=models)


def test_a_mapping_is_a_name_or_a_name_with_fields() -> None:
    up = upstream(
        {
            "fast": "deepseek-v4-flash",
            "think-hard": {
                "model": "deepseek-v4-pro",
                "thinking": {"type": "enabled"},
                "reasoning_effort": "high",
            },
        }
    )
    assert up.targets() == {
        "fast": ("deepseek-v4-flash", {}),
        "think-hard": (
            "deepseek-v4-pro",
            {"thinking": {"type": "enabled"}, "reasoning_effort": "high"},
        ),
    }


@pytest.mark.parametrize("field", ["messages", "stream", "stream_options", "prompt", "thrifty"])
def test_a_mapping_may_not_set_what_the_gateway_owns(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        upstream({"x": {"model": "m", field: True}})


def test_a_mapping_needs_a_model() -> None:
    with pytest.raises(ValidationError, match="model"):
        upstream({"x": {"thinking": {"type": "enabled"}}})


def test_the_default_deepseek_upstream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-test")
    registry = build_registry(Settings(local={"enabled": False}))
    chat, reasoner = registry.resolve("deepseek-chat"), registry.resolve("deepseek-reasoner")
    flash, pro = registry.resolve("deepseek-v4-flash"), registry.resolve("deepseek-v4-pro")
    assert chat is not None and reasoner is not None and flash is not None and pro is not None
    assert (chat.model, dict(chat.params)) == (
        "deepseek-v4-flash",
        {"thinking": {"type": "disabled"}},
    )
    assert (reasoner.model, dict(reasoner.params)) == (
        "deepseek-v4-flash",
        {"thinking": {"type": "enabled"}},
    )
    assert (flash.model, dict(flash.params)) == ("deepseek-v4-flash", {})
    assert (pro.model, dict(pro.params)) == ("deepseek-v4-pro", {})
    assert chat.route == "deepseek-chat" and chat.upstream == "deepseek"


def test_a_configured_upstream_with_a_deepseek_name_replaces_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-test")
    mine = {"name": "mine", "base_url": "http://127.0.0.1:9/v1", "models": {"deepseek-v4-pro": "x"}}
    assert [u.name for u in Settings(upstreams=[mine]).upstreams] == ["mine"]


def _ctx(body: dict[str, Any], stream: bool = False) -> RequestContext:
    return RequestContext("chat", body, str(body["model"]), stream)


def _target(params: dict[str, Any]) -> Target:
    return Target("deepseek-reasoner", object(), "deepseek-v4-flash", "deepseek", params=params)  # type: ignore[arg-type]


def test_mapping_fields_go_into_the_upstream_body() -> None:
    ctx = _ctx({"model": "deepseek-reasoner", "messages": [{"role": "user", "content": "hi"}]})
    body = upstream_body(ctx, _target({"thinking": {"type": "enabled"}}))
    assert body["model"] == "deepseek-v4-flash"
    assert body["thinking"] == {"type": "enabled"}
    assert "thinking" not in ctx.body  # the client's body is left alone


def test_the_clients_own_field_wins_over_the_mapping() -> None:
    ctx = _ctx({"model": "deepseek-reasoner", "messages": [], "thinking": {"type": "disabled"}})
    body = upstream_body(
        ctx, _target({"thinking": {"type": "enabled"}, "reasoning_effort": "high"})
    )
    assert body["thinking"] == {"type": "disabled"}
    assert body["reasoning_effort"] == "high"


def test_the_mapping_fields_are_copied_for_each_request() -> None:
    target = _target({"thinking": {"type": "enabled"}})
    first = upstream_body(_ctx({"model": "m", "messages": []}), target)
    first["thinking"]["type"] = "changed downstream"
    second = upstream_body(_ctx({"model": "m", "messages": []}), target)
    assert second["thinking"] == {"type": "enabled"}

"""Exact keys, semantic partitions and request directives."""

from __future__ import annotations

from typing import Any

import pytest

from thrifty.backends import Target
from thrifty.context import RequestContext
from thrifty.errors import InvalidRequest
from thrifty.gateway.cache.keys import (
    deterministic,
    directives,
    last_user_text,
    request_keys,
    tenant_tag,
)

LOCAL = Target("local", object(), "smollm2-135m")  # type: ignore[arg-type]
CLOUD = Target("deepseek-chat", object(), "deepseek-chat", upstream="deepseek")  # type: ignore[arg-type]
HI = [{"role": "user", "content": "What is the capital of France?"}]


def ctx_for(
    body: dict[str, Any],
    *,
    tenant: str = "acme",
    target: Target = LOCAL,
    headers: dict[str, str] | None = None,
) -> RequestContext:
    ctx = RequestContext(
        "chat",
        body,
        body.get("model", "local"),
        False,
        tenant=tenant,
        request_headers=headers or {},
    )
    ctx.targets = [target]
    return ctx


def exact(body: dict[str, Any], **kwargs: Any) -> str:
    return request_keys(ctx_for(body, **kwargs), semantic=False).exact


def test_delivery_fields_do_not_change_the_key() -> None:
    base = {"messages": HI, "temperature": 0}
    assert exact(base) == exact({**base, "model": "auto", "stream": True, "user": "bob"})
    assert exact(base) == exact({**base, "stream_options": {"include_usage": True}})
    assert exact(base) == exact({**base, "thrifty": {"cache": "no-store"}})
    assert exact(base) == exact({**base, "top_p": None})  # null is the same as absent
    assert exact(base) == exact({"messages": HI, "temperature": 0.0})


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 0.5},
        {"max_tokens": 10},
        {"seed": 7},
        {"stop": ["\n"]},
        {"response_format": {"type": "json_object"}},
        {"tools": [{"type": "function", "function": {"name": "f"}}]},
        {"messages": [{"role": "user", "content": "What is the capital of Spain?"}]},
        {"messages": [{"role": "system", "content": "Be terse."}, *HI]},
        {"some_provider_extension": True},  # unknown fields count: they might change the answer
    ],
)
def test_what_changes_the_answer_changes_the_key(change: dict[str, Any]) -> None:
    base = {"messages": HI, "temperature": 0}
    assert exact(base) != exact({**base, **change})


def test_tenant_and_target_are_part_of_the_key() -> None:
    body = {"messages": HI, "temperature": 0}
    assert exact(body, tenant="acme") != exact(body, tenant="globex")
    assert exact(body, tenant="acme").startswith("acme:")
    assert exact(body, target=LOCAL) != exact(body, target=CLOUD)


def test_tenant_tags_are_plain_names_or_hashes() -> None:
    assert tenant_tag("acme-prod_1") == "acme-prod_1"
    odd = tenant_tag("team a:b*")
    assert odd.startswith("~") and ":" not in odd and "*" not in odd
    assert tenant_tag("team a:b*") != tenant_tag("team a:c*")


def test_semantic_partition_leaves_out_only_the_last_user_turn() -> None:
    a = request_keys(ctx_for({"messages": HI, "temperature": 0}), semantic=True)
    b = request_keys(
        ctx_for(
            {
                "messages": [{"role": "user", "content": "Which city is France's capital?"}],
                "temperature": 0,
            }
        ),
        semantic=True,
    )
    assert a.exact != b.exact
    assert a.partition == b.partition and a.partition is not None
    assert a.text == "What is the capital of France?"
    system = {"role": "system", "content": "Answer in French."}
    c = request_keys(ctx_for({"messages": [system, *HI], "temperature": 0}), semantic=True)
    assert c.partition != a.partition
    d = request_keys(ctx_for({"messages": HI, "temperature": 0, "max_tokens": 5}), semantic=True)
    assert d.partition != a.partition
    e = request_keys(ctx_for({"messages": HI, "temperature": 0}, tenant="globex"), semantic=True)
    assert e.partition != a.partition


def test_last_user_text() -> None:
    assert last_user_text(HI) == "What is the capital of France?"
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert last_user_text([{"role": "user", "content": parts}]) == "a\nb"
    image = [{"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "this?"}]
    assert last_user_text([{"role": "user", "content": image}]) is None
    assert last_user_text([*HI, {"role": "assistant", "content": "Paris"}]) is None
    assert last_user_text([]) is None


def test_deterministic() -> None:
    assert deterministic({"temperature": 0})
    assert deterministic({"temperature": 0.0})
    assert deterministic({"temperature": 0.8, "seed": 1})
    assert not deterministic({"temperature": 0.8})
    assert not deterministic({})  # the provider's default temperature samples


def test_directives_from_header_and_body() -> None:
    plain = directives(ctx_for({"messages": HI}))
    assert (plain.lookup, plain.store, plain.ttl_s) == (True, True, None)
    header = directives(ctx_for({"messages": HI}, headers={"x-thrifty-cache": "no-store"}))
    assert (header.lookup, header.store) == (True, False)
    both = directives(ctx_for({"messages": HI}, headers={"x-thrifty-cache": "No-Cache, ttl=30"}))
    assert (both.lookup, both.store, both.ttl_s) == (False, True, 30.0)
    body = directives(ctx_for({"messages": HI, "thrifty": {"cache": "no-store"}}))
    assert body.store is False
    listed = directives(
        ctx_for({"messages": HI, "thrifty": {"cache": ["no-cache"], "cache_ttl_s": 5}})
    )
    assert (listed.lookup, listed.ttl_s) == (False, 5.0)


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ({"messages": HI}, {"x-thrifty-cache": "nostore"}),  # a typo must not store silently
        ({"messages": HI, "thrifty": {"cache": 3}}, {}),
        ({"messages": HI, "thrifty": {"cache_ttl_s": -1}}, {}),
        ({"messages": HI}, {"x-thrifty-cache": "ttl=soon"}),
    ],
)
def test_bad_directives_are_400(body: dict[str, Any], headers: dict[str, str]) -> None:
    with pytest.raises(InvalidRequest) as info:
        directives(ctx_for(body, headers=headers))
    assert info.value.status == 400


ANSWER_CHANGERS = [
    {"tools": [{"type": "function", "function": {"name": "lookup_order"}}]},
    {"tool_choice": "none"},
    {"response_format": {"type": "json_object"}},
    {"response_format": {"type": "json_schema", "json_schema": {"name": "city"}}},
    {"temperature": 0.7},
    {"top_p": 0.5},
    {"seed": 1},
    {"presence_penalty": 0.5},
    {"frequency_penalty": 0.5},
    {"logit_bias": {"50256": -100}},
    {"n": 2},
    {"max_tokens": 7},
]


@pytest.mark.parametrize("change", ANSWER_CHANGERS)
def test_tools_formats_and_sampling_separate_exact_keys_and_partitions(
    change: dict[str, Any],
) -> None:
    base = {"messages": HI, "temperature": 0}
    a = request_keys(ctx_for(base), semantic=True)
    b = request_keys(ctx_for({**base, **change}), semantic=True)
    assert a.exact != b.exact
    assert a.partition is not None and b.partition is not None and a.partition != b.partition


def test_earlier_turns_and_tenants_separate_partitions() -> None:
    def partition(messages: list[dict[str, Any]], tenant: str = "acme") -> str | None:
        body = {"messages": messages, "temperature": 0}
        return request_keys(ctx_for(body, tenant=tenant), semantic=True).partition

    earlier = [
        {"role": "user", "content": "I live in Lyon."},
        {"role": "assistant", "content": "Noted."},
    ]
    other_earlier = [earlier[0], {"role": "assistant", "content": "Noted, Lyon."}]
    tool_result = [*earlier, {"role": "tool", "tool_call_id": "c1", "content": "{}"}]
    assert partition(HI) != partition([*earlier, *HI])
    assert partition([*earlier, *HI]) != partition([*other_earlier, *HI])
    assert partition([*earlier, *HI]) != partition([*tool_result, *HI])
    assert partition(HI, "acme") != partition(HI, "globex")
    named = [{**HI[0], "name": "alice"}]
    assert partition(HI) != partition(named)  # the last turn's other fields count too
    assert partition([*earlier, *HI]) == partition(
        [*earlier, {"role": "user", "content": "Which city is France's capital?"}]
    )

"""The cache stage and its finisher on contexts built by hand (no HTTP, no model)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from thrifty.backends import Reply, Target
from thrifty.config import CacheSettings
from thrifty.context import RequestContext
from thrifty.errors import InvalidRequest
from thrifty.gateway.cache import ResponseCache
from thrifty.gateway.cache.memory import MemoryStore
from thrifty.gateway.metrics import Metrics

LOCAL = Target("local", object(), "smollm2-135m")  # type: ignore[arg-type]
CLOUD = Target("deepseek-chat", object(), "deepseek-chat", upstream="deepseek")  # type: ignore[arg-type]
QUESTION = "What is the capital of France?"
USAGE = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_cache(**settings: Any) -> ResponseCache:
    return ResponseCache(CacheSettings(**settings), Metrics())


def ctx_for(
    content: str = QUESTION,
    *,
    tenant: str = "acme",
    targets: list[Target] | None = None,
    headers: dict[str, str] | None = None,
    **body: Any,
) -> RequestContext:
    payload = {"model": "local", "messages": [{"role": "user", "content": content}]}
    payload |= {"temperature": 0} | body
    ctx = RequestContext(
        "chat",
        payload,
        "local",
        bool(payload.get("stream")),
        tenant=tenant,
        request_headers=headers or {},
    )
    ctx.targets = list(targets or [LOCAL])
    return ctx


def chat_answer(text: str, finish: str | None = "stop", **message: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "smollm2-135m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, **message},
                "finish_reason": finish,
            }
        ],
        "usage": dict(USAGE),
    }


def serve(
    cache: ResponseCache,
    ctx: RequestContext,
    answer: str = "Paris.",
    *,
    by: Target | None = None,
    status: int = 200,
    reply: dict[str, Any] | None = None,
) -> Reply | None:
    """What the gateway does around the stage: the stage, the model on a miss, the finishers."""
    hit = asyncio.run(cache.on_request(ctx))
    if hit is None:
        ctx.answered_by = by or ctx.targets[0]
        ctx.reply = reply or chat_answer(answer)
        ctx.usage = ctx.reply.get("usage")
        ctx.status = status
    else:
        ctx.reply = hit.payload
    cache.on_finish(ctx)
    return hit


def content(reply: Reply | None) -> str:
    assert reply is not None
    return str(reply.payload["choices"][0]["message"]["content"])


def sample(cache: ResponseCache, name: str, **labels: str) -> float:
    value = cache.metrics.registry.get_sample_value(name, labels or None)
    return float(value or 0)


def test_miss_then_exact_hit() -> None:
    cache = make_cache()
    first = ctx_for()
    assert serve(cache, first) is None
    assert first.cache == "miss" and first.route == "local"
    second = ctx_for()
    hit = serve(cache, second, answer="never asked")
    assert content(hit) == "Paris."
    assert (second.route, second.reason_header, second.cache) == (
        "cache",
        "cache:exact",
        "hit-exact",
    )
    assert second.usage == USAGE  # the original usage: the meter prices the baseline it saved
    assert sample(cache, "thrifty_cache_hits_total", kind="exact") == 1
    assert sample(cache, "thrifty_cache_misses_total", kind="exact") == 1
    assert sample(cache, "thrifty_cache_writes_total", kind="exact") == 1


def test_a_hit_is_a_fresh_copy() -> None:
    cache = make_cache()
    serve(cache, ctx_for())
    hit = serve(cache, ctx_for())
    assert hit is not None
    hit.payload["choices"][0]["message"]["content"] = "edited by the API"
    assert content(serve(cache, ctx_for())) == "Paris."


def test_only_deterministic_requests_by_default() -> None:
    cache = make_cache()
    sampled = ctx_for(temperature=0.7)
    serve(cache, sampled)
    assert sampled.cache == "bypass"
    assert serve(cache, ctx_for(temperature=0.7)) is None
    assert sample(cache, "thrifty_cache_skipped_total", reason="nondeterministic") == 2
    serve(cache, ctx_for(temperature=0.7, seed=42))
    assert content(serve(cache, ctx_for(temperature=0.7, seed=42))) == "Paris."
    everything = make_cache(only_deterministic=False)
    serve(everything, ctx_for(temperature=0.7))
    assert content(serve(everything, ctx_for(temperature=0.7))) == "Paris."


def test_no_store_header_and_body() -> None:
    cache = make_cache()
    serve(cache, ctx_for(headers={"x-thrifty-cache": "no-store"}))
    serve(cache, ctx_for(thrifty={"cache": "no-store"}))
    assert serve(cache, ctx_for()) is None  # nothing was stored; this one stores
    hit_anyway = ctx_for(headers={"x-thrifty-cache": "no-store"})
    assert content(serve(cache, hit_anyway)) == "Paris."  # no-store may still be served


def test_no_cache_skips_the_lookup_and_refreshes_the_entry() -> None:
    cache = make_cache()
    serve(cache, ctx_for(), answer="old")
    refresh = ctx_for(headers={"x-thrifty-cache": "no-cache"})
    assert serve(cache, refresh, answer="new") is None
    assert refresh.cache == "bypass"
    assert content(serve(cache, ctx_for())) == "new"


def test_ttl_expiry_and_per_request_ttl() -> None:
    clock = Clock()
    settings = CacheSettings(ttl_s=60)
    cache = ResponseCache(settings, Metrics(), backend=MemoryStore(100, 10**6, clock=clock))
    serve(cache, ctx_for())
    clock.now += 59
    assert content(serve(cache, ctx_for())) == "Paris."
    clock.now += 2
    assert serve(cache, ctx_for()) is None  # expired, and stored again
    short = ctx_for("Another question?", thrifty={"cache_ttl_s": 5})
    serve(cache, short)
    clock.now += 6
    assert serve(cache, ctx_for("Another question?")) is None
    longer = ctx_for("A third?", headers={"x-thrifty-cache": "ttl=9999"})  # capped at ttl_s
    serve(cache, longer)
    clock.now += 61
    assert serve(cache, ctx_for("A third?")) is None


def test_lru_eviction_bound() -> None:
    metrics = Metrics()
    cache = ResponseCache(CacheSettings(max_entries=2), metrics)
    serve(cache, ctx_for("one?"))
    serve(cache, ctx_for("two?"))
    assert serve(cache, ctx_for("one?")) is not None  # "two?" is now least recently used
    serve(cache, ctx_for("three?"))
    look = {"x-thrifty-cache": "no-store"}  # look without storing
    assert serve(cache, ctx_for("two?", headers=look)) is None
    assert serve(cache, ctx_for("one?", headers=look)) is not None
    assert serve(cache, ctx_for("three?", headers=look)) is not None
    assert sample(cache, "thrifty_cache_evictions_total", reason="lru") >= 1
    rendered = metrics.render().decode()
    assert "thrifty_cache_entries 2.0" in rendered


def test_tenant_a_never_receives_tenant_b_answer() -> None:
    cache = make_cache()
    serve(cache, ctx_for(tenant="acme"), answer="acme's answer")
    other = ctx_for(tenant="globex")
    assert serve(cache, other, answer="globex's answer") is None
    assert other.cache == "miss"
    assert content(serve(cache, ctx_for(tenant="acme"))) == "acme's answer"
    assert content(serve(cache, ctx_for(tenant="globex"))) == "globex's answer"


def test_the_target_is_part_of_the_key() -> None:
    cache = make_cache()
    serve(cache, ctx_for(targets=[LOCAL]), answer="local")
    assert serve(cache, ctx_for(targets=[CLOUD]), answer="cloud") is None
    assert content(serve(cache, ctx_for(targets=[CLOUD]))) == "cloud"


@pytest.mark.parametrize(
    "outcome",
    [
        {"status": 502},
        {"by": CLOUD},  # a fallback answered: not what the key names
        {"reply": chat_answer("", finish="tool_calls", tool_calls=[{"id": "t"}])},
        {"reply": chat_answer("half", finish=None)},
        {"reply": {"error": {"message": "x"}}},
    ],
)
def test_what_is_not_stored(outcome: dict[str, Any]) -> None:
    cache = make_cache()
    serve(cache, ctx_for(targets=[LOCAL, CLOUD]), **outcome)
    assert serve(cache, ctx_for(targets=[LOCAL, CLOUD])) is None


def test_masked_prompts_bypass_the_cache() -> None:
    cache = make_cache()
    ctx = ctx_for()
    ctx.pii_mapping = {"<EMAIL_1>": "a@b.cn"}
    serve(cache, ctx)
    assert ctx.cache == "bypass"
    assert serve(cache, ctx_for()) is None


def test_pii_prompts_stay_in_the_in_process_cache() -> None:
    cache = make_cache()
    ctx = ctx_for()
    ctx.pii = frozenset({"email"})
    serve(cache, ctx)
    assert content(serve(cache, ctx_for())) == "Paris."


def test_a_streamed_miss_asks_for_the_answer_to_be_captured() -> None:
    cache = make_cache()
    ctx = ctx_for(stream=True)
    assert asyncio.run(cache.on_request(ctx)) is None
    assert ctx.keep_reply is True
    sampled = ctx_for(stream=True, temperature=1)
    asyncio.run(cache.on_request(sampled))
    assert sampled.keep_reply is False


def test_a_streamed_completions_answer_is_stored_in_its_endpoint_shape() -> None:
    cache = make_cache()
    body = {"model": "local", "prompt": "The capital of France is", "temperature": 0}
    ctx = RequestContext("completions", {**body, "stream": True}, "local", True, tenant="acme")
    ctx.targets = [LOCAL]
    asyncio.run(cache.on_request(ctx))
    ctx.answered_by = LOCAL
    ctx.reply = chat_answer(" Paris.")  # StreamCapture reassembles in chat shape
    cache.on_finish(ctx)
    again = RequestContext("completions", body, "local", False, tenant="acme")
    again.targets = [LOCAL]
    hit = asyncio.run(cache.on_request(again))
    assert hit is not None
    assert hit.payload["object"] == "text_completion"
    assert hit.payload["choices"][0]["text"] == " Paris."


def test_bad_directive_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        asyncio.run(make_cache().on_request(ctx_for(headers={"x-thrifty-cache": "please"})))


def test_disabled_cache_does_nothing() -> None:
    cache = make_cache(enabled=False)
    ctx = ctx_for()
    serve(cache, ctx)
    assert ctx.cache == ""
    assert serve(cache, ctx_for()) is None

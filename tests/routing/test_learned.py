"""The learned scorer: trained on outcomes that favour a target, it changes decisions, live."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

import httpx

from support import THRIFTY, ThriftyServer
from thrifty.gateway.complexity import HeuristicScorer
from thrifty.gateway.scorer import RequestFeatures
from thrifty.store.db import connect
from thrifty.store.migrations import migrate
from thrifty.store.outcomes import Outcome, add_outcomes

# Short, plain questions: the heuristic rates them all easy, so they all start on local.
REFUNDS = [
    "How do I get a refund for my order?", "Can I return shoes I already wore?",
    "我想退货，怎么办？", "退款多久能到账？", "Where is my refund?",
    "How long do returns take?", "Can I get my money back?", "我的退款还没到",
    "Is shipping refunded when I return something?", "怎么申请退款？",
    "Do you refund gift cards?", "退货需要付运费吗？",
]  # fmt: skip
WEATHER = [
    "What's the weather like today?", "Will it rain tomorrow?", "今天天气怎么样？",
    "明天会下雨吗？", "Is it sunny outside?", "How hot is it this afternoon?",
    "这周末天气好吗？", "Do I need an umbrella today?", "What is the temperature now?",
    "今天风大吗？", "Is it going to snow?", "现在外面冷吗？",
]  # fmt: skip


def outcomes() -> list[Outcome]:
    """Eval outcomes: on refund questions only the cloud was right; on weather both were."""
    rows = []
    heuristic = HeuristicScorer()
    for family, local_ok in ((REFUNDS, False), (WEATHER, True)):
        for n, text in enumerate(family):
            features = RequestFeatures.of([{"role": "user", "content": text}], heuristic)
            for target, ok in (("local", local_ok), ("deepseek-chat", True)):
                rows.append(
                    Outcome(
                        "eval",
                        target,
                        features.fingerprint,
                        ok,
                        score=float(ok),
                        text=text,
                        features=features.cheap,
                        ref=f"t:{family is REFUNDS}:{n}",
                    )
                )
    return rows


def route_of(server: ThriftyServer, content: str) -> str:
    response = httpx.post(
        server.base_url + "/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": content}]},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return response.headers["x-thrifty-route"]


def test_training_on_outcomes_changes_decisions_without_a_restart(
    two_fakes: Any, tmp_path: Any
) -> None:
    config = two_fakes(router={"scorer": "learned"})
    with ThriftyServer(config=config, home=tmp_path) as server:
        unseen_refund, unseen_weather = "Can I have a refund please?", "会下雪吗？"
        assert route_of(server, unseen_refund) == "local"  # no artifact yet: the heuristic
        conn = connect(server.database_url)
        try:
            migrate(conn)
            add_outcomes(conn, outcomes())
        finally:
            conn.close()
        env = {**os.environ, **{k: v for k, v in server.env.items() if k.startswith("THRIFTY_")}}
        trained = subprocess.run(
            [*THRIFTY, "route", "train"], env=env, capture_output=True, text=True, timeout=120
        )
        assert trained.returncode == 0, trained.stderr
        assert "scorer v1" in trained.stdout and "local" in trained.stdout
        assert (tmp_path / "router" / "scorer.npz").is_file()
        deadline = time.monotonic() + 30  # re-read within a second; the encoder loads once
        while route_of(server, unseen_refund) == "local" and time.monotonic() < deadline:
            time.sleep(0.5)
        assert route_of(server, unseen_refund) == "deepseek-chat"
        assert route_of(server, unseen_weather) == "local"
        assert route_of(server, "我要退款") == "deepseek-chat"


def _embeddings(server: ThriftyServer) -> float:
    text = httpx.get(server.url + "/metrics").text
    for line in text.splitlines():
        if line.startswith("thrifty_cache_embed_seconds_count"):
            return float(line.split()[-1])
    return 0.0


def test_an_auto_request_is_embedded_once_for_the_scorer_and_the_cache(
    two_fakes: Any, tmp_path: Any
) -> None:
    conn = connect(f"sqlite:///{tmp_path / 'thrifty.db'}")
    try:
        migrate(conn)
        add_outcomes(conn, outcomes())
    finally:
        conn.close()
    url = f"sqlite:///{tmp_path / 'thrifty.db'}"
    env = {**os.environ, "THRIFTY_HOME": str(tmp_path), "THRIFTY_DATABASE_URL": url}
    env.pop("THRIFTY_CONFIG", None)
    trained = subprocess.run(
        [*THRIFTY, "route", "train"], env=env, capture_output=True, text=True, timeout=120
    )
    assert trained.returncode == 0, trained.stderr
    config = two_fakes(router={"scorer": "learned"}, cache={"enabled": True, "semantic": True})
    with ThriftyServer(config=config, home=tmp_path, env={"THRIFTY_DATABASE_URL": url}) as server:
        for question in ("今天天气怎么样？", "今天天气如何？", "Will it rain tomorrow?"):
            response = httpx.post(
                server.base_url + "/chat/completions",
                json={"model": "auto", "temperature": 0,
                      "messages": [{"role": "user", "content": question}]},
                timeout=60,
            )  # fmt: skip
            assert response.status_code == 200, response.text
        auto = _embeddings(server)
        named = httpx.post(
            server.base_url + "/chat/completions",
            json={"model": "local", "temperature": 0,
                  "messages": [{"role": "user", "content": "明天会下雨吗？"}]},
            timeout=60,
        )  # fmt: skip
        assert named.status_code == 200
        deadline = time.monotonic() + 5
        while _embeddings(server) == auto and time.monotonic() < deadline:
            time.sleep(0.1)
        after_named = _embeddings(server)
    assert auto == 0  # the cache took every auto question's vector from the router
    assert after_named >= 1  # a request naming a model: the router is skipped, the cache embeds

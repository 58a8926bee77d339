"""Outcomes: one table on SQLite and PostgreSQL; feedback and A/B results become outcomes."""

from __future__ import annotations

import time
from typing import Any

import httpx

from support import ThriftyServer, query
from thrifty.store.db import connect
from thrifty.store.migrations import migrate
from thrifty.store.outcomes import Outcome, add_outcomes, fingerprint, read_outcomes


def ask(server: ThriftyServer, content: str, model: str = "auto") -> httpx.Response:
    response = httpx.post(
        server.base_url + "/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": content}]},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response


def outcomes(server: ThriftyServer, want: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while True:
        rows = query(server.database_url, "SELECT * FROM outcomes ORDER BY id")
        if len(rows) >= want or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def test_outcomes_round_trip_once_per_source_ref_and_target(tmp_path: Any) -> None:
    from support import database_url

    conn = connect(database_url(tmp_path))
    try:
        migrate(conn)
        migrate(conn)  # named and idempotent
        row = Outcome(
            "eval", "local", fingerprint("t", "你好"), True, score=1.0, text="你好", task="t",
            features={"log_tokens": 1.1}, ref="run:1", cost_nanos=17,
        )  # fmt: skip
        add_outcomes(conn, [row, row])  # a resumed eval stores nothing twice
        add_outcomes(conn, [Outcome("eval", "deepseek-chat", row.fingerprint, False, ref="run:1")])
        stored = list(read_outcomes(conn))
    finally:
        conn.close()
    assert [(o.target, o.ok, o.text, o.features) for o in stored] == [
        ("local", True, "你好", {"log_tokens": 1.1}),
        ("deepseek-chat", False, None, {}),
    ]


def test_feedback_and_ab_results_become_outcomes(two_fakes: Any) -> None:
    config = two_fakes(
        experiments={"chat-ab": {"variants": {"control": {"model": "auto", "weight": 1.0}}}},
    )
    with ThriftyServer(config=config) as server:
        plain = ask(server, "echo:退货政策是什么？")
        assert plain.headers["x-thrifty-route"] == "local"
        tested = ask(server, "echo:How do I reset my password?", model="chat-ab")
        named = ask(server, "echo:hello", model="deepseek-chat")  # not routed: no features
        for response, body in (
            (plain, {"thumbs": "up"}),
            (tested, {"converted": False, "score": 2}),
            (named, {"thumbs": "down"}),
            (plain, {"score": 4.5}),  # a bare score: kept, unlabelled
        ):
            sent = httpx.post(
                server.base_url + "/feedback",
                json={"request_id": response.headers["x-thrifty-request-id"], **body},
            )
            assert sent.status_code == 200, sent.text
        rows = outcomes(server, 4)
    by = [(r["source"], r["target"], r["ok"], r["text"], r["detail"]) for r in rows]
    assert by == [
        ("feedback", "local", 1, "echo:退货政策是什么？", ""),
        ("ab", "local", 0, "echo:How do I reset my password?", "variant=chat-ab:control"),
        ("feedback", "deepseek-chat", 0, None, ""),
        ("feedback", "local", None, "echo:退货政策是什么？", ""),
    ]
    assert rows[0]["request_id"] == plain.headers["x-thrifty-request-id"]
    assert rows[1]["score"] == 2
    assert rows[0]["cost_nanos"] is not None  # the request's metered cost
    assert '"log_tokens"' in rows[0]["features"]


def test_personal_data_is_never_kept_as_outcome_text(two_fakes: Any) -> None:
    with ThriftyServer(config=two_fakes()) as server:
        response = ask(server, "echo:我的手机号是13812345678，帮我查订单")
        httpx.post(
            server.base_url + "/feedback",
            json={"request_id": response.headers["x-thrifty-request-id"], "thumbs": "up"},
        ).raise_for_status()
        rows = outcomes(server, 1)
    assert [(r["source"], r["target"], r["ok"], r["text"]) for r in rows] == [
        ("feedback", "local", 1, None)
    ]

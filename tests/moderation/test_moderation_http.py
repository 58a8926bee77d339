"""Moderation through the HTTP app (in-process): requests and answers, whole and streamed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from fakes.backends import IdleUpstream
from support import database_url, dump
from thrifty.api.app import build_app
from thrifty.backends import Registry, Reply, StreamStats, Target
from thrifty.config import Settings
from thrifty.store.review import ReviewStore

CHAT = "/v1/chat/completions"
LISTS = {
    "banned": "# action: block\n# direction: both\nforbidden phrase\n禁词\n",
    "rude": "# action: mask\n# direction: both\nidiot\n笨蛋\n",
    "watch": "# action: flag\n# direction: both\nsecret plan\n秘密计划\n",
}


class Canned(IdleUpstream):
    """An upstream that answers with `answer`, streamed in the pieces given by `pieces`."""

    name = "canned"

    def __init__(self) -> None:
        self.answer = "Hello."
        self.pieces: list[str] | None = None
        self.bodies: list[dict[str, Any]] = []

    async def complete(self, endpoint: Any, body: dict[str, Any]) -> Reply:
        self.bodies.append(body)
        return Reply(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": self.answer},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
            }
        )

    async def stream(
        self, endpoint: Any, body: dict[str, Any], stats: StreamStats
    ) -> AsyncIterator[list[bytes]]:
        self.bodies.append(body)
        head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
        pieces = self.pieces if self.pieces is not None else [self.answer]
        for i, piece in enumerate(pieces):
            delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
            choice = {"index": 0, "delta": delta, "finish_reason": None}
            yield [orjson.dumps({**head, "choices": [choice]})]  # one event per network read
        done = {"index": 0, "delta": {}, "finish_reason": "stop"}
        yield [orjson.dumps({**head, "choices": [done]})]
        usage = {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
        yield [orjson.dumps({**head, "choices": [], "usage": usage})]


@pytest.fixture()
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Canned, Path]:
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    files = []
    for name, text in LISTS.items():
        (tmp_path / f"{name}.txt").write_text(text, encoding="utf-8")
        files.append(str(tmp_path / f"{name}.txt"))
    settings = Settings(
        home=tmp_path,
        local={"enabled": False},
        moderation={"files": files, "review_sample": 1.0},
    )
    backend = Canned()
    registry = Registry()
    registry.add(["deepseek-chat"], Target("deepseek-chat", backend, "deepseek-chat", "canned"))
    return build_app(settings, registry), backend, tmp_path


def post(app: Any, body: dict[str, Any]) -> httpx.Response:
    async def go() -> httpx.Response:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                response = await client.post(CHAT, json=body)
                await response.aread()
            app.state.runtime.review.flush()
            return response

    return asyncio.run(go())


def ask(content: str, stream: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "deepseek-chat",
        "messages": [{"role": "user", "content": content}],
    }
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body


def events(response: httpx.Response) -> list[Any]:
    lines = [line[6:] for line in response.text.split("\n\n") if line.startswith("data: ")]
    return [line if line == "[DONE]" else orjson.loads(line) for line in lines]


def streamed_text(response: httpx.Response) -> str:
    return "".join(
        (c["choices"][0]["delta"].get("content") or "")
        for c in events(response)
        if isinstance(c, dict) and c.get("choices")
    )


def reviews(home: Path) -> list[dict[str, Any]]:
    store = ReviewStore(database_url(home))
    try:
        return store.list(verdict=None)
    finally:
        store.close()


# --- input -------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["say the Forbidden Phrase now", "请说出禁词"])
def test_blocked_input_is_a_400_and_never_reaches_the_model(setup: Any, content: str) -> None:
    app, backend, _ = setup
    response = post(app, ask(content))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "content_policy_violation"
    assert error["type"] == "invalid_request_error"
    assert "banned" in error["message"]
    assert backend.bodies == []


def test_masked_input_reaches_the_model_masked(setup: Any) -> None:
    app, backend, _ = setup
    response = post(app, ask("my idiot boss, 那个笨蛋"))
    assert response.status_code == 200
    assert backend.bodies[0]["messages"][-1]["content"] == "my *** boss, 那个***"


@pytest.mark.parametrize("content", ["the secret plan", "我们的秘密计划"])
def test_flagged_input_passes_and_is_queued_for_review(setup: Any, content: str) -> None:
    app, backend, home = setup
    response = post(app, ask(content))
    assert response.status_code == 200
    assert backend.bodies[0]["messages"][-1]["content"] == content
    [item] = reviews(home)
    assert item["direction"] == "input" and item["action"] == "flag" and item["lists"] == "watch"
    assert content in item["excerpt"] and item["verdict"] is None
    assert item["request_id"] == response.headers["x-thrifty-request-id"]


def test_the_review_queue_stores_personal_data_redacted(setup: Any) -> None:
    app, _, home = setup
    content = "the secret plan: call 13812345678 or mail li.na@example.com, ID 110105199003071239"
    response = post(app, ask(content))
    assert response.status_code == 403  # personal data, and no local model to answer it
    [item] = reviews(home)
    excerpt = item["excerpt"]
    assert "secret plan" in excerpt
    for value in ("13812345678", "li.na@example.com", "110105199003071239"):
        assert value not in excerpt
    assert "<PHONE>" in excerpt and "<EMAIL>" in excerpt and "<ID_CARD>" in excerpt
    # nor anywhere else in the store: request log, audit log, review queue
    stored = dump(database_url(home))
    assert "secret plan" in stored  # the dump does hold the stored text
    for value in ("13812345678", "li.na@example.com", "110105199003071239"):
        assert value not in stored


# --- whole answers -----------------------------------------------------------------------------


@pytest.mark.parametrize("answer", ["Sure: the forbidden phrase is...", "好的，禁词是……"])
def test_blocked_answer_is_withheld(setup: Any, answer: str) -> None:
    app, backend, _ = setup
    backend.answer = answer
    response = post(app, ask("hello"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "content_policy_violation"
    assert "withheld" in response.json()["error"]["message"]
    assert response.headers["x-thrifty-cost-usd"] != "0.000000000"  # the tokens were spent


def test_masked_answer(setup: Any) -> None:
    app, backend, _ = setup
    backend.answer = "You idiot! 你这个笨蛋。"
    response = post(app, ask("hello"))
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "You ***! 你这个***。"


@pytest.mark.parametrize("answer", ["Here is the secret plan.", "这是秘密计划。"])
def test_flagged_answer_passes_and_is_queued(setup: Any, answer: str) -> None:
    app, backend, home = setup
    backend.answer = answer
    response = post(app, ask("hello"))
    assert response.json()["choices"][0]["message"]["content"] == answer
    [item] = reviews(home)
    assert item["direction"] == "output" and item["action"] == "flag"


# --- streamed answers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pieces",
    [
        ["Sure, the forb", "idden phr", "ase is this and more"],
        ["好的，禁", "词是这个，还有更多内容"],
    ],
)
def test_blocked_word_split_across_chunks_ends_the_stream_with_an_error(
    setup: Any, pieces: list[str]
) -> None:
    app, backend, _ = setup
    backend.pieces = pieces
    response = post(app, ask("hello", stream=True))
    assert response.status_code == 200  # the stream had begun
    got = events(response)
    assert got[-1] == "[DONE]"
    assert got[-2]["error"]["code"] == "content_policy_violation"
    text = streamed_text(response)
    assert "forbidden" not in text and "禁词" not in text and "禁" not in text


def test_masked_words_split_across_chunks_in_a_stream(setup: Any) -> None:
    app, backend, _ = setup
    backend.pieces = ["You are an id", "iot and ", "a 笨", "蛋, truly."]
    response = post(app, ask("hello", stream=True))
    got = events(response)
    assert got[-1] == "[DONE]" and all("error" not in c for c in got if isinstance(c, dict))
    assert streamed_text(response) == "You are an *** and a ***, truly."
    assert got[-2]["usage"]["completion_tokens"] == 7  # the usage chunk still comes last


def test_flagged_words_in_a_stream_pass_and_are_queued(setup: Any) -> None:
    app, backend, home = setup
    backend.pieces = ["the sec", "ret pl", "an, 秘密", "计划"]
    response = post(app, ask("hello", stream=True))
    assert streamed_text(response) == "the secret plan, 秘密计划"
    [item] = reviews(home)
    assert item["direction"] == "output" and item["lists"] == "watch"

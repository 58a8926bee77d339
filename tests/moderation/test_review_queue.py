"""The review queue: which flagged requests are sampled, and `thrifty review list|mark`."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from support import database_url
from thrifty.cli import main
from thrifty.config import ModerationSettings
from thrifty.context import RequestContext
from thrifty.errors import ContentPolicyViolation
from thrifty.gateway.moderation import Moderation
from thrifty.store.review import ReviewItem, ReviewQueue, ReviewStore


@pytest.fixture()
def lists(tmp_path: Path) -> list[Path]:
    flag = tmp_path / "watch.txt"
    flag.write_text("# action: flag\nsecret plan\n秘密计划\n", encoding="utf-8")
    block = tmp_path / "banned.txt"
    block.write_text("# action: block\nforbidden phrase\n", encoding="utf-8")
    return [flag, block]


def moderate(mod: Moderation, content: str) -> None:
    ctx = RequestContext("chat", {"messages": [{"role": "user", "content": content}]}, "m", False)
    try:
        asyncio.run(mod.on_request(ctx))
    except ContentPolicyViolation:
        ctx.status = 400
    mod.on_finish(ctx)


def test_flagged_requests_are_sampled_at_the_configured_rate(lists: list[Path]) -> None:
    queued: list[ReviewItem] = []
    settings = ModerationSettings(shipped_lists=False, files=lists)  # 5% by default
    mod = Moderation(settings, review=queued.append, rng=random.Random(42))
    for _ in range(4000):
        moderate(mod, "about the secret plan")
    assert 160 <= len(queued) <= 240  # 200 expected
    for _ in range(200):
        moderate(mod, "clean text")
        moderate(mod, "the forbidden phrase")  # blocked, not flagged: not sampled by default
    assert 160 <= len(queued) <= 240 and all(i.action == "flag" for i in queued)
    assert mod._found == {}  # nothing left behind once requests finish


def test_sampling_can_cover_blocks_and_be_turned_off(lists: list[Path]) -> None:
    queued: list[ReviewItem] = []
    settings = ModerationSettings(
        shipped_lists=False, files=lists, review_sample=1.0, review_actions=["flag", "block"]
    )
    mod = Moderation(settings, review=queued.append)
    moderate(mod, "the forbidden phrase")
    moderate(mod, "我们的秘密计划")
    assert [(i.action, i.lists) for i in queued] == [("block", "banned"), ("flag", "watch")]
    assert "秘密计划" in queued[1].excerpt
    off = Moderation(ModerationSettings(files=lists, review_sample=0), review=queued.append)
    moderate(off, "the secret plan")
    assert len(queued) == 2


def test_queue_writes_off_the_event_loop(tmp_path: Path) -> None:
    url = database_url(tmp_path)
    queue = ReviewQueue(url)
    queue.open()
    queue.add(ReviewItem("req-1", "acme", None, "local", "input", "flag", "watch", "text"))
    queue.close()
    store = ReviewStore(url)
    assert [i["request_id"] for i in store.list()] == ["req-1"]
    store.close()


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("THRIFTY_CONFIG", raising=False)
    monkeypatch.setenv("THRIFTY_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    store = ReviewStore(database_url(tmp_path))
    store.add(
        [
            ReviewItem(
                "req-a", "acme", "key_1", "local", "input", "flag", "self_harm", "我不想活了"
            ),
            ReviewItem("req-b", "beta", None, "auto", "output", "flag", "watch", "the secret plan"),
        ]
    )
    store.close()
    return tmp_path


def test_review_list_and_mark(home: Path) -> None:
    runner = CliRunner()
    listed = runner.invoke(main, ["review", "list"])
    assert listed.exit_code == 0, listed.output
    assert "我不想活了" in listed.output and "self_harm" in listed.output
    assert "the secret plan" in listed.output and "[pending]" in listed.output
    as_json = runner.invoke(main, ["review", "list", "--json"]).output
    lines = [orjson.loads(line) for line in as_json.splitlines()]
    assert [i["request_id"] for i in lines] == ["req-b", "req-a"]  # newest first
    first = next(i["id"] for i in lines if i["request_id"] == "req-a")

    marked = runner.invoke(
        main, ["review", "mark", str(first), "--verdict", "bad", "--note", "real"]
    )
    assert marked.exit_code == 0 and f"item {first}: bad" in marked.output
    pending = runner.invoke(main, ["review", "list"]).output
    assert "我不想活了" not in pending and "the secret plan" in pending
    bad = runner.invoke(main, ["review", "list", "--verdict", "bad", "--json"]).output
    [item] = [orjson.loads(line) for line in bad.splitlines()]
    assert item["verdict"] == "bad" and item["note"] == "real" and item["reviewed_at"]

    missing = runner.invoke(main, ["review", "mark", "999", "--verdict", "ok"])
    assert missing.exit_code == 1 and "no review item 999" in missing.output
    wrong = runner.invoke(main, ["review", "mark", str(first), "--verdict", "maybe"])
    assert wrong.exit_code == 2
    assert "empty" not in runner.invoke(main, ["review", "list", "--verdict", "all"]).output

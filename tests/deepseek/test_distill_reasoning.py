"""Training data from a thinking model: the reasoning is kept apart, and trained on only when
asked for (`--train-on-reasoning`), whether it comes from a teacher or from captured answers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from fakes.upstream import FakeUpstream, start_upstream
from support import ThriftyServer, query
from thrifty.train.collect import Example, Filters, finish

PHONE = "13812345678"


def test_reasoning_goes_in_a_think_block_only_when_asked(tmp_path: Path) -> None:
    prompt = [{"role": "user", "content": "2+2?"}]
    thought = Example([*prompt, {"role": "assistant", "content": "4"}], "Two and two make four.")
    plain = Example([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])
    out = tmp_path / "plain.jsonl"
    finish([thought, plain], out, filters=Filters(), holdout=0, seed=0)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["messages"][-1] == {"role": "assistant", "content": "4"}
    out = tmp_path / "reasoned.jsonl"
    finish([thought, plain], out, filters=Filters(), holdout=0, seed=0, with_reasoning=True)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["messages"][-1]["content"] == "<think>\nTwo and two make four.\n</think>\n\n4"
    assert rows[1]["messages"][-1]["content"] == "hello"  # no reasoning: the answer alone


def test_the_length_filter_counts_the_reasoning_it_trains_on(tmp_path: Path) -> None:
    example = Example(
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "x" * 100
    )
    summary = finish(
        [example], tmp_path / "d.jsonl", filters=Filters(max_chars=50), holdout=0, seed=0,
        with_reasoning=True,
    )  # fmt: skip
    assert summary.kept == 0 and summary.dropped["over 50 chars"] == 1


@pytest.fixture(scope="module")
def v4() -> Iterator[FakeUpstream]:
    with start_upstream(flavor="deepseek-v4") as upstream:
        yield upstream


@pytest.fixture(scope="module")
def gateway(v4: FakeUpstream) -> Iterator[ThriftyServer]:
    """DeepSeek V4 as the only upstream; capture on for every tenant; personal data masked."""
    config = {
        "local": {"enabled": False},
        "privacy": {"on_pii": "mask"},
        "cache": {"enabled": False},
        "distill": {"capture_tenants": ["*"]},
        "store": {"flush_interval_s": 0.05},
    }
    env = {"DEEPSEEK_API_KEY": "sk-test-v4", "DEEPSEEK_BASE_URL": v4.url}
    with ThriftyServer(config=config, env=env) as server:
        yield server


def _collect(gateway: ThriftyServer, *args: str) -> list[dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-m", "thrifty.cli", "distill", "collect", *args],
        capture_output=True,
        text=True,
        env={**gateway.env, "THRIFTY_URL": gateway.base_url},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = Path(args[args.index("--out") + 1])
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def _ask(gateway: ThriftyServer, text: str, stream: bool) -> str:
    """Ask deepseek-reasoner; the request id once its sample is flushed."""
    client = openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0)
    messages = [{"role": "user", "content": text}]
    if stream:
        raw = client.chat.completions.with_raw_response.create(
            model="deepseek-reasoner",
            messages=messages,
            stream=True,  # type: ignore[arg-type]
        )
        for _ in raw.parse():
            pass
    else:
        raw = client.chat.completions.with_raw_response.create(
            model="deepseek-reasoner",
            messages=messages,  # type: ignore[arg-type]
        )
    request_id: str = raw.headers["x-thrifty-request-id"]
    gateway.row(request_id)
    time.sleep(0.3)  # the samples writer flushes on the request log's beat
    return request_id


@pytest.mark.parametrize("stream", [False, True])
def test_captured_reasoning_is_kept_apart_and_masked(gateway: ThriftyServer, stream: bool) -> None:
    text = f"echo:回拨 {PHONE} ({'stream' if stream else 'whole'})"
    request_id = _ask(gateway, text, stream)
    (sample,) = query(gateway.database_url, "SELECT * FROM samples WHERE id = ?", (request_id,))
    said = text.removeprefix("echo:").replace(PHONE, "<PHONE_1>")
    assert sample["answer"] == said  # as the cloud wrote it: placeholders, never the value
    assert sample["reasoning"] == f"Echo {said} back."
    assert sample["masked"] == 1


def test_collect_from_the_log_trains_on_reasoning_only_when_asked(
    gateway: ThriftyServer, tmp_path: Path
) -> None:
    _ask(gateway, "echo:log-me", stream=False)
    args = ["--from-log", "--since", "1d", "--out", str(tmp_path / "plain.jsonl")]
    plain = {r["messages"][-1]["content"] for r in _collect(gateway, *args)}  # type: ignore[index]
    assert "log-me" in plain
    args = [
        "--from-log",
        "--since",
        "1d",
        "--out",
        str(tmp_path / "r.jsonl"),
        "--train-on-reasoning",
    ]
    reasoned = {r["messages"][-1]["content"] for r in _collect(gateway, *args)}  # type: ignore[index]
    assert "<think>\nEcho log-me back.\n</think>\n\nlog-me" in reasoned


@pytest.mark.parametrize("opt_in", [False, True])
def test_collect_from_a_thinking_teacher(
    gateway: ThriftyServer, tmp_path: Path, opt_in: bool
) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "echo:退款"}, ensure_ascii=False) + "\n")
    args = ["--from-prompts", str(prompts), "--teacher", "deepseek-reasoner"]
    args += ["--out", str(tmp_path / "data.jsonl")] + (["--train-on-reasoning"] if opt_in else [])
    (row,) = _collect(gateway, *args)
    answer = row["messages"][-1]["content"]  # type: ignore[index]
    assert answer == ("<think>\nEcho 退款 back.\n</think>\n\n退款" if opt_in else "退款")

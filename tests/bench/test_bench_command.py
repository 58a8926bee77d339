"""`thrifty bench` against real servers on 127.0.0.1: its numbers agree with the server's own.

The fake upstream counts the completion requests it receives and answers each with six tokens,
so the load generator's request count, token count and error count can be checked exactly. A
`thrifty serve --no-local` in front of it adds the route mix (`x-thrifty-route`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fakes.upstream import FakeUpstream, start_upstream
from support import ThriftyServer
from thrifty.cli import main
from thrifty.loadgen import BenchConfig, load_prompts, percentile

FAKE_ANSWER_TOKENS = 6  # "Fake answer to a N-character message."


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with start_upstream() as up:
        yield up


def bench(*args: str) -> tuple[int, dict[str, Any], str]:
    result = CliRunner().invoke(main, ["bench", *args, "--format", "json"])
    try:
        summary = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(result.output) from result.exception
    return result.exit_code, summary, result.output


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_counts_match_the_upstreams(upstream: FakeUpstream, stream: bool) -> None:
    upstream.set_mode("ok")
    upstream.reset()
    args = ["--url", upstream.url, "--concurrency", "4", "--duration", "2s", "--model", "m"]
    code, summary, _ = bench(*args, *(["--stream"] if stream else []))
    assert code == 0
    served = upstream.stats()["requests"]
    assert summary["requests"] == summary["ok"] == served > 0
    assert summary["errors"] == {}
    assert 2.0 <= summary["elapsed_s"] < 2.0 + 5
    assert summary["requests_per_s"] == pytest.approx(served / summary["elapsed_s"], rel=1e-3)
    assert summary["completion_tokens"] == FAKE_ANSWER_TOKENS * served
    assert summary["tokens_per_s"] == pytest.approx(
        FAKE_ANSWER_TOKENS * served / summary["elapsed_s"], rel=1e-3
    )
    assert summary["prompt_tokens"] > 0
    latency = summary["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    if stream:
        ttft = summary["ttft_ms"]
        assert 0 < ttft["p50"] <= ttft["p99"] and ttft["p50"] <= latency["p50"]
        assert upstream.stats()["bodies"][-1]["stream"] is True
    else:
        assert summary["ttft_ms"] is None
    assert summary["routes"] == {}  # not a thrifty gateway


def test_errors_by_status_and_the_request_cap(upstream: FakeUpstream) -> None:
    upstream.set_mode("http500", times=5)
    upstream.reset()
    code, summary, _ = bench(
        "--url", upstream.url, "-n", "2", "--duration", "30s", "--requests", "20"
    )
    assert code == 0
    assert upstream.stats()["requests"] == summary["requests"] == 20
    assert summary["errors"] == {"500": 5}
    assert summary["ok"] == 15
    assert summary["completion_tokens"] == FAKE_ANSWER_TOKENS * 15


def test_nothing_succeeds_exit_1(upstream: FakeUpstream) -> None:
    upstream.set_mode("http429", retry_after=0)
    try:
        code, summary, _ = bench("--url", upstream.url, "--requests", "3", "-n", "1")
    finally:
        upstream.set_mode("ok")
    assert code == 1
    assert summary["errors"] == {"429": 3}


def test_connection_refused_is_an_error_not_a_crash() -> None:
    from support import free_port

    code, summary, _ = bench("--url", f"http://127.0.0.1:{free_port()}/v1", "--requests", "2")
    assert code == 1
    assert summary["errors"] == {"connect": 2}


def test_route_mix_through_a_gateway(upstream: FakeUpstream, tmp_path: Path) -> None:
    config = {
        "upstreams": [
            {"name": "fake", "base_url": upstream.url, "models": {"deepseek-chat": "fake-chat"}}
        ]
    }
    upstream.set_mode("ok")
    with ThriftyServer("--no-local", config=config, home=tmp_path) as gateway:
        upstream.reset()
        args = ["--url", gateway.base_url, "-n", "4", "-d", "2s", "-m", "deepseek-chat"]
        code, summary, _ = bench(*args, "--temperature", "0")
        upstream_served = upstream.stats()["requests"]
        # and once as a person reads it
        table = CliRunner().invoke(main, ["bench", *args, "--requests", "8", "--stream"])
    assert code == 0
    routes = summary["routes"]
    assert set(routes) == {"deepseek-chat", "cache"}
    assert sum(routes.values()) == summary["requests"] == summary["ok"]
    # 8 default prompts at temperature 0: what the cache did not answer reached the upstream
    assert routes["deepseek-chat"] == upstream_served >= 8
    assert routes["cache"] > routes["deepseek-chat"]
    assert table.exit_code == 0, table.output
    for label in ("requests", "throughput", "latency ms", "ttft ms", "tokens", "errors", "routes"):
        assert f"\n{label}" in "\n" + table.output
    assert "deepseek-chat" in table.output


def test_help_and_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    help_text = runner.invoke(main, ["bench", "--help"]).output
    assert "Examples:" in help_text and "--concurrency" in help_text
    bad = runner.invoke(main, ["bench", "--url", "http://x/v1", "--duration", "soon"])
    assert bad.exit_code == 2 and "not a duration" in bad.output
    no_scheme = runner.invoke(main, ["bench", "--url", "127.0.0.1:8000"])
    assert no_scheme.exit_code == 2


def test_prompt_files(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    path.write_text(
        '{"prompt": "one"}\n\n{"messages": [{"role": "user", "content": "two"}]}\nthree\n',
        encoding="utf-8",
    )
    prompts = load_prompts(path)
    assert [p[-1]["content"] for p in prompts] == ["one", "two", "three"]
    path.write_text('{"question": "?"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="messages"):
        load_prompts(path)


def test_endpoint_and_percentiles() -> None:
    assert BenchConfig("http://h/v1/").endpoint == "http://h/v1/chat/completions"
    assert BenchConfig("http://h/v1/chat/completions").endpoint == "http://h/v1/chat/completions"
    assert percentile([3, 1, 2, 4], 0.5) == 2
    assert percentile([3, 1, 2, 4], 0.99) == 4
    assert math.isnan(percentile([], 0.5))

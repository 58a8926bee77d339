"""Training data from a thinking teacher: the reasoning stays out unless asked for."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakes.upstream import FakeUpstream, start_upstream
from support import ThriftyServer
from thrifty.train.collect import Example, Filters, finish


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
    env = {"DEEPSEEK_API_KEY": "sk-test-v4", "DEEPSEEK_BASE_URL": v4.url}
    with ThriftyServer(config={"local": {"enabled": False}}, env=env) as server:
        yield server


@pytest.mark.parametrize("opt_in", [False, True])
def test_collect_from_a_thinking_teacher(
    gateway: ThriftyServer, tmp_path: Path, opt_in: bool
) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "echo:退款"}, ensure_ascii=False) + "\n")
    out = tmp_path / "data.jsonl"
    args = ["--from-prompts", str(prompts), "--teacher", "deepseek-reasoner", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "thrifty.cli", "distill", "collect", *args]
        + (["--train-on-reasoning"] if opt_in else []),
        capture_output=True,
        text=True,
        env={**gateway.env, "THRIFTY_URL": gateway.base_url},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (row,) = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    answer = row["messages"][-1]["content"]
    assert answer == ("<think>\nEcho 退款 back.\n</think>\n\n退款" if opt_in else "退款")

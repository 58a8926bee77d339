"""`thrifty distill collect --from-prompts`: a teacher asked through a real gateway."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakes.upstream import FakeUpstream
from support import ThriftyServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gateway(fake: FakeUpstream) -> Iterator[ThriftyServer]:
    config = {
        "local": {"enabled": False},
        "upstreams": [{"name": "cloud", "base_url": fake.url, "models": {"teacher": "fake-chat"}}],
    }
    with ThriftyServer(config=config) as server:
        yield server


def _collect(gateway: ThriftyServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "thrifty.cli", "distill", "collect", *args],
        capture_output=True,
        text=True,
        env={**gateway.env, "THRIFTY_URL": gateway.base_url},
        timeout=120,
    )


def test_teacher_answers_become_a_deduped_split_training_set(
    fake: FakeUpstream, gateway: ThriftyServer, tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts.jsonl"
    lines = [{"prompt": f"echo:label_{i}"} for i in range(30)]
    lines += [{"prompt": "ECHO:LABEL_3"}, {"prompt": "echo:"}]  # a duplicate; an empty answer
    lines += [{"messages": [{"role": "user", "content": "echo:退款"}]}]
    prompts.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in lines) + "\n")
    fake.reset()
    out = tmp_path / "data.jsonl"
    args = ["--from-prompts", str(prompts), "--teacher", "teacher", "--concurrency", "4"]
    args += ["--system", "Answer with the label.", "--holdout", "0.1", "--seed", "5"]
    done = _collect(gateway, *args, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "read 33, kept 31 (train 28, holdout 3)" in done.stdout
    assert "dropped 1: duplicate prompt" in done.stdout
    assert "dropped 1: empty answer" in done.stdout
    assert fake.stats()["requests"] == 32  # the duplicate was never sent
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    held = [json.loads(line) for line in (tmp_path / "data.holdout.jsonl").read_text().splitlines()]
    for row in rows + held:
        system, user, answer = row["messages"]
        assert system == {"role": "system", "content": "Answer with the label."}
        assert answer["content"] == user["content"].removeprefix("echo:")
    assert {"role": "assistant", "content": "退款"} in [r["messages"][-1] for r in rows + held]

    again = tmp_path / "again.jsonl"
    assert _collect(gateway, *args, "--out", str(again)).returncode == 0
    assert again.read_text() == out.read_text()  # same seed, same split


def test_teacher_failures_are_counted_not_fatal(
    fake: FakeUpstream, gateway: ThriftyServer, tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"echo:q{i}"}) + "\n" for i in range(4)))
    fake.set_mode("http500", times=3)  # the gateway retries twice: one prompt fails for good
    out = tmp_path / "data.jsonl"
    done = _collect(
        gateway, "--from-prompts", str(prompts), "--teacher", "teacher", "--concurrency", "1",
        "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "read 4, kept 3" in done.stdout
    assert "teacher error" in done.stdout

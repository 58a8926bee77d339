"""`thrifty cache clear` against a running server: every worker's in-process cache empties
(`serve --workers 2`), with or without keys; with no server running there is nothing to clear."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from fakes.upstream import FakeUpstream
from support import THRIFTY, ThriftyServer

pytestmark = pytest.mark.slow

QUESTION = {
    "model": "deepseek-chat",
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
    "temperature": 0,
    "max_tokens": 8,
}


def config(upstream: FakeUpstream) -> dict[str, object]:
    return {
        "auth": {"refresh_s": 0.1},
        "upstreams": [
            {"name": "fake", "base_url": upstream.url, "models": {"deepseek-chat": "fake"}}
        ],
    }


def thrifty(server: ThriftyServer, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`thrifty ARGS` with the server's home and config, as its operator runs it."""
    full = {**server.env, **env}
    full["THRIFTY_PORT"] = str(server.port)
    return subprocess.run(
        [*THRIFTY, *args], env=full, capture_output=True, text=True, timeout=60, check=False
    )


def ask_until(server: ThriftyServer, upstream: FakeUpstream, calls: int, **headers: str) -> None:
    """Ask the same question, each time on a new connection, until the upstream has answered
    `calls` times in all: each worker misses once, then answers from its own cache."""
    for _ in range(300):
        if upstream.stats()["requests"] >= calls:
            return
        reply = httpx.post(
            server.base_url + "/chat/completions", json=QUESTION, headers=headers, timeout=30
        )
        assert reply.status_code == 200, reply.text
    raise AssertionError(f"the upstream saw {upstream.stats()['requests']} calls, not {calls}")


def all_cached(server: ThriftyServer, tries: int = 20, **headers: str) -> Callable[[], bool]:
    def check() -> bool:
        return all(
            httpx.post(
                server.base_url + "/chat/completions", json=QUESTION, headers=headers, timeout=30
            ).headers.get("x-thrifty-route")
            == "cache"
            for _ in range(tries)
        )

    return check


def test_clear_reaches_both_workers_of_a_live_server(fake: FakeUpstream) -> None:
    fake.reset()
    with ThriftyServer("--workers", "2", "--no-local", config=config(fake)) as server:
        ask_until(server, fake, 2)  # both workers hold the answer now
        assert all_cached(server)()
        cleared = thrifty(server, "cache", "clear", "-y")
        assert cleared.returncode == 0, cleared.stderr
        assert "in every worker of" in cleared.stdout
        # each worker misses again once: the upstream is asked twice more, and only twice
        ask_until(server, fake, 4)
        assert all_cached(server)()
        assert fake.stats()["requests"] == 4


def test_with_keys_it_needs_an_admin_key(fake: FakeUpstream, tmp_path: Path) -> None:
    fake.reset()
    with ThriftyServer("--no-local", config=config(fake), home=tmp_path) as server:
        made = thrifty(server, "keys", "create", "--tenant", "ops", "--role", "admin")
        admin = made.stdout.strip()
        user = thrifty(server, "keys", "create", "--tenant", "app").stdout.strip()
        bearer = {"authorization": f"Bearer {admin}"}
        ask_until(server, fake, 1, **bearer)
        refused = thrifty(server, "cache", "clear", "-y", THRIFTY_API_KEY=user)
        assert refused.returncode == 1 and "HTTP 403" in refused.stderr
        keyless = thrifty(server, "cache", "clear", "-y")
        assert keyless.returncode == 1 and "--api-key" in keyless.stderr
        assert ".." not in keyless.stderr.replace("sk-...", "")  # one full stop per sentence
        assert all_cached(server, 3, **bearer)()  # nothing was cleared
        cleared = thrifty(server, "cache", "clear", "-y", "--api-key", admin)
        assert cleared.returncode == 0, cleared.stderr
        assert "(1 in the worker that answered" in cleared.stdout
        ask_until(server, fake, 2, **bearer)


def test_offline_there_is_nothing_to_clear(tmp_path: Path) -> None:
    env = {**os.environ, "THRIFTY_HOME": str(tmp_path), "THRIFTY_PORT": "9"}  # nothing there
    done = subprocess.run(
        [*THRIFTY, "cache", "clear", "-y"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "no server answers" in done.stdout and "nothing to clear" in done.stdout

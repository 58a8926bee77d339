"""Shared fixtures: real thrifty servers on 127.0.0.1, started once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.upstream import FakeUpstream, start_upstream
from support import (
    POSTGRES_URL_ENV,
    ThriftyServer,
    fresh_database,
    on_postgres,
    postgres_server,
    redis_server,
)


@pytest.fixture(scope="session", autouse=True)
def postgres() -> Iterator[str | None]:
    """Under THRIFTY_TEST_DB=postgresql: a real PostgreSQL server for the session (its URL)."""
    if not on_postgres():
        yield None
        return
    with postgres_server() as server, pytest.MonkeyPatch.context() as mp:
        mp.setenv(POSTGRES_URL_ENV, server.url)
        yield server.url


@pytest.fixture(autouse=True)
def database_per_test(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL, a fresh database for each test that has a home to give thrifty.

    `Settings`, the CLI and the servers a test starts with its home all read it from
    THRIFTY_DATABASE_URL, as SQLite's thrifty.db would sit in that home.
    """
    if on_postgres() and {"tmp_path", "tmp_path_factory"} & set(request.fixturenames):
        monkeypatch.setenv("THRIFTY_DATABASE_URL", fresh_database())


@pytest.fixture(scope="session")
def cloud() -> Iterator[ThriftyServer]:
    """The stand-in for DeepSeek's API: a second thrifty serving Gemma 3 270M as deepseek-chat."""
    with ThriftyServer("-m", "gemma3-270m", "--alias", "deepseek-chat") as server:
        yield server


@pytest.fixture(scope="session")
def gateway(cloud: ThriftyServer) -> Iterator[ThriftyServer]:
    """thrifty with the bundled local model and `cloud` configured as its deepseek-chat upstream."""
    config = {
        "local": {"parallel": 2, "ctx_size": 1024},
        "upstreams": [
            {
                "name": "deepseek",
                "base_url": cloud.base_url,
                "api_key_env": "TEST_CLOUD_KEY",
                "models": {"deepseek-chat": "deepseek-chat"},
                "timeout_s": 30,
            }
        ],
    }
    with ThriftyServer(config=config, env={"TEST_CLOUD_KEY": "sk-test-cloud-secret"}) as server:
        yield server


@pytest.fixture()
def client(gateway: ThriftyServer):  # type: ignore[no-untyped-def]
    import openai

    return openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    """The fault-injecting fake cloud upstream, one per test module that asks for it."""
    with start_upstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server of its own for each test module that asks for one."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url

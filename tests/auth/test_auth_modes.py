"""auth.mode auto | required | off: when a call needs a key, said at start-up in one line.

In-process (httpx.ASGITransport) with the fake upstream as the only model, so every call that
gets past authentication gets a real 200. The last test runs a real `thrifty serve` and the real
`thrifty keys create` and `thrifty chat --api-key`.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from fakes.upstream import FakeUpstream, start_upstream
from support import THRIFTY, ThriftyServer
from thrifty.api.app import build_app
from thrifty.api.auth import ExposureError
from thrifty.cli import main
from thrifty.config import Settings
from thrifty.store.keys import KeySpec, KeyStore

CHAT = "/v1/chat/completions"
BODY = {"model": "deepseek-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
Steps = Callable[[httpx.AsyncClient, Any], Awaitable[list[httpx.Response]]]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with start_upstream() as up:
        yield up


def settings_for(
    home: Path, upstream: FakeUpstream, mode: str, host: str = "127.0.0.1"
) -> Settings:
    return Settings(
        home=home,
        host=host,
        auth={"mode": mode},
        local={"enabled": False},
        upstreams=[
            {
                "name": "deepseek",
                "base_url": upstream.url,
                "models": {"deepseek-chat": "deepseek-chat"},
                "max_retries": 0,
            }
        ],
        store={"flush_interval_s": 0.01},
    )


def serve(settings: Settings, steps: Steps) -> list[httpx.Response]:
    app = build_app(settings)

    async def go() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await steps(client, app.state.runtime)

    return asyncio.run(go())


def make_key(settings: Settings, role: str = "user") -> tuple[str, str]:
    settings.home.mkdir(parents=True, exist_ok=True)
    with KeyStore(settings.database_url) as store:
        record, secret = store.create(KeySpec("acme", role=role), "cli:test")  # type: ignore[arg-type]
    return record.id, secret


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


def test_auto_opens_until_the_first_key_and_revoking_does_not_reopen(
    tmp_path: Path, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="thrifty")
    settings = settings_for(tmp_path, upstream, "auto")

    async def steps(client: httpx.AsyncClient, rt: Any) -> list[httpx.Response]:
        before = await client.post(CHAT, json=BODY)
        key_id, secret = make_key(settings)  # as `thrifty keys create` does, from elsewhere
        rt.auth.reload()
        without = await client.post(CHAT, json=BODY)
        with_key = await client.post(CHAT, json=BODY, headers=bearer(secret))
        with KeyStore(settings.database_url) as store:
            store.revoke(key_id, "cli:test")
        rt.auth.reload()
        after_revoke = await client.post(CHAT, json=BODY)
        return [before, without, with_key, after_revoke]

    with pytest.raises(ExposureError, match="without API keys"):  # before any key exists
        serve(settings_for(tmp_path, upstream, "auto", "0.0.0.0"), steps)
    before, without, with_key, after_revoke = serve(settings, steps)
    assert before.status_code == 200
    assert without.status_code == 401 and with_key.status_code == 200
    assert after_revoke.status_code == 401  # the last key revoked: still closed
    starts = [r.getMessage() for r in caplog.records if r.getMessage().startswith("auth.mode")]
    assert starts[0].startswith("auth.mode auto: no API keys: accepting unauthenticated calls")
    assert any("the first API key exists" in line for line in starts)


def test_required_needs_a_key_from_the_start_on_any_address(
    tmp_path: Path, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="thrifty")
    settings = settings_for(tmp_path, upstream, "required", "0.0.0.0")

    async def steps(client: httpx.AsyncClient, rt: Any) -> list[httpx.Response]:
        none_yet = await client.post(CHAT, json=BODY)
        _, secret = make_key(settings)
        rt.auth.reload()
        return [
            none_yet,
            await client.post(CHAT, json=BODY),
            await client.post(CHAT, json=BODY, headers=bearer(secret)),
        ]

    none_yet, without, with_key = serve(settings, steps)
    assert none_yet.status_code == 401
    message = none_yet.json()["error"]["message"]
    assert "auth.mode: required" in message and "thrifty keys create" in message
    assert without.status_code == 401 and with_key.status_code == 200
    assert "auth.mode required: every call needs an API key (0 active)" in caplog.text


def test_off_needs_no_key_but_admin_does_and_is_loopback_only(
    tmp_path: Path, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="thrifty")
    settings = settings_for(tmp_path, upstream, "off")
    _, admin = make_key(settings, role="admin")

    async def steps(client: httpx.AsyncClient, rt: Any) -> list[httpx.Response]:
        return [
            await client.post(CHAT, json=BODY),
            await client.post(CHAT, json=BODY, headers=bearer("sk-not-a-key")),
            await client.get("/admin/keys"),
            await client.get("/admin/keys", headers=bearer(admin)),
        ]

    plain, any_key, admin_without, admin_with = serve(settings, steps)
    assert plain.status_code == 200 and any_key.status_code == 200
    assert admin_without.status_code == 401 and admin_with.status_code == 200
    assert "auth.mode off: accepting unauthenticated calls on loopback 127.0.0.1" in caplog.text
    with pytest.raises(ExposureError, match=r"auth\.mode off"):
        serve(settings_for(tmp_path, upstream, "off", "0.0.0.0"), steps)


@pytest.mark.parametrize(
    ("mode", "first", "second"),
    [
        ("auto", "This is the first key", "Every call already needs a key"),
        ("required", "accept it within", "accept it within"),
        ("off", "auth.mode is off", "auth.mode is off"),
    ],
)
def test_keys_create_says_what_it_changes(
    tmp_path: Path, mode: str, first: str, second: str
) -> None:
    env = {"THRIFTY_HOME": str(tmp_path), "THRIFTY_AUTH__MODE": mode}
    runner = CliRunner()
    one = runner.invoke(main, ["keys", "create", "--tenant", "a"], env=env)
    two = runner.invoke(main, ["keys", "create", "--tenant", "b"], env=env)
    assert one.exit_code == 0 and two.exit_code == 0, one.output + two.output
    assert first in one.stderr and second in two.stderr
    assert one.stdout.strip().startswith("sk-")  # the secret alone on stdout, for scripts


def test_chat_api_key_against_a_real_server(tmp_path: Path, upstream: FakeUpstream) -> None:
    config = {
        "auth": {"refresh_s": 0.1},
        "upstreams": [
            {"name": "deepseek", "base_url": upstream.url, "models": {"deepseek-chat": "x"}}
        ],
    }
    with ThriftyServer("--no-local", config=config, home=tmp_path) as server:
        env = {**server.env, "THRIFTY_URL": server.base_url}
        env.pop("THRIFTY_API_KEY", None)
        env.pop("OPENAI_API_KEY", None)

        def chat(
            *args: str, extra: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*THRIFTY, "chat", "-m", "deepseek-chat", *args, "hi"],
                env={**env, **(extra or {})},
                capture_output=True,
                text=True,
                timeout=60,
            )

        assert chat().returncode == 0  # no keys yet: open on loopback
        made = subprocess.run(
            [*THRIFTY, "keys", "create", "--tenant", "me"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        secret = made.stdout.strip()
        refused = _until(lambda: chat(), lambda r: r.returncode != 0)
        assert "HTTP 401" in refused.stderr and "--api-key" in refused.stderr
        answered = chat("--api-key", secret)
        assert answered.returncode == 0 and "Fake answer" in answered.stdout, answered.stderr
        from_env = chat(extra={"THRIFTY_API_KEY": secret})
        assert from_env.returncode == 0 and "Fake answer" in from_env.stdout


def _until(
    run: Callable[[], subprocess.CompletedProcess[str]],
    done: Callable[[subprocess.CompletedProcess[str]], bool],
    tries: int = 50,
) -> subprocess.CompletedProcess[str]:
    """The gateway sees a key made by another process within auth.refresh_s: poll for it."""
    for _ in range(tries):
        result = run()
        if done(result):
            return result
    return result

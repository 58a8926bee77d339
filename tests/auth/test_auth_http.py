"""Authentication and authorization over HTTP, in-process (httpx.ASGITransport).

The "cloud" is the fake upstream (a real HTTP server on 127.0.0.1), so valid keys get real 200s:
`deepseek-chat` and `cheap-chat` are two upstream aliases on it, and `auto` routes to
deepseek-chat first, cheap-chat second. No local model: every outcome here is decided before one
would be needed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from click.testing import CliRunner

from fakes.upstream import FakeUpstream, start_upstream
from support import dump, query
from thrifty.api.app import build_app
from thrifty.api.auth import ExposureError
from thrifty.cli import main
from thrifty.config import Settings
from thrifty.store.audit import verify
from thrifty.store.db import connect
from thrifty.store.keys import KeySpec, KeyStore, new_secret

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]
T = TypeVar("T")
Steps = Callable[[httpx.AsyncClient], Awaitable[T]]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with start_upstream() as up:
        yield up


@pytest.fixture()
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstream: FakeUpstream) -> Settings:
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    monkeypatch.delenv("THRIFTY_CONFIG", raising=False)
    upstream.set_mode("ok")
    return Settings(
        home=tmp_path,
        local={"enabled": False},
        upstreams=[
            {
                "name": "deepseek",
                "base_url": upstream.url,
                "models": {"deepseek-chat": "deepseek-chat"},
                "max_retries": 0,
                "timeout_s": 5,
            },
            {
                "name": "cheap",
                "base_url": upstream.url,
                "models": {"cheap-chat": "cheap"},
                "max_retries": 0,
                "timeout_s": 5,
            },
        ],
        router={"rules": [{"name": "default", "target": ["deepseek-chat", "cheap-chat"]}]},
        store={"flush_interval_s": 0.01},
    )


def make_key(settings: Settings, tenant: str = "acme", **spec: Any) -> tuple[str, str]:
    """A key made the way the CLI makes it: (key id, secret)."""
    settings.home.mkdir(parents=True, exist_ok=True)
    with KeyStore(settings.database_url) as store:
        record, secret = store.create(KeySpec(tenant, **spec), "cli:test")
    return record.id, secret


def serve(settings: Settings, steps: Steps[T]) -> T:
    """Run `steps` against a fresh app, inside its lifespan; the logs are flushed after."""
    app = build_app(settings)

    async def go() -> T:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                result = await steps(client)
            rt = app.state.runtime
            rt.request_log.flush()
            rt.audit.flush()
            return result

    return asyncio.run(go())


def auth(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


def chat(model: str = "deepseek-chat", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": HI, "max_tokens": 5, **extra}


def rows(settings: Settings, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return [tuple(row.values()) for row in query(settings.database_url, sql, params)]


# -- 401 --------------------------------------------------------------------------------------


def test_missing_wrong_revoked_and_expired_keys_get_401(settings: Settings) -> None:
    _, good = make_key(settings)
    revoked_id, revoked = make_key(settings)
    with KeyStore(settings.database_url) as store:
        store.revoke(revoked_id, "cli:test")
    _, expired = make_key(settings, expires_at=time.time() - 1)
    cases = {
        "missing": ({}, "didn't provide an API key"),
        "wrong": (auth(new_secret()), "Incorrect API key provided."),
        "not bearer": ({"authorization": f"Basic {good}"}, "Incorrect API key provided."),
        "revoked": (auth(revoked), "This API key has been revoked."),
        "expired": (auth(expired), "This API key has expired."),
        "azure wrong": ({"api-key": new_secret()}, "Incorrect API key provided."),
    }

    async def steps(client: httpx.AsyncClient) -> list[tuple[str, httpx.Response, str]]:
        out = []
        for name, (headers, message) in cases.items():
            out.append((name, await client.post(CHAT, json=chat(), headers=headers), message))
            out.append(
                (
                    name,
                    await client.post(
                        "/v1/completions",
                        json={"model": "deepseek-chat", "prompt": "hi"},
                        headers=headers,
                    ),
                    message,
                )
            )
            out.append((name, await client.get("/v1/models", headers=headers), message))
        return out

    for name, response, message in serve(settings, steps):
        assert response.status_code == 401, (name, response.text)
        assert response.json() == {
            "error": {
                "message": response.json()["error"]["message"],
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        }
        assert message in response.json()["error"]["message"], name
        assert response.headers["www-authenticate"].startswith("Bearer")
    logged = rows(settings, "SELECT status, error_code, key_id, tenant FROM requests")
    assert len(logged) == 2 * len(cases)  # chat and completions; /v1/models is not a request
    assert set(logged) == {(401, "invalid_api_key", None, "default")}


def test_a_401_comes_before_validation(settings: Settings) -> None:
    make_key(settings)

    async def steps(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post(CHAT, content=b"{not json")

    assert serve(settings, steps).status_code == 401


# -- 200 and who it is logged as --------------------------------------------------------------


def test_a_valid_key_is_answered_and_logged_as_its_tenant(settings: Settings) -> None:
    key_id, secret = make_key(settings, tenant="acme")

    async def steps(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [
            await client.post(CHAT, json=chat(), headers=auth(secret)),
            await client.post(CHAT, json=chat(), headers={"api-key": secret}),  # Azure's header
            await client.get("/v1/models", headers=auth(secret)),
        ]

    answers = serve(settings, steps)
    assert [r.status_code for r in answers] == [200, 200, 200], answers[0].text
    assert answers[0].headers["x-thrifty-route"] == "deepseek-chat"
    logged = rows(settings, "SELECT tenant, key_id, status FROM requests")
    assert logged == [("acme", key_id, 200)] * 2
    audited = rows(
        settings,
        "SELECT actor, tenant, model, route, status, prompt_tokens > 0 FROM audit_log "
        "WHERE action = 'request'",
    )
    assert audited == [(key_id, "acme", "deepseek-chat", "deepseek-chat", 200, 1)] * 2


# -- 403 --------------------------------------------------------------------------------------


def test_a_key_limited_to_local_gets_403_for_deepseek_chat(settings: Settings) -> None:
    key_id, secret = make_key(settings, models=("local",))

    async def steps(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post(CHAT, json=chat("deepseek-chat"), headers=auth(secret))

    response = serve(settings, steps)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "permission_denied" and error["param"] == "model"
    assert "may not use the model `deepseek-chat`" in error["message"]
    assert "local" in error["message"]
    logged = rows(settings, "SELECT key_id, status, error_code FROM requests")
    assert logged == [(key_id, 403, "permission_denied")]


def test_auto_is_narrowed_to_the_places_a_key_may_use(settings: Settings) -> None:
    _, anywhere = make_key(settings)
    _, cheap_only = make_key(settings, models=("cheap-chat",))
    _, local_only = make_key(settings, models=("local",))

    async def steps(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [
            await client.post(CHAT, json=chat("auto"), headers=auth(anywhere)),
            await client.post(CHAT, json=chat("auto"), headers=auth(cheap_only)),
            await client.post(CHAT, json=chat("cheap-chat"), headers=auth(cheap_only)),
            await client.post(CHAT, json=chat("auto"), headers=auth(local_only)),
            await client.post(CHAT, json=chat("gpt-9"), headers=auth(local_only)),
        ]

    first, narrowed, named, refused, unknown = serve(settings, steps)
    assert first.headers["x-thrifty-route"] == "deepseek-chat"
    assert narrowed.status_code == 200 and narrowed.headers["x-thrifty-route"] == "cheap-chat"
    assert named.status_code == 200 and named.headers["x-thrifty-route"] == "cheap-chat"
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
    assert unknown.status_code == 404  # an unknown model is still a 404, whatever the key


def test_a_viewer_may_not_call_models(settings: Settings) -> None:
    _, viewer = make_key(settings, role="viewer")

    async def steps(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [
            await client.post(CHAT, json=chat(), headers=auth(viewer)),
            await client.post(CHAT, json=chat(stream=True), headers=auth(viewer)),
            await client.get("/v1/models", headers=auth(viewer)),
        ]

    call, stream, listing = serve(settings, steps)
    for response in (call, stream):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"
        assert "viewer" in response.json()["error"]["message"]
    assert listing.status_code == 200


# -- admin endpoints --------------------------------------------------------------------------


def test_user_and_viewer_get_403_on_admin_endpoints(settings: Settings) -> None:
    admin_id, admin = make_key(settings, role="admin")
    user_id, user = make_key(settings, role="user")
    _, viewer = make_key(settings, role="viewer")
    new = {"tenant": "acme"}

    async def steps(client: httpx.AsyncClient) -> list[tuple[str, httpx.Response]]:
        out = []
        for who, secret in (("user", user), ("viewer", viewer), ("nobody", None)):
            headers = auth(secret) if secret else {}
            out.append((who, await client.get("/admin/keys", headers=headers)))
            out.append((who, await client.post("/admin/keys", json=new, headers=headers)))
            out.append((who, await client.delete(f"/admin/keys/{admin_id}", headers=headers)))
        out.append(("admin", await client.get("/admin/keys", headers=auth(admin))))
        return out

    for who, response in serve(settings, steps):
        expected = {"user": 403, "viewer": 403, "nobody": 401, "admin": 200}[who]
        assert response.status_code == expected, (who, response.text)
        if expected == 403:
            assert response.json()["error"]["code"] == "permission_denied"
    with KeyStore(settings.database_url) as store:
        assert store.count() == 3 and all(r.revoked_at is None for r in store.records())
    denied = rows(settings, "SELECT actor, status FROM audit_log WHERE action = 'admin.denied'")
    assert len(denied) == 9 and (user_id, 403) in denied and (None, 401) in denied


def test_admin_creates_lists_and_revokes_keys(settings: Settings) -> None:
    admin_id, admin = make_key(settings, role="admin")
    body = {
        "tenant": "globex",
        "role": "user",
        "models": ["cheap-chat"],
        "rpm": 60,
        "daily_usd": 5,
        "expires": "30d",
        "tags": ["ci"],
    }

    async def steps(client: httpx.AsyncClient) -> dict[str, Any]:
        made = await client.post("/admin/keys", json=body, headers=auth(admin))
        assert made.status_code == 201, made.text
        assert made.headers["cache-control"] == "no-store"
        key = made.json()
        secret = key["secret"]
        used = await client.post(CHAT, json=chat("cheap-chat"), headers=auth(secret))
        listed = await client.get("/admin/keys", headers=auth(admin))
        gone = await client.delete(f"/admin/keys/{key['id']}", headers=auth(admin))
        after = await client.post(CHAT, json=chat("cheap-chat"), headers=auth(secret))
        missing = await client.delete("/admin/keys/key_nope", headers=auth(admin))
        bad = [
            await client.post("/admin/keys", json=b, headers=auth(admin))
            for b in (
                {"tenant": "x", "role": "root"},
                {"tenant": "x", "models": ["gpt-9"]},
                {"tenant": "x", "colour": "blue"},
                {"tenant": "x", "expires": "soon"},
                {"role": "user"},
            )
        ]
        return {
            "key": key,
            "used": used,
            "listed": listed,
            "gone": gone,
            "after": after,
            "missing": missing,
            "bad": bad,
        }

    r = serve(settings, steps)
    key = r["key"]
    assert key["secret"].startswith("sk-") and key["id"].startswith("key_")
    assert (key["tenant"], key["role"], key["rpm"]) == ("globex", "user", 60)
    assert key["models"] == ["cheap-chat"] and key["tags"] == ["ci"]
    assert key["daily_usd"] == "5.000000000" and key["status"] == "active"
    assert r["used"].status_code == 200  # usable at once: no waiting for a refresh
    listed = r["listed"].json()["data"]
    assert {k["id"] for k in listed} == {admin_id, key["id"]}
    assert all("secret" not in k and "secret_hash" not in k for k in listed)
    assert key["secret"] not in r["listed"].text
    assert r["gone"].status_code == 200 and r["gone"].json()["status"] == "revoked"
    assert r["after"].status_code == 401  # refused at once
    assert r["missing"].status_code == 404
    assert [b.status_code for b in r["bad"]] == [400] * 5
    assert r["bad"][1].json()["error"]["param"] == "models"
    changes = rows(settings, "SELECT action, actor FROM audit_log WHERE action LIKE 'key.%'")
    assert changes == [
        ("key.create", "cli:test"),
        ("key.create", admin_id),
        ("key.revoke", admin_id),
    ]


# -- no keys ----------------------------------------------------------------------------------


def test_without_keys_loopback_serves_unauthenticated_and_says_so(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="thrifty")

    async def steps(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [
            await client.post(CHAT, json=chat()),
            await client.post(CHAT, json=chat(), headers=auth("sk-whatever")),
            await client.get("/admin/keys"),
        ]

    plain, with_any_key, admin = serve(settings, steps)
    assert plain.status_code == 200 and with_any_key.status_code == 200
    assert admin.status_code == 401 and "none exist yet" in admin.json()["error"]["message"]
    assert "no API keys: accepting unauthenticated calls on loopback 127.0.0.1" in caplog.text


def test_without_keys_a_public_address_refuses_to_start(settings: Settings, tmp_path: Path) -> None:
    exposed = settings.model_copy(update={"host": "0.0.0.0"})

    async def steps(client: httpx.AsyncClient) -> None:
        raise AssertionError("the app must not start")

    with pytest.raises(ExposureError, match=r"refusing to serve on 0\.0\.0\.0 without API keys"):
        serve(exposed, steps)
    result = CliRunner().invoke(
        main, ["serve", "--host", "0.0.0.0", "--no-local", "--home", str(tmp_path / "cli")]
    )
    assert result.exit_code == 1
    assert "refusing to serve on 0.0.0.0 without API keys" in result.output
    assert "thrifty keys create" in result.output


# -- the CLI ----------------------------------------------------------------------------------


def test_keys_cli_create_list_revoke(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THRIFTY_HOME", str(settings.home))
    monkeypatch.chdir(settings.home)
    runner = CliRunner()
    made = runner.invoke(
        main,
        [
            *("keys", "create", "--tenant", "acme", "--rpm", "60", "--tpm", "100000"),
            *("--daily-usd", "5", "--models", "local,deepseek-chat", "--expires", "30d"),
            *("--tag", "ci", "--tag", "team-a"),
        ],
    )
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip()
    assert secret.startswith("sk-") and "\n" not in secret  # stdout: the secret alone
    assert "shown only now" in made.stderr
    key_id = made.stderr.split(":")[0]
    listed = runner.invoke(main, ["keys", "list"])
    assert key_id in listed.output and "local,deepseek-chat" in listed.output
    assert "rpm=60 tpm=100000 daily_usd=5.000000000" in listed.output
    assert secret not in listed.output and "active" in listed.output
    as_json = runner.invoke(main, ["keys", "list", "--json"])
    assert '"tags":["ci","team-a"]' in as_json.output and secret not in as_json.output
    bad = runner.invoke(main, ["keys", "create", "--tenant", "acme", "--expires", "soon"])
    assert bad.exit_code == 2 and "bad expiry" in bad.output
    revoked = runner.invoke(main, ["keys", "revoke", key_id])
    assert revoked.exit_code == 0 and f"revoked {key_id}" in revoked.output
    again = runner.invoke(main, ["keys", "revoke", key_id])
    assert again.exit_code == 0 and "already revoked" in again.output
    assert runner.invoke(main, ["keys", "revoke", "key_nope"]).exit_code == 1
    assert "revoked" in runner.invoke(main, ["keys", "list"]).output
    verified = runner.invoke(main, ["audit", "verify"])
    assert verified.exit_code == 0 and "ok: 2 rows" in verified.output


# -- secrets stay secret ----------------------------------------------------------------------


def test_a_secret_never_appears_in_logs_request_log_errors_or_metrics(
    settings: Settings, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _, admin = make_key(settings, role="admin")
    _, viewer = make_key(settings, role="viewer")
    expired_id, expired = make_key(settings, expires_at=time.time() - 1)
    wrong = new_secret()
    prompt = "my very private prompt text"
    seen: list[str] = []  # every response a client saw, but the one that hands out a secret

    async def steps(client: httpx.AsyncClient) -> str:
        async def see(response: Awaitable[httpx.Response]) -> httpx.Response:
            r = await response
            seen.append(f"{r.status_code} {r.headers} {r.text}")
            return r

        made = await client.post("/admin/keys", json={"tenant": "acme"}, headers=auth(admin))
        user_id, user = made.json()["id"], made.json()["secret"]
        body = {"model": "deepseek-chat", "messages": [{"role": "user", "content": prompt}]}
        for secret in (user, admin):
            await see(client.post(CHAT, json=body, headers=auth(secret)))
            await see(client.post(CHAT, json={**body, "stream": True}, headers=auth(secret)))
            await see(client.post(CHAT, json={**body, "model": "gpt-9"}, headers=auth(secret)))
            await see(client.post(CHAT, json={"messages": []}, headers=auth(secret)))
            await see(client.post(CHAT, content=b"{oops", headers=auth(secret)))
            upstream.set_mode("http500", times=1)
            await see(client.post(CHAT, json=body, headers=auth(secret)))
            await see(client.get("/v1/models", headers=auth(secret)))
        await see(client.post(CHAT, json=body, headers=auth(viewer)))
        await see(client.post(CHAT, json=body, headers=auth(wrong)))
        await see(client.post(CHAT, json=body, headers={"api-key": expired}))
        await see(client.get("/admin/keys", headers=auth(user)))
        await see(client.get("/admin/keys", headers=auth(wrong)))
        await see(client.delete(f"/admin/keys/{user_id}", headers=auth(admin)))
        await see(client.post(CHAT, json=body, headers=auth(user)))  # revoked
        await see(client.delete(f"/admin/keys/{expired_id}", headers=auth(viewer)))
        await see(client.get("/admin/keys", headers=auth(admin)))
        metrics = await see(client.get("/metrics"))
        assert "thrifty_requests" in metrics.text
        return user

    user = serve(settings, steps)
    statuses = [int(s.split()[0]) for s in seen]
    assert {200, 400, 401, 403, 404, 502} <= set(statuses), statuses
    with connect(settings.database_url) as conn:
        assert verify(conn).ok
    stored = dump(settings.database_url)
    # SQLite: the files too, free pages and WAL included
    raw = b"".join(p.read_bytes() for p in settings.home.glob("thrifty.db*"))
    for secret in (user, admin, viewer, expired, wrong):
        for where, text in (
            ("the logs", caplog.text),
            ("a response", "\n".join(seen)),
            ("the database", stored),
        ):
            assert secret not in text, f"a secret is in {where}"
            assert secret[3:] not in text, f"part of a secret is in {where}"
        assert secret.encode() not in raw
    assert prompt not in stored  # the audit log and the request log keep no prompts
    assert "api_keys" in stored and "audit_log" in stored


def test_usage_is_scoped_to_the_callers_tenant(settings: Settings) -> None:
    _, acme = make_key(settings, "acme", role="user")
    _, other = make_key(settings, "globex", role="user")
    _, admin = make_key(settings, "ops", role="admin")

    async def steps(client: httpx.AsyncClient) -> dict[str, Any]:
        for secret in (acme, acme, other):
            ok = await client.post(
                CHAT, json={"model": "deepseek-chat", "messages": HI},
                headers={"authorization": f"Bearer {secret}"},
            )  # fmt: skip
            assert ok.status_code == 200
        seen = {}
        for name, secret in (("acme", acme), ("globex", other), ("admin", admin)):
            got = await client.get(
                "/v1/usage?by=tenant", headers={"authorization": f"Bearer {secret}"}
            )
            assert got.status_code == 200
            seen[name] = got.json()
        return seen

    seen = serve(settings, steps)
    assert seen["acme"]["total"]["requests"] == 2
    assert seen["globex"]["total"]["requests"] == 1
    assert [row["key"] for row in seen["acme"]["rows"]] == ["acme"]
    assert {row["key"] for row in seen["admin"]["rows"]} >= {"acme", "globex"}

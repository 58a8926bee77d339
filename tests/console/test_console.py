"""`/console` end to end: a real `thrifty serve`, a real headless Chromium, numbers from the store.

Chromium is Debian's `chromium` package (`make services` installs it), driven by its own
`--headless --dump-dom` / `--screenshot`; nothing downloads a browser.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from fakes.upstream import FakeUpstream
from support import ThriftyServer
from thrifty.store.keys import KeySpec, KeyStore

# screenshots, kept after the run (ignored by git; the README shows copies in docs/)
ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "console"


def _config(fake_local: FakeUpstream, fake_cloud: FakeUpstream) -> dict[str, Any]:
    return {
        "local": {"url": fake_local.url, "system_prompt": None},
        "upstreams": [
            {
                "name": "deepseek",
                "base_url": fake_cloud.url,
                "models": {"deepseek-chat": "deepseek-chat"},  # priced by the shipped table
            }
        ],
        "auth": {"refresh_s": 0.2},
    }


def _ask(server: ThriftyServer, model: str, text: str, key: str | None = None) -> None:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    body = {"model": model, "messages": [{"role": "user", "content": text}], "temperature": 0}
    response = httpx.post(
        server.base_url + "/chat/completions", json=body, headers=headers, timeout=30
    )
    assert response.status_code == 200, response.text


def _expected(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The overview's numbers, summed straight from the request log's rows."""
    priced = [r for r in rows if r["cost_nanos"] is not None and r["baseline_nanos"] is not None]
    return {
        "requests": len(rows),
        "cost": sum(r["cost_nanos"] or 0 for r in rows),
        "baseline": sum(r["baseline_nanos"] or 0 for r in rows),
        "saving": sum(r["baseline_nanos"] - r["cost_nanos"] for r in priced),
        "hits": sum(r["route"] == "cache" for r in rows),
    }


def _text(page: str, ident: str) -> str:
    match = re.search(rf"id=[\"']?{ident}[\"']?>([^<]*)<", page)
    assert match, f"no #{ident} in the page"
    return match.group(1)


def _nanos(text: str) -> int:
    return int(Decimal(text.replace("$", "")) * 10**9)


def _check_numbers(page: str, rows: list[dict[str, Any]]) -> None:
    want = _expected(rows)
    assert int(_text(page, "requests")) == want["requests"]
    assert _nanos(_text(page, "cost")) == want["cost"]
    assert _nanos(_text(page, "baseline")) == want["baseline"]
    if want["saving"] >= 0:
        assert _nanos(_text(page, "saving")) == want["saving"]
        assert "id=extra-cost" not in page.replace('"', "")
    else:  # never shown as "saved"
        assert _nanos(_text(page, "extra-cost")) == -want["saving"]
    assert _text(page, "hit-rate") == f"{want['hits'] / want['requests']:.1%}"
    for route in {r["route"] for r in rows}:
        count = sum(r["route"] == route for r in rows)
        q = "[\"']?"  # the server writes single quotes, Chromium's DOM double ones
        assert re.search(rf"data-route={q}{re.escape(route)}{q}><td>[^<]*</td>"
                         rf"<td class={q}requests{q}>{count}<", page), route  # fmt: skip


def _chromium(*args: str, profile: Path) -> str:
    binary = shutil.which("chromium")
    assert binary, "Debian's chromium is needed: `make services` (apt-get install chromium)"
    result = subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    # the page has no script; a console message would be a CSP violation or a broken resource
    assert "CONSOLE" not in result.stderr, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def open_gateway(fake_local: FakeUpstream, fake_cloud: FakeUpstream) -> Iterator[ThriftyServer]:
    """No keys, loopback: the console answers without a login, as the API does."""
    with ThriftyServer(config=_config(fake_local, fake_cloud)) as server:
        _ask(server, "local", "echo:one")
        _ask(server, "local", "echo:两个")
        _ask(server, "deepseek-chat", "echo:cloud question")
        _ask(server, "deepseek-chat", "echo:cloud question")  # a cache hit
        yield server


def test_overview_in_chromium_matches_the_store(
    open_gateway: ThriftyServer, tmp_path: Path
) -> None:
    rows = open_gateway.wait_rows("1=1")
    while len(rows) < 4:
        rows = open_gateway.wait_rows("1=1")
    url = open_gateway.url + "/console?since=1d"
    page = _chromium("--dump-dom", url, profile=tmp_path / "p1")
    assert "<svg" in page and 'id="route-chart"' in page and 'id="cost-chart"' in page
    _check_numbers(page, rows)
    zh = _chromium("--dump-dom", url + "&lang=zh", profile=tmp_path / "p2")
    assert "概览" in zh and "缓存命中率" in zh and 'lang="zh-CN"' in zh
    _check_numbers(zh, rows)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name, target in (("overview", url), ("overview-zh", url + "&lang=zh")):
        shot = ARTIFACTS / f"{name}.png"
        _chromium(f"--screenshot={shot}", "--window-size=1000,1200", target,
                  profile=tmp_path / name)  # fmt: skip
        assert shot.stat().st_size > 10_000  # a rendered page, not a blank one


@pytest.fixture(scope="module")
def keyed(
    fake_local: FakeUpstream, fake_cloud: FakeUpstream
) -> Iterator[tuple[ThriftyServer, dict[str, str]]]:
    server = ThriftyServer(config=_config(fake_local, fake_cloud))
    server.home.mkdir(parents=True, exist_ok=True)
    secrets = {}
    with KeyStore(server.database_url) as store:
        for name, tenant, role in (
            ("admin", "acme", "admin"),
            ("acme", "acme", "user"),
            ("beta", "beta", "user"),
            ("viewer", "beta", "viewer"),
        ):
            spec = KeySpec(tenant, role=role)  # type: ignore[arg-type]
            secrets[name] = store.create(spec, "cli:test")[1]
    with server:
        _ask(server, "local", "echo:acme asks", secrets["acme"])
        _ask(server, "deepseek-chat", "echo:acme asks the cloud", secrets["acme"])
        _ask(server, "local", "echo:beta asks", secrets["beta"])
        yield server, secrets


def _login(server: ThriftyServer, secret: str, **headers: str) -> httpx.Response:
    return httpx.post(
        server.url + "/console/login", data={"api_key": secret}, headers=headers, timeout=30
    )


def test_no_page_without_a_key(keyed: tuple[ThriftyServer, dict[str, str]]) -> None:
    server, _ = keyed
    for path in ("/console", "/console?lang=zh", "/console?since=30d"):
        response = httpx.get(server.url + path, timeout=30)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/console/login")
    forged = httpx.get(server.url + "/console", cookies={"thrifty_console": "key_x.9999999999.ab"})
    assert forged.status_code == 303
    assert _login(server, "sk-wrong").status_code == 401


def test_login_cookie_and_tenants(keyed: tuple[ThriftyServer, dict[str, str]]) -> None:
    server, secrets = keyed
    response = _login(server, secrets["admin"])
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/console"} <= flags
    assert secrets["admin"] not in cookie  # the session names the key, never holds its secret
    session = response.cookies["thrifty_console"]
    all_rows = server.wait_rows("1=1")
    page = httpx.get(server.url + "/console?since=1d", cookies={"thrifty_console": session}).text
    assert _text(page, "tenant") == "all tenants"
    _check_numbers(page, all_rows)

    viewer = _login(server, secrets["viewer"]).cookies["thrifty_console"]
    page = httpx.get(server.url + "/console?since=1d", cookies={"thrifty_console": viewer}).text
    assert _text(page, "tenant") == "beta"  # a viewer sees its own tenant only
    _check_numbers(page, [r for r in all_rows if r["tenant"] == "beta"])
    tampered = session.replace(session.split(".")[0], "key_other")
    response = httpx.get(server.url + "/console", cookies={"thrifty_console": tampered})
    assert response.status_code == 303


def test_cross_site_posts_are_refused(keyed: tuple[ThriftyServer, dict[str, str]]) -> None:
    server, secrets = keyed
    assert _login(server, secrets["admin"], origin="http://evil.example").status_code == 403
    assert _login(server, secrets["admin"], **{"sec-fetch-site": "cross-site"}).status_code == 403
    session = _login(server, secrets["admin"]).cookies["thrifty_console"]
    logout = httpx.post(
        server.url + "/console/logout",
        cookies={"thrifty_console": session},
        headers={"origin": "http://evil.example"},
    )
    assert logout.status_code == 403
    same_site = httpx.post(
        server.url + "/console/logout",
        cookies={"thrifty_console": session},
        headers={"origin": server.url},
    )
    assert same_site.status_code == 303
    assert "thrifty_console=" in same_site.headers["set-cookie"]  # cleared

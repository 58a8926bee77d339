"""Every console page in a real headless Chromium: Debian's `chromium` package (`make services`
installs it) driven by Playwright pointed at that binary; nothing downloads a browser.

One browser for the module. Each page is checked against the store, with no message on the
browser's console; screenshots go to $THRIFTY_ARTIFACTS (default build/console, ignored by git;
the README shows copies kept in docs/).
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from console.known import Gateway, ask
from console.numbers import check_overview, text
from thrifty.store.review import ReviewStore

ARTIFACTS = (
    Path(os.environ.get("THRIFTY_ARTIFACTS") or Path(__file__).resolve().parents[2] / "build")
    / "console"
)
PAGES = {
    "overview": ("", "概览"),
    "routing": ("/routing", "按规则与原因的路由决策"),
    "models": ("/models", "本地模型"),
    "tenants": ("/tenants", "租户"),
    "evals": ("/evals", "评测运行"),
    "privacy": ("/privacy", "携带个人数据的请求"),
    "autopilot": ("/autopilot", "运行记录"),
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    binary = shutil.which("chromium")
    assert binary, "Debian's chromium is needed: `make services` (apt-get install chromium)"
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=binary, args=["--no-sandbox"])
        yield chromium
        chromium.close()


class Tab:
    """A browser context and page that remember every console message and page error."""

    def __init__(self, browser: Any, gateway: Gateway) -> None:
        self.context = browser.new_context(viewport={"width": 1100, "height": 900})
        self.page = self.context.new_page()
        self.url = gateway.url
        self.messages: list[str] = []
        self.page.on(
            "console", lambda m: self.messages.append(f"{m.type}: {m.text} ({m.location['url']})")
        )
        self.page.on("pageerror", lambda e: self.messages.append(f"error: {e}"))

    def login(self, secret: str, lang: str = "en") -> None:
        self.page.goto(f"{self.url}/console?lang={lang}")
        assert "/console/login" in self.page.url  # no page without a session
        self.page.fill("input[name=api_key]", secret)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(re.compile(r"/console\?lang="))

    def open(self, path: str, lang: str = "en") -> str:
        self.page.goto(f"{self.url}/console{path}?since=1d&lang={lang}")
        self.page.wait_for_load_state("load")
        return str(self.page.content())

    def expect(self, ending: str) -> None:
        """One message this test caused on purpose (a refused request) is no error of a page."""
        expected = [m for m in self.messages if m.endswith(ending)]
        assert len(expected) == 1, self.messages
        self.messages.remove(expected[0])

    def close(self) -> None:
        self.context.close()
        assert self.messages == [], self.messages  # no console errors, no CSP violation


def test_every_page_logged_in_as_admin(browser: Any, gateway: Gateway) -> None:
    tab = Tab(browser, gateway)
    tab.login(gateway.secrets["admin"])
    cookies = {c["name"]: c for c in tab.context.cookies()}
    session = cookies["thrifty_console"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert tab.page.evaluate("document.cookie") == ""  # no script can read the session
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    rows = gateway.rows()
    for name, (path, zh_heading) in PAGES.items():
        page = tab.open(path)
        assert 'id="content"' in page and "<h2>" in page
        if name == "overview":
            check_overview(page, rows)
        tab.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        zh = tab.open(path, "zh")
        assert zh_heading in zh and 'lang="zh-CN"' in zh
        if name == "overview":
            check_overview(zh, rows)
        tab.page.screenshot(path=str(ARTIFACTS / f"{name}-zh.png"), full_page=True)
    page = tab.open("/routing")
    assert len(re.findall(r'<circle class="point"', page)) == 3
    assert 'data-upstream="deepseek" data-breaker="closed"' in tab.open("/models")
    tab.close()


def test_numbers_refresh_in_place(browser: Any, gateway: Gateway) -> None:
    tab = Tab(browser, gateway)
    tab.page.clock.install()
    tab.login(gateway.secrets["admin"])
    tab.open("")
    before = int(text(tab.page.content(), "requests"))
    tab.page.evaluate("window.stayed = true")  # gone if the page were reloaded
    ask(gateway.server, "local", "echo:one more", gateway.secrets["acme"])
    while len(gateway.rows()) <= before:
        gateway.server.wait_rows("1=0", timeout=0.1)
    tab.page.clock.fast_forward("00:20")  # past the refresh interval
    # polled from here: the page's own timers (and animation frames) belong to the fake clock
    deadline = time.monotonic() + 30
    while tab.page.text_content("#requests") != str(before + 1):
        assert time.monotonic() < deadline, "the numbers were not refreshed"
        time.sleep(0.1)
    assert tab.page.evaluate("window.stayed") is True
    check_overview(tab.page.content(), gateway.rows())
    tab.close()


def test_viewer_sees_its_tenant_and_cannot_review(browser: Any, gateway: Gateway) -> None:
    tab = Tab(browser, gateway)
    tab.login(gateway.secrets["viewer"], "zh")
    page = tab.open("", "zh")
    assert text(page, "tenant") == "beta"
    check_overview(page, gateway.rows("beta"))
    tenants = tab.open("/tenants")
    assert 'data-tenant="beta"' in tenants and 'data-tenant="acme"' not in tenants
    privacy = tab.open("/privacy")
    assert 'id="review"' not in privacy and 'id="queue-admins"' in privacy
    item = _pending_item(gateway)
    status = tab.page.evaluate(
        """async ([item, token]) => (await fetch('/console/review/' + item, {method: 'POST',
            headers: {'content-type': 'application/x-www-form-urlencoded'},
            body: 'verdict=ok&csrf=' + token})).status""",
        [item, tab.page.input_value("input[name=csrf]")],
    )
    assert status == 403  # its own session's token, but not an admin
    assert _verdict(gateway, item) is None
    tab.expect(f"403 (Forbidden) ({gateway.url}/console/review/{item})")
    tab.close()


def test_admin_approves_and_a_cross_site_post_is_refused(browser: Any, gateway: Gateway) -> None:
    tab = Tab(browser, gateway)
    tab.login(gateway.secrets["admin"])
    item = _pending_item(gateway)
    tab.open("/privacy")
    token = tab.page.input_value(f"tr[data-item='{item}'] input[name=csrf]")
    with _attacker(gateway, item, token) as evil:  # another site, with the token even
        tab.page.goto(evil)
        with tab.page.expect_response(re.compile(r"/console/review/")) as posted:
            tab.page.click("button")
        assert posted.value.status == 403
    assert _verdict(gateway, item) is None
    tab.open("/privacy")
    tab.page.click(f"tr[data-item='{item}'] button.ok")
    tab.page.wait_for_url(re.compile(r"/console/privacy"))
    assert f'data-item="{item}"' not in tab.page.content()
    assert _verdict(gateway, item) == "ok"
    tab.expect(f"403 (Forbidden) ({gateway.url}/console/review/{item})")
    # the refusal is a plain-text page, for which the browser asks the API for /favicon.ico
    tab.messages = [m for m in tab.messages if not m.endswith(f"{gateway.url}/favicon.ico)")]
    tab.close()


def _pending_item(gateway: Gateway) -> int:
    store = ReviewStore(gateway.server.database_url)
    try:
        for _ in range(100):  # the queue is written off the event loop
            items = store.list(verdict="pending")
            if items:
                return int(items[-1]["id"])
            gateway.server.wait_rows("1=0", timeout=0.05)
    finally:
        store.close()
    raise AssertionError("nothing was queued for review")


def _verdict(gateway: Gateway, item: int) -> str | None:
    store = ReviewStore(gateway.server.database_url)
    try:
        found = [i for i in store.list(verdict=None, limit=1000) if i["id"] == item]
    finally:
        store.close()
    return found[0]["verdict"]


class _attacker:
    """A page on another site (localhost, not 127.0.0.1) whose form posts to the console."""

    def __init__(self, gateway: Gateway, item: int, token: str) -> None:
        form = (
            f"<form method=post action='{gateway.url}/console/review/{item}'>"
            f"<input type=hidden name=verdict value=ok><input type=hidden name=csrf "
            f"value='{token}'><button>win a prize</button></form>"
        ).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/html")
                self.end_headers()
                self.wfile.write(form)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    def __enter__(self) -> str:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://localhost:{self.server.server_address[1]}/evil"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

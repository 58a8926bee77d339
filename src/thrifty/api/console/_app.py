"""The console's routes: login and sessions, the pages, the review queue's actions.

Login: whenever the gateway requires keys, every page (and the console's script) needs a
session. `POST /console/login` takes an API key once and sets a session cookie (`HttpOnly;
SameSite=Strict; Path=/console`, `Secure` over TLS) that names the key's public id, an expiry and
an HMAC of both under a secret kept in `$THRIFTY_HOME/console.key` (0600; shared by `serve
--workers`). A revoked key ends its sessions at the next key reload. POSTs from another origin
are refused (403) whatever cookie they carry, and an action (a review verdict) also needs the
session's CSRF token, an HMAC of the cookie that only a page of the console carries.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from thrifty.api.console import autopilot, evals, models, overview, privacy, routing, tenants
from thrifty.api.console._html import ICON_SVG, PAGES, TEXT, View, bare, esc, fragment, page
from thrifty.context import KeyPolicy
from thrifty.errors import AuthenticationError
from thrifty.store.reports import parse_since
from thrifty.store.review import Verdict

if TYPE_CHECKING:
    from thrifty.api.app import Runtime

COOKIE = "thrifty_console"
SESSION_S = 12 * 3600
_MAX_FORM = 4096

Render = Callable[[View], str]
_RENDERS: dict[str, Render] = {
    "": overview.render,
    "/routing": routing.render,
    "/models": models.render,
    "/tenants": tenants.render,
    "/evals": evals.render,
    "/privacy": privacy.render,
    "/autopilot": autopilot.render,
}


class Sessions:
    """Signed session cookies: `key_id.expires.hmac`."""

    def __init__(self, home: Path) -> None:
        self.path = home / "console.key"
        self._secret: bytes | None = None

    def secret(self) -> bytes:
        if self._secret is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:  # the first worker makes it; the others read the same one
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(secrets.token_bytes(32))
            except FileExistsError:
                pass
            self._secret = self.path.read_bytes()
        return self._secret

    def issue(self, key_id: str, now: float) -> str:
        payload = f"{key_id}.{int(now + SESSION_S)}"
        return f"{payload}.{self._sign(payload)}"

    def verify(self, cookie: str | None, now: float) -> str | None:
        """The key id a valid, unexpired cookie names; else None."""
        if not cookie or cookie.count(".") != 2:
            return None
        key_id, expires, signature = cookie.split(".")
        if not same(signature, self._sign(f"{key_id}.{expires}")):
            return None
        if not expires.isdigit() or int(expires) <= now:
            return None
        return key_id

    def csrf(self, cookie: str | None) -> str:
        """The token a session's forms carry (tied to its cookie: another session's won't do)."""
        return self._sign(f"csrf:{cookie or ''}")

    def _sign(self, payload: str) -> str:
        return hmac.new(self.secret(), payload.encode(), hashlib.sha256).hexdigest()


class Console:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.sessions = Sessions(rt.settings.home)
        self.secure = rt.settings.ssl_certfile is not None

    def routes(self) -> list[Route]:
        pages = [
            Route(f"/console{path}", self._page(path, en, zh), methods=["GET"])
            for path, en, zh in PAGES
        ]
        return [
            *pages,
            Route("/console/static/console.js", self.script, methods=["GET"]),
            Route("/console/static/icon.svg", self.icon, methods=["GET"]),
            Route("/console/review/{item_id:int}", self.review, methods=["POST"]),
            Route("/console/login", self.login_page, methods=["GET"]),
            Route("/console/login", self.login, methods=["POST"]),
            Route("/console/logout", self.logout, methods=["POST"]),
        ]

    # -- who is looking ------------------------------------------------------------------------

    def viewer(self, request: Request) -> KeyPolicy | bool | None:
        """The session's key; None when the gateway needs no keys; False: log in first."""
        if not self.rt.auth.required:
            return None
        key_id = self.sessions.verify(request.cookies.get(COOKIE), time.time())
        key = self.rt.auth.by_id(key_id) if key_id else None
        return key if key is not None else False

    def _cross_site(self, request: Request) -> bool:
        """A POST another site made the browser send (the cookie is SameSite=Strict too)."""
        if request.headers.get("sec-fetch-site") == "cross-site":
            return True
        origin = request.headers.get("origin")
        if origin is None:
            return False
        host = request.headers.get("host", "")
        return origin not in (f"http://{host}", f"https://{host}")

    async def _form(self, request: Request) -> dict[str, str]:
        body = await request.body()
        form = parse_qs(body[:_MAX_FORM].decode("utf-8", "replace"))
        return {name: values[0] for name, values in form.items()}

    # -- pages -----------------------------------------------------------------------------------

    def _page(self, path: str, en: str, zh: str) -> Callable[[Request], object]:
        render = _RENDERS[path]

        async def handler(request: Request) -> Response:
            lang = _lang(request)
            key = self.viewer(request)
            if key is False:
                return RedirectResponse(f"/console/login?lang={lang}", 303)
            assert key is None or isinstance(key, KeyPolicy)
            window = request.query_params.get("since", "7d")
            heading = zh if lang == "zh" else en
            try:
                since = parse_since(window, time.time())
            except ValueError as exc:
                return bare(lang, heading, f"<p class=error>{esc(exc)}</p>", status=400)
            view = View(
                self.rt,
                lang,
                key,
                since,
                window,
                f"/console{path}",
                self.sessions.csrf(request.cookies.get(COOKIE)),
            )
            self.rt.request_log.flush()  # what was answered so far is in the numbers
            body = await run_in_threadpool(render, view)
            if request.headers.get("x-console-fragment") == "1":
                return fragment(body)
            return page(view, heading, body)

        return handler

    async def script(self, request: Request) -> Response:
        if self.viewer(request) is False:
            return Response("log in first", 401, media_type="text/plain")
        text = resources.files("thrifty.api.console").joinpath("console.js").read_text("utf-8")
        return Response(
            text,
            media_type="text/javascript",
            headers={"cache-control": "no-cache", "x-content-type-options": "nosniff"},
        )

    async def icon(self, request: Request) -> Response:
        """A green dot: no data in it, so the login page may show it too."""
        return Response(
            ICON_SVG, media_type="image/svg+xml", headers={"cache-control": "max-age=86400"}
        )

    async def review(self, request: Request) -> Response:
        """An admin's verdict on a queued item: ok (approve the content) or bad (reject it)."""
        lang = _lang(request)
        if self._cross_site(request):
            return Response("cross-site request refused", 403, media_type="text/plain")
        key = self.viewer(request)
        if key is False:
            return RedirectResponse(f"/console/login?lang={lang}", 303)
        form = await self._form(request)
        token = self.sessions.csrf(request.cookies.get(COOKIE))
        if not same(form.get("csrf", ""), token):
            return Response("missing or wrong CSRF token", 403, media_type="text/plain")
        assert key is None or isinstance(key, KeyPolicy)
        view = View(self.rt, lang, key, 0.0, "", "/console/privacy", token)
        if not view.admin:
            return Response("only an admin key may review", 403, media_type="text/plain")
        given = form.get("verdict")
        if given not in ("ok", "bad"):
            return Response("verdict must be ok or bad", 400, media_type="text/plain")
        verdict: Verdict = "ok" if given == "ok" else "bad"
        item_id = int(request.path_params["item_id"])
        actor = key.key_id if key is not None else "console"
        # past 64 bits no row can have it (and the store could not even look it up)
        found = item_id < 2**63 and await run_in_threadpool(
            privacy.mark, self.rt, item_id, verdict, actor
        )
        if not found:
            return Response(f"no review item {item_id}", 404, media_type="text/plain")
        return RedirectResponse(f"/console/privacy?lang={lang}", 303)

    async def login_page(self, request: Request, error: bool = False) -> Response:
        lang = _lang(request)
        t = TEXT[lang]
        message = f"<p class=error id=login-error>{t['bad_key']}</p>" if error else ""
        form = (
            f"{message}<form method=post action='/console/login?lang={lang}'>"
            f"<label>{t['api_key']} <input type=password name=api_key autocomplete=off "
            f"required></label> <button type=submit>{t['login']}</button></form>"
        )
        return bare(lang, t["login"], form, status=401 if error else 200)

    async def login(self, request: Request) -> Response:
        if self._cross_site(request):
            return Response("cross-site request refused", 403, media_type="text/plain")
        secret = (await self._form(request)).get("api_key", "").strip()
        try:
            key = self.rt.auth.identify({"authorization": f"Bearer {secret}"})
        except AuthenticationError:
            return await self.login_page(request, error=True)
        response = RedirectResponse(f"/console?lang={_lang(request)}", 303)
        response.set_cookie(
            COOKIE,
            self.sessions.issue(key.key_id, time.time()),
            max_age=SESSION_S,
            path="/console",
            httponly=True,
            samesite="strict",
            secure=self.secure,
        )
        return response

    async def logout(self, request: Request) -> Response:
        if self._cross_site(request):
            return Response("cross-site request refused", 403, media_type="text/plain")
        response = RedirectResponse(f"/console/login?lang={_lang(request)}", 303)
        response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")
        return response


def same(given: str, expected: str) -> bool:
    """A constant-time comparison that any text may reach (compare_digest refuses non-ASCII
    str, and a cookie or a form field can hold anything)."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


def _lang(request: Request) -> str:
    return "zh" if request.query_params.get("lang") == "zh" else "en"

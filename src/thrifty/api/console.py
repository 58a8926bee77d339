"""`/console`: the gateway's numbers in a browser, served by `thrifty serve` itself.

The overview (requests, cost against the all-cloud baseline, saving — a negative one shown as
extra cost —, cache hit rate, route mix over time) is read from the request log through
`thrifty.store.reports`, the same numbers as `thrifty usage`. Pages are plain HTML with
server-drawn SVG (`console_svg`): no script, no CDN, nothing to download; `?lang=zh` renders
them in 简体中文.

Login: whenever the gateway requires keys, every page needs a session. `POST /console/login`
takes an API key once and sets a session cookie (`HttpOnly; SameSite=Strict; Path=/console`,
`Secure` over TLS) that names the key's public id, an expiry and an HMAC of both under a secret
kept in `$THRIFTY_HOME/console.key` (0600; shared by `serve --workers`). A revoked key ends its
sessions at the next key reload. POSTs from another origin are refused (403) whatever cookie
they carry. Admins see every tenant; other roles their own tenant's numbers only.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from thrifty.api.console_svg import cost_chart, route_chart
from thrifty.context import KeyPolicy, may
from thrifty.costs.money import format_nanos
from thrifty.errors import AuthenticationError
from thrifty.store.db import MissingTable, NoDatabase, connect
from thrifty.store.reports import (
    Bucket,
    UsageReport,
    auto_bucket,
    empty_report,
    parse_since,
    time_span,
    timeseries,
    usage_report,
)

if TYPE_CHECKING:
    from thrifty.api.app import Runtime

COOKIE = "thrifty_console"
SESSION_S = 12 * 3600
_MAX_FORM = 4096

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "thrifty console",
        "overview": "Overview",
        "window": "Last",
        "requests": "Requests",
        "cost": "Cost",
        "baseline": "All-cloud baseline",
        "saving": "Saving",
        "extra": "Extra cost",
        "hit_rate": "Cache hit rate",
        "route_mix": "Route mix",
        "cost_chart": "Cost against the all-cloud baseline",
        "route": "Route",
        "share": "Share",
        "none": "No requests in this window.",
        "login": "Log in",
        "api_key": "API key",
        "bad_key": "That key was not accepted.",
        "logout": "Log out",
        "tenant": "Tenant",
        "all": "all tenants",
        "unknown": "unpriced requests left out",
    },
    "zh": {
        "title": "thrifty 控制台",
        "overview": "概览",
        "window": "最近",
        "requests": "请求数",
        "cost": "花费",
        "baseline": "全部走云端的花费",
        "saving": "节省",
        "extra": "额外花费",
        "hit_rate": "缓存命中率",
        "route_mix": "路由分布",
        "cost_chart": "花费与全云端基线对比",
        "route": "路由",
        "share": "占比",
        "none": "这段时间内没有请求。",
        "login": "登录",
        "api_key": "API 密钥",
        "bad_key": "密钥无效。",
        "logout": "退出",
        "tenant": "租户",
        "all": "全部租户",
        "unknown": "条请求无价格，未计入",
    },
}


@dataclass(frozen=True, slots=True)
class Overview:
    report: UsageReport  # by route
    buckets: list[Bucket]
    bucket_s: float


def load_overview(url: str, since: float, tenant: str | None) -> Overview:
    """The overview's numbers from the request log at `url` (one tenant's, if given)."""
    try:
        conn = connect(url, create=False)
    except NoDatabase:
        conn = None
    if conn is not None:
        with conn:
            try:
                report = usage_report(conn, since, by="route", tenant=tenant)
                span = time_span(conn, since, tenant=tenant)
                bucket = auto_bucket(span[1] - span[0]) if span else 3600
                return Overview(report, timeseries(conn, since, bucket, tenant=tenant), bucket)
            except MissingTable:
                pass
    return Overview(empty_report(since, by="route"), [], 3600)


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
        if not hmac.compare_digest(signature, self._sign(f"{key_id}.{expires}")):
            return None
        if not expires.isdigit() or int(expires) <= now:
            return None
        return key_id

    def _sign(self, payload: str) -> str:
        return hmac.new(self.secret(), payload.encode(), hashlib.sha256).hexdigest()


class Console:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.sessions = Sessions(rt.settings.home)
        self.secure = rt.settings.ssl_certfile is not None

    def routes(self) -> list[Route]:
        return [
            Route("/console", self.overview, methods=["GET"]),
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

    # -- pages -----------------------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        lang = _lang(request)
        key = self.viewer(request)
        if key is False:
            return RedirectResponse(f"/console/login?lang={lang}", 303)
        assert key is None or isinstance(key, KeyPolicy)
        window = request.query_params.get("since", "7d")
        try:
            since = parse_since(window, time.time())
        except ValueError as exc:
            return _page(lang, "", f"<p class=error>{html.escape(str(exc))}</p>", status=400)
        tenant = None if key is None or may(key, "read_all_usage") else key.tenant
        self.rt.request_log.flush()  # what was answered so far is in the numbers
        data = await run_in_threadpool(load_overview, self.rt.settings.database_url, since, tenant)
        body = _overview_html(data, lang, window, tenant, logged_in=key is not None)
        return _page(lang, TEXT[lang]["overview"], body)

    async def login_page(self, request: Request, error: bool = False) -> Response:
        lang = _lang(request)
        t = TEXT[lang]
        message = f"<p class=error id=login-error>{t['bad_key']}</p>" if error else ""
        form = (
            f"{message}<form method=post action='/console/login?lang={lang}'>"
            f"<label>{t['api_key']} <input type=password name=api_key autocomplete=off "
            f"required></label> <button type=submit>{t['login']}</button></form>"
        )
        return _page(lang, t["login"], form, status=401 if error else 200)

    async def login(self, request: Request) -> Response:
        if self._cross_site(request):
            return Response("cross-site request refused", 403, media_type="text/plain")
        body = await request.body()
        form = parse_qs(body[:_MAX_FORM].decode("utf-8", "replace"))
        secret = (form.get("api_key") or [""])[0].strip()
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


def _lang(request: Request) -> str:
    return "zh" if request.query_params.get("lang") == "zh" else "en"


def _usd(nanos: int) -> str:
    return "$" + format_nanos(nanos).rstrip("0").rstrip(".").replace("$-", "-$")


_STYLE = (
    "body{font-family:system-ui,'Noto Sans CJK SC',sans-serif;margin:2rem;color:#222}"
    ".cards{display:flex;gap:1rem;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;"
    "padding:.8rem 1.2rem}.card b{display:block;font-size:1.4rem}.extra b{color:#b00020}"
    ".saving b{color:#1b7f3b}.error{color:#b00020}table{border-collapse:collapse}"
    "td,th{padding:.2rem .8rem;border-bottom:1px solid #eee;text-align:right}"
    "td:first-child,th:first-child{text-align:left}svg{max-width:100%}"
)


def _page(lang: str, heading: str, body: str, status: int = 200) -> HTMLResponse:
    t = TEXT[lang]
    page = (
        f"<!doctype html><html lang={'zh-CN' if lang == 'zh' else 'en'}><head>"
        f"<meta charset=utf-8><meta name=viewport content='width=device-width'>"
        f"<title>{t['title']}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{t['title']}</h1>{f'<h2>{heading}</h2>' if heading else ''}{body}</body></html>"
    )
    headers = {
        "cache-control": "no-store",
        # nothing but this page's own inline style: no scripts, no frames, no foreign origins
        "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; "
        "img-src 'self'; form-action 'self'; frame-ancestors 'none'",
        "x-content-type-options": "nosniff",
    }
    return HTMLResponse(page, status, headers=headers)


def _overview_html(
    data: Overview, lang: str, window: str, tenant: str | None, logged_in: bool
) -> str:
    t = TEXT[lang]
    total = data.report.total
    saving = total.saved_nanos
    hit_rate = total.cache_hit_rate
    cards = [
        ("requests", t["requests"], str(total.requests), ""),
        ("cost", t["cost"], _usd(total.cost_nanos), ""),
        ("baseline", t["baseline"], _usd(total.baseline_nanos), ""),
        # a negative saving is what it is: money spent beyond the all-cloud baseline
        ("saving", t["saving"], _usd(saving), "saving")
        if saving >= 0
        else ("extra-cost", t["extra"], _usd(-saving), "extra"),
        ("hit-rate", t["hit_rate"], "–" if hit_rate is None else f"{hit_rate:.1%}", ""),
    ]
    parts = [
        f"<p>{t['window']} <span id=window>{html.escape(window)}</span> · {t['tenant']}: "
        f"<span id=tenant>{html.escape(tenant) if tenant else t['all']}</span>"
        f" · <a href='?since={html.escape(window)}&lang={'en' if lang == 'zh' else 'zh'}'>"
        f"{'English' if lang == 'zh' else '简体中文'}</a></p>",
        "<div class=cards>",
        *(
            f"<div class='card {cls}'>{label}<b id={ident}>{value}</b></div>"
            for ident, label, value, cls in cards
        ),
        "</div>",
    ]
    if total.cost_unknown:
        parts.append(f"<p><span id=cost-unknown>{total.cost_unknown}</span> {t['unknown']}</p>")
    if total.requests == 0:
        parts.append(f"<p id=empty>{t['none']}</p>")
    else:
        parts.append(f"<h3>{t['cost_chart']}</h3>")
        parts.append(cost_chart(data.buckets, data.bucket_s, t["cost"], t["baseline"]))
        parts.append(f"<h3>{t['route_mix']}</h3>")
        parts.append(route_chart(data.buckets, data.bucket_s))
        rows = "".join(
            f"<tr data-route='{html.escape(r.key)}'><td>{html.escape(r.key or '(refused)')}</td>"
            f"<td class=requests>{r.requests}</td>"
            f"<td>{r.requests / total.requests:.1%}</td><td>{_usd(r.cost_nanos)}</td>"
            f"<td>{_usd(r.baseline_nanos)}</td></tr>"
            for r in data.report.rows
        )
        parts.append(
            f"<table id=routes><tr><th>{t['route']}</th><th>{t['requests']}</th>"
            f"<th>{t['share']}</th><th>{t['cost']}</th><th>{t['baseline']}</th></tr>"
            f"{rows}</table>"
        )
    if logged_in:
        parts.append(
            f"<form method=post action='/console/logout?lang={lang}'>"
            f"<button type=submit>{t['logout']}</button></form>"
        )
    return "".join(parts)


def console_routes(rt: Runtime) -> list[Any]:
    return Console(rt).routes()

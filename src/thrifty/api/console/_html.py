"""The console's page shell (navigation, language and window links), its words and helpers.

A page module gives a `View` (who is looking, at what window, in which language) to its
`render` and gets the page's body back; the shell wraps it. The body sits in `<main id=content>`,
which `console.js` fetches again every `REFRESH_S` seconds (as a fragment: header
``x-console-fragment: 1``) and swaps in place, so numbers move without a reload.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.responses import HTMLResponse

from thrifty.context import KeyPolicy, may
from thrifty.costs.money import format_nanos

if TYPE_CHECKING:
    from thrifty.api.app import Runtime

REFRESH_S = 15
LANGS = ("en", "zh")

# (path under /console, English, 简体中文)
PAGES: tuple[tuple[str, str, str], ...] = (
    ("", "Overview", "概览"),
    ("/routing", "Routing", "路由"),
    ("/models", "Models", "模型"),
    ("/tenants", "Tenants and keys", "租户与密钥"),
    ("/evals", "Evals and A/B", "评测与 A/B"),
    ("/privacy", "Privacy and safety", "隐私与安全"),
    ("/autopilot", "Autopilot", "自动驾驶"),
)

WINDOWS = ("1h", "24h", "7d", "30d")
# the console's own icon, so that a browser does not ask the API for /favicon.ico (a 404)
ICON = "<link rel=icon href='/console/static/icon.svg' type='image/svg+xml'>"
ICON_SVG = (
    "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'>"
    "<circle cx='8' cy='8' r='7' fill='#1b7f3b'/></svg>"
)

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "thrifty console",
        "window": "Last",
        "tenant": "Tenant",
        "all": "all tenants",
        "logout": "Log out",
        "login": "Log in",
        "api_key": "API key",
        "bad_key": "That key was not accepted.",
        "requests": "Requests",
        "cost": "Cost",
        "none": "No requests in this window.",
    },
    "zh": {
        "title": "thrifty 控制台",
        "window": "最近",
        "tenant": "租户",
        "all": "全部租户",
        "logout": "退出",
        "login": "登录",
        "api_key": "API 密钥",
        "bad_key": "密钥无效。",
        "requests": "请求数",
        "cost": "花费",
        "none": "这段时间内没有请求。",
    },
}


@dataclass(frozen=True, slots=True)
class View:
    """One look at one page: by whom, over which window, in which language."""

    rt: Runtime
    lang: str
    key: KeyPolicy | None  # None: the gateway needs no keys (loopback), everything is open
    since: float
    window: str
    path: str  # the page's path, e.g. /console/routing
    csrf: str  # the token this session's forms carry

    @property
    def tenant(self) -> str | None:
        """The one tenant this viewer may see; None: every tenant."""
        if self.key is None or may(self.key, "read_all_usage"):
            return None
        return self.key.tenant

    @property
    def admin(self) -> bool:
        """May act (approve, reject), not only read."""
        return self.key is None or may(self.key, "manage_keys")

    def words(self, own: dict[str, dict[str, str]]) -> dict[str, str]:
        return {**TEXT[self.lang], **own[self.lang]}


def esc(value: object) -> str:
    return html.escape(str(value))


def usd(nanos: int) -> str:
    return "$" + format_nanos(nanos).rstrip("0").rstrip(".").replace("$-", "-$")


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def table(
    ident: str, head: Sequence[str], rows: Iterable[Sequence[object]], attrs: Iterable[str] = ()
) -> str:
    """A table; cells are escaped unless given as `Raw`; `attrs` go on each row's <tr>."""
    extra = list(attrs)
    lines = []
    for n, row in enumerate(rows):
        cells = "".join(f"<td>{c if isinstance(c, Raw) else esc(c)}</td>" for c in row)
        lines.append(f"<tr {extra[n] if n < len(extra) else ''}>{cells}</tr>")
    header = "".join(f"<th>{esc(h)}</th>" for h in head)
    return f"<table id={ident}><tr>{header}</tr>{''.join(lines)}</table>"


class Raw(str):
    """HTML made here, put in a table cell as it is."""


def cards(items: Iterable[tuple[str, str, str, str]]) -> str:
    """(id, label, value, class) as big-number cards."""
    return (
        "<div class=cards>"
        + "".join(
            f"<div class='card {cls}'>{esc(label)}<b id={ident}>{esc(value)}</b></div>"
            for ident, label, value, cls in items
        )
        + "</div>"
    )


_STYLE = (
    "body{font-family:system-ui,'Noto Sans CJK SC','WenQuanYi Micro Hei',sans-serif;margin:2rem;"
    "color:#222}nav a{margin-right:1rem}nav a.here{font-weight:bold;color:#222;"
    "text-decoration:none}.bar{color:#555}"
    ".cards{display:flex;gap:1rem;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;"
    "padding:.8rem 1.2rem}.card b{display:block;font-size:1.4rem}.extra b{color:#b00020}"
    ".saving b{color:#1b7f3b}.error{color:#b00020}table{border-collapse:collapse;margin:.5rem 0}"
    "td,th{padding:.2rem .8rem;border-bottom:1px solid #eee;text-align:right}"
    "td:first-child,th:first-child{text-align:left}svg{max-width:100%}"
    ".open{color:#b00020;font-weight:bold}.half_open{color:#E69F00}.closed{color:#1b7f3b}"
    "form.inline{display:inline}.note{color:#555}"
)

_HEADERS = {
    "cache-control": "no-store",
    # this page's inline style and the console's own script, nothing from another origin
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def _nav(view: View) -> str:
    other = "en" if view.lang == "zh" else "zh"
    links = []
    for path, en, zh in PAGES:
        href = f"/console{path}"
        here = " class=here" if href == view.path else ""
        name = zh if view.lang == "zh" else en
        links.append(f"<a{here} href='{href}?since={esc(view.window)}&lang={view.lang}'>{name}</a>")
    t = TEXT[view.lang]
    windows = " ".join(
        f"<a href='?since={w}&lang={view.lang}'>{w}</a>" if w != view.window else f"<b>{w}</b>"
        for w in WINDOWS
    )
    tenant = esc(view.tenant) if view.tenant else t["all"]
    logout = (
        f"<form class=inline method=post action='/console/logout?lang={view.lang}'>"
        f"<input type=hidden name=csrf value='{view.csrf}'>"
        f"<button type=submit>{t['logout']}</button></form>"
        if view.key is not None
        else ""
    )
    return (
        f"<nav>{''.join(links)}</nav><p class=bar>{t['window']} "
        f"<span id=window>{esc(view.window)}</span> ({windows}) · {t['tenant']}: "
        f"<span id=tenant>{tenant}</span> · <a id=lang href='?since={esc(view.window)}"
        f"&lang={other}'>{'English' if view.lang == 'zh' else '简体中文'}</a> {logout}</p>"
    )


def page(view: View, heading: str, body: str, status: int = 200) -> HTMLResponse:
    """The whole page: shell, navigation and the body in the refreshed <main>."""
    t = TEXT[view.lang]
    html_lang = "zh-CN" if view.lang == "zh" else "en"
    text = (
        f"<!doctype html><html lang={html_lang}><head><meta charset=utf-8>"
        f"<meta name=viewport content='width=device-width'>{ICON}<title>{t['title']} · {heading}"
        f"</title><style>{_STYLE}</style><script src='/console/static/console.js' defer>"
        f"</script></head><body><h1>{t['title']}</h1>{_nav(view)}<h2>{esc(heading)}</h2>"
        f"<main id=content data-refresh={REFRESH_S}>{body}</main></body></html>"
    )
    return HTMLResponse(text, status, headers=_HEADERS)


def fragment(body: str) -> HTMLResponse:
    """The body alone: what the refresh swaps into <main>."""
    return HTMLResponse(body, headers=_HEADERS)


def bare(lang: str, heading: str, body: str, status: int = 200) -> HTMLResponse:
    """A page without navigation or script (the login, an error)."""
    t = TEXT[lang]
    text = (
        f"<!doctype html><html lang={'zh-CN' if lang == 'zh' else 'en'}><head>"
        f"<meta charset=utf-8><meta name=viewport content='width=device-width'>{ICON}"
        f"<title>{t['title']}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{t['title']}</h1><h2>{esc(heading)}</h2>{body}</body></html>"
    )
    return HTMLResponse(text, status, headers=_HEADERS)

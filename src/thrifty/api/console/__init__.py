"""`/console`: the gateway's numbers in a browser, served by `thrifty serve` itself.

One module per page (overview, routing, models, tenants, evals, privacy), each reading the
store through `thrifty.store` (the same numbers as the CLI's reports) or the running gateway's
live state; `_html` is the shell around them, `svg` draws the charts on the server (no CDN,
nothing to download), `_app` the routes, login and sessions. `?lang=zh` renders in 简体中文.
Admins see every tenant and may act; other roles see their own tenant's numbers, read-only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thrifty.api.app import Runtime


def console_routes(rt: Runtime) -> list[Any]:
    from thrifty.api.console._app import Console

    return Console(rt).routes()

"""`GET /v1/usage`: the request log's usage report, the same JSON as `thrifty usage --format json`.

Query parameters: ``since`` (default ``7d``; ``30m``, ``24h``, ``7d`` or an ISO date/time),
``until`` (default now), ``by`` (``route``, ``model``, ``tenant``, ``day``) and ``currency``
(``USD`` or ``CNY``). Anything else is a 400 in OpenAI's error shape, so a typo is not
mistaken for an unfiltered answer.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from thrifty.api.responses import json_response
from thrifty.context import may
from thrifty.costs.money import CURRENCIES
from thrifty.errors import InvalidRequest
from thrifty.store.reports import GROUPINGS, Grouping, load_usage, parse_since, report_dict

if TYPE_CHECKING:
    from thrifty.api.app import Runtime

_PARAMS = ("since", "until", "by", "currency")


def parse_query(
    params: Mapping[str, str], now: float
) -> tuple[float, float | None, Grouping | None, str]:
    """(since, until, by, currency) from query parameters; InvalidRequest names the bad one."""
    for name in params:
        if name not in _PARAMS:
            raise InvalidRequest(
                f"unknown query parameter {name!r}; known: {', '.join(_PARAMS)}", param=name
            )
    try:
        since = parse_since(params.get("since", "7d"), now)
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="since") from None
    until: float | None = None
    if "until" in params:
        try:
            until = parse_since(params["until"], now)
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="until") from None
        if until <= since:
            raise InvalidRequest("until must be after since", param="until")
    by = params.get("by")
    if by is not None and by not in GROUPINGS:
        raise InvalidRequest(f"by must be one of {', '.join(GROUPINGS)}", param="by")
    currency = params.get("currency", "USD").upper()
    if currency not in CURRENCIES:
        raise InvalidRequest(f"currency must be one of {', '.join(CURRENCIES)}", param="currency")
    return since, until, cast("Grouping | None", by), currency


def usage_endpoint(rt: Runtime) -> Callable[[Request], Awaitable[Response]]:
    """The `/v1/usage` handler over ``rt``'s request log."""

    def report(
        since: float, until: float | None, by: Grouping | None, currency: str, tenant: str | None
    ) -> Any:
        rt.request_log.flush()  # rows appended so far are in the report
        settings = rt.settings
        found = load_usage(settings.database_url, since, until, by, tenant)
        return report_dict(found, currency, Decimal(str(settings.costs.cny_per_usd)))

    async def usage(request: Request) -> Response:
        since, until, by, currency = parse_query(request.query_params, time.time())
        key = getattr(request.state, "key", None)
        # without keys (loopback only) everything is visible; else all of it for admins only
        tenant = None if key is None or may(key, "read_all_usage") else key.tenant
        return json_response(await run_in_threadpool(report, since, until, by, currency, tenant))

    return usage

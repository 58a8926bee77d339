"""What the console's pages should show, computed straight from the store's rows."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

Q = "[\"']?"  # the server writes single quotes, a browser's DOM double ones


def expected(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The overview's numbers, summed from the request log's rows."""
    priced = [r for r in rows if r["cost_nanos"] is not None and r["baseline_nanos"] is not None]
    return {
        "requests": len(rows),
        "cost": sum(r["cost_nanos"] or 0 for r in rows),
        "baseline": sum(r["baseline_nanos"] or 0 for r in rows),
        "saving": sum(r["baseline_nanos"] - r["cost_nanos"] for r in priced),
        "hits": sum(r["route"] == "cache" for r in rows),
    }


def text(page: str, ident: str) -> str:
    match = re.search(rf"id={Q}{ident}{Q}>([^<]*)<", page)
    assert match, f"no #{ident} in the page"
    return match.group(1)


def nanos(shown: str) -> int:
    return int(Decimal(shown.replace("$", "")) * 10**9)


def check_overview(page: str, rows: list[dict[str, Any]]) -> None:
    want = expected(rows)
    assert int(text(page, "requests")) == want["requests"]
    assert nanos(text(page, "cost")) == want["cost"]
    assert nanos(text(page, "baseline")) == want["baseline"]
    if want["saving"] >= 0:
        assert nanos(text(page, "saving")) == want["saving"]
        assert not re.search(rf"id={Q}extra-cost", page)
    else:  # never shown as "saved"
        assert nanos(text(page, "extra-cost")) == -want["saving"]
    assert text(page, "hit-rate") == f"{want['hits'] / want['requests']:.1%}"
    for route in {r["route"] for r in rows}:
        count = sum(r["route"] == route for r in rows)
        assert re.search(
            rf"data-route={Q}{re.escape(route)}{Q}><td>[^<]*</td>"
            rf"<td><span class={Q}requests{Q}>{count}<",
            page,
        ), route


def row_counts(page: str, table: str, attr: str) -> dict[str, int]:
    """`attr` value -> the sum of the `n` cells of a table's rows carrying it."""
    body = (
        page.split(f"id={table}", 1)[-1]
        if f"id={table}" in page
        else page.split(f'id="{table}"', 1)[-1]
    )
    body = body.split("</table>", 1)[0]
    counts: dict[str, int] = {}
    for row in re.finditer(rf"<tr [^>]*{attr}={Q}([^'\" >]*){Q}[^>]*>(.*?)</tr>", body):
        n = re.search(rf"class={Q}n{Q}>(\d+)<", row.group(2))
        assert n, row.group(0)
        counts[row.group(1)] = counts.get(row.group(1), 0) + int(n.group(1))
    return counts

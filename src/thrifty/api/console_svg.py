"""The console's charts, drawn on the server as SVG: no script, works offline.

Bars per time bucket; every bar carries its number in a <title> (a tooltip) and data-* attributes,
so what a chart shows can be checked against the store.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime

from thrifty.costs.money import format_nanos
from thrifty.store.reports import Bucket

WIDTH, HEIGHT, PAD = 720, 220, 40
TOP = 24  # the legend's band, above the bars
# colour-blind-safe (Okabe-Ito); routes beyond the palette repeat it
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")


def _label(start: float, bucket_s: float) -> str:
    moment = datetime.fromtimestamp(start, UTC)
    return moment.strftime("%m-%d" if bucket_s >= 86400 else "%m-%d %H:%M")


def _frame(body: str, ident: str, title: str) -> str:
    return (
        f"<svg id={ident} role=img xmlns='http://www.w3.org/2000/svg' "
        f"viewBox='0 0 {WIDTH} {HEIGHT + PAD}' width={WIDTH} height={HEIGHT + PAD}>"
        f"<title>{html.escape(title)}</title>"
        f"<line x1={PAD} y1={HEIGHT} x2={WIDTH} y2={HEIGHT} stroke='#999'/>{body}</svg>"
    )


def _axis(buckets: list[Bucket], bucket_s: float, step: float) -> str:
    if not buckets:
        return ""
    ends = (buckets[0], buckets[-1])
    return "".join(
        f"<text x={PAD + (0 if b is ends[0] else (len(buckets) - 1) * step)} y={HEIGHT + 16} "
        f"font-size=11 fill='#555'>{_label(b.start, bucket_s)} UTC</text>"
        for b in ends
    )


def cost_chart(buckets: list[Bucket], bucket_s: float, cost: str, baseline: str) -> str:
    """Cost and the all-cloud baseline per bucket, side by side."""
    top = max([max(b.cost_nanos, b.baseline_nanos) for b in buckets] + [1])
    step = (WIDTH - PAD) / max(len(buckets), 1)
    bar = max(step / 2 - 1, 1)
    parts = []
    for n, b in enumerate(buckets):
        x = PAD + n * step
        for offset, nanos, colour, name, kind in (
            (0.0, b.baseline_nanos, "#bbb", baseline, "baseline"),
            (bar, b.cost_nanos, "#0072B2", cost, "cost"),
        ):
            h = (HEIGHT - TOP) * max(nanos, 0) / top
            parts.append(
                f"<rect class={kind} data-nanos={nanos} x={x + offset:.1f} y={HEIGHT - h:.1f} "
                f"width={bar:.1f} height={h:.1f} fill='{colour}'><title>{_label(b.start, bucket_s)}"
                f" {html.escape(name)}: ${format_nanos(nanos)}</title></rect>"
            )
    legend = (
        f"<text x={PAD} y=14 font-size=12 fill='#0072B2'>■ {html.escape(cost)}</text>"
        f"<text x={PAD + 160} y=14 font-size=12 fill='#888'>■ {html.escape(baseline)}</text>"
    )
    return _frame(legend + "".join(parts) + _axis(buckets, bucket_s, step), "cost-chart", cost)


def route_chart(buckets: list[Bucket], bucket_s: float) -> str:
    """Requests per bucket, stacked by route."""
    routes = sorted({route for b in buckets for route in b.requests})
    colours = {route: PALETTE[n % len(PALETTE)] for n, route in enumerate(routes)}
    top = max([sum(b.requests.values()) for b in buckets] + [1])
    step = (WIDTH - PAD) / max(len(buckets), 1)
    parts = []
    for n, b in enumerate(buckets):
        y = float(HEIGHT)
        for route in routes:
            count = b.requests.get(route, 0)
            if not count:
                continue
            h = (HEIGHT - TOP) * count / top
            y -= h
            name = html.escape(route or "(refused)")
            parts.append(
                f"<rect class=route data-route='{html.escape(route)}' data-requests={count} "
                f"x={PAD + n * step:.1f} y={y:.1f} width={max(step - 1, 1):.1f} height={h:.1f} "
                f"fill='{colours[route]}'><title>{_label(b.start, bucket_s)} {name}: {count}"
                f"</title></rect>"
            )
    legend, x = [], PAD
    for route in routes:
        name = route or "(refused)"
        legend.append(
            f"<text x={x} y=14 font-size=12 fill='{colours[route]}'>■ {html.escape(name)}</text>"
        )
        x += 24 + 7 * len(name)  # about a character's width at 12px, and a gap
    body = "".join(legend) + "".join(parts) + _axis(buckets, bucket_s, step)
    return _frame(body, "route-chart", "routes")

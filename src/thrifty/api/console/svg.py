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


def bar_chart(ident: str, title: str, bars: list[tuple[str, int]]) -> str:
    """Horizontal bars, one per (label, count), longest first as given."""
    row = 22
    height = TOP + row * max(len(bars), 1)
    top = max([count for _, count in bars] + [1])
    width = WIDTH - 220
    parts = []
    for n, (label, count) in enumerate(bars):
        y = TOP + n * row
        w = width * count / top
        parts.append(
            f"<text x=0 y={y + 15} font-size=12 fill='#333'>{html.escape(label[:32])}</text>"
            f"<rect class=bar data-label='{html.escape(label)}' data-count={count} x=200 y={y + 3} "
            f"width={w:.1f} height={row - 6} fill='{PALETTE[n % len(PALETTE)]}'>"
            f"<title>{html.escape(label)}: {count}</title></rect>"
            f"<text x={204 + w:.1f} y={y + 15} font-size=12 fill='#555'>{count}</text>"
        )
    return (
        f"<svg id={ident} role=img xmlns='http://www.w3.org/2000/svg' "
        f"viewBox='0 0 {WIDTH} {height}' width={WIDTH} height={height}>"
        f"<title>{html.escape(title)}</title>{''.join(parts)}</svg>"
    )


def curve_chart(
    points: list[dict[str, float]], quality: str, cost: str, ident: str = "curve-chart"
) -> str:
    """`route eval`'s sweep: quality (y) against cost (x), one dot per threshold, joined."""
    costs = [float(p["cost_usd"]) for p in points]
    qualities = [float(p["quality"]) for p in points]
    lo_c, hi_c = min([*costs, 0.0]), max([*costs, 1e-12])
    lo_q, hi_q = min([*qualities, 1.0]), max([*qualities, 0.0])
    span_c, span_q = (hi_c - lo_c) or 1.0, (hi_q - lo_q) or 1.0

    def xy(c: float, q: float) -> tuple[float, float]:
        return PAD + (WIDTH - PAD - 10) * (c - lo_c) / span_c, HEIGHT - (HEIGHT - TOP) * (
            q - lo_q
        ) / span_q

    ordered = sorted(zip(costs, qualities, points, strict=True), key=lambda t: t[0])
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(c, q) for c, q, _ in ordered))
    dots = []
    for c, q, p in ordered:
        x, y = xy(c, q)
        dots.append(
            f"<circle class=point data-threshold={p['threshold']} data-quality={q} "
            f"data-cost={c} cx={x:.1f} cy={y:.1f} r=4 fill='#0072B2'><title>threshold "
            f"{p['threshold']:.4f}: {html.escape(quality)} {q:.3f}, {html.escape(cost)} "
            f"${c:.6f}, cloud {float(p['cloud_share']):.0%}</title></circle>"
        )
    labels = (
        f"<text x={PAD} y=14 font-size=12 fill='#555'>↑ {html.escape(quality)} "
        f"({lo_q:.3f}–{hi_q:.3f})</text><text x={WIDTH - 260} y={HEIGHT + 16} font-size=12 "
        f"fill='#555'>{html.escape(cost)} → (${lo_c:.6f}–${hi_c:.6f})</text>"
    )
    body = f"<polyline points='{line}' fill=none stroke='#999'/>{''.join(dots)}{labels}"
    return _frame(body, ident, quality)


def interval_chart(ident: str, title: str, rows: list[tuple[str, float, float, float]]) -> str:
    """One line per (label, value, low, high) on a 0..1 scale: a dot and its 95% interval."""
    row = 24
    height = TOP + row * max(len(rows), 1) + 16
    left, width = 240, WIDTH - 260
    parts = [
        f"<text x={left + width * f:.1f} y={height - 2} font-size=11 fill='#555' "
        f"text-anchor=middle>{f:.0%}</text>"
        for f in (0.0, 0.5, 1.0)
    ]
    for n, (label, value, low, high) in enumerate(rows):
        y = TOP + n * row + row / 2
        x0, x1, x = (left + width * min(max(v, 0.0), 1.0) for v in (low, high, value))
        parts.append(
            f"<text x=0 y={y + 4:.1f} font-size=12 fill='#333'>{html.escape(label[:36])}</text>"
            f"<line x1={x0:.1f} y1={y:.1f} x2={x1:.1f} y2={y:.1f} stroke='#0072B2' "
            f"stroke-width='2'/><circle class=estimate data-label='{html.escape(label)}' "
            f"data-value={value:.6f} data-low={low:.6f} data-high={high:.6f} cx={x:.1f} "
            f"cy={y:.1f} r=4 fill='#0072B2'><title>{html.escape(label)}: {value:.1%} "
            f"[{low:.1%}, {high:.1%}]</title></circle>"
        )
    return (
        f"<svg id={ident} role=img xmlns='http://www.w3.org/2000/svg' "
        f"viewBox='0 0 {WIDTH} {height}' width={WIDTH} height={height}>"
        f"<title>{html.escape(title)}</title>{''.join(parts)}</svg>"
    )

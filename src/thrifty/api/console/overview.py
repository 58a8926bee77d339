"""The overview: requests, cost against the all-cloud baseline, saving (a negative one shown as
extra cost, never as "saved"), cache hit rate, route mix over time: `thrifty usage`'s numbers."""

from __future__ import annotations

from dataclasses import dataclass

from thrifty.api.console._html import Raw, View, cards, esc, percent, table, usd
from thrifty.api.console.svg import cost_chart, route_chart
from thrifty.store.console import load
from thrifty.store.db import Connection
from thrifty.store.reports import (
    Bucket,
    UsageReport,
    auto_bucket,
    empty_report,
    time_span,
    timeseries,
    usage_report,
)

TEXT = {
    "en": {
        "baseline": "All-cloud baseline",
        "saving": "Saving",
        "extra": "Extra cost",
        "hit_rate": "Cache hit rate",
        "route_mix": "Route mix",
        "cost_chart": "Cost against the all-cloud baseline",
        "route": "Route",
        "share": "Share",
        "unknown": "unpriced requests left out",
    },
    "zh": {
        "baseline": "全部走云端的花费",
        "saving": "节省",
        "extra": "额外花费",
        "hit_rate": "缓存命中率",
        "route_mix": "路由分布",
        "cost_chart": "花费与全云端基线对比",
        "route": "路由",
        "share": "占比",
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

    def query(conn: Connection) -> Overview:
        report = usage_report(conn, since, by="route", tenant=tenant)
        span = time_span(conn, since, tenant=tenant)
        bucket = auto_bucket(span[1] - span[0]) if span else 3600
        return Overview(report, timeseries(conn, since, bucket, tenant=tenant), bucket)

    return load(url, query, Overview(empty_report(since, by="route"), [], 3600))


def render(view: View) -> str:
    t = view.words(TEXT)
    data = load_overview(view.rt.settings.database_url, view.since, view.tenant)
    total = data.report.total
    saving = total.saved_nanos
    parts = [
        cards(
            [
                ("requests", t["requests"], str(total.requests), ""),
                ("cost", t["cost"], usd(total.cost_nanos), ""),
                ("baseline", t["baseline"], usd(total.baseline_nanos), ""),
                # a negative saving is what it is: money spent beyond the all-cloud baseline
                ("saving", t["saving"], usd(saving), "saving")
                if saving >= 0
                else ("extra-cost", t["extra"], usd(-saving), "extra"),
                ("hit-rate", t["hit_rate"], percent(total.cache_hit_rate), ""),
            ]
        )
    ]
    if total.cost_unknown:
        parts.append(f"<p><span id=cost-unknown>{total.cost_unknown}</span> {t['unknown']}</p>")
    if total.requests == 0:
        parts.append(f"<p id=empty>{t['none']}</p>")
        return "".join(parts)
    parts.append(f"<h3>{t['cost_chart']}</h3>")
    parts.append(cost_chart(data.buckets, data.bucket_s, t["cost"], t["baseline"]))
    parts.append(f"<h3>{t['route_mix']}</h3>")
    parts.append(route_chart(data.buckets, data.bucket_s))
    rows = data.report.rows
    parts.append(
        table(
            "routes",
            [t["route"], t["requests"], t["share"], t["cost"], t["baseline"]],
            (
                [
                    r.key or "(refused)",
                    Raw(f"<span class=requests>{r.requests}</span>"),
                    f"{r.requests / total.requests:.1%}",
                    usd(r.cost_nanos),
                    usd(r.baseline_nanos),
                ]
                for r in rows
            ),
            [f"data-route='{esc(r.key)}'" for r in rows],
        )
    )
    return "".join(parts)

"""Privacy and safety: how many requests carried each kind of personal data and where they went
(counts from the request log's `pii` column: never the data), and the moderation review queue
with approve (ok) / reject (bad) — the queue shows excerpts of flagged text, so admins only."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from thrifty.api.console._html import Raw, View, esc, table
from thrifty.api.console.svg import bar_chart
from thrifty.store.audit import AuditEvent, detail
from thrifty.store.console import PrivacyReport, load, privacy_report
from thrifty.store.review import ReviewStore, Verdict

if TYPE_CHECKING:
    from thrifty.api.app import Runtime

TEXT = {
    "en": {
        "pii": "Requests carrying personal data, by kind and where they went",
        "with_pii": "requests with personal data, of",
        "kind": "Kind",
        "where": "Route",
        "none_pii": "No request carried personal data in this window.",
        "queue": "Moderation review queue",
        "empty_queue": "Nothing is waiting for review.",
        "id": "Item",
        "when": "When",
        "direction": "Direction",
        "action": "Action taken",
        "lists": "Lists",
        "excerpt": "Excerpt",
        "verdict": "Your call",
        "approve": "Approve (ok)",
        "reject": "Reject (bad)",
        "admins": "The review queue shows flagged text: an admin key sees it and acts on it.",
    },
    "zh": {
        "pii": "携带个人数据的请求：按类型与去向",
        "with_pii": "个请求携带个人数据，总请求数",
        "kind": "类型",
        "where": "路由",
        "none_pii": "这段时间内没有请求携带个人数据。",
        "queue": "内容审核队列",
        "empty_queue": "没有待审核的条目。",
        "id": "条目",
        "when": "时间",
        "direction": "方向",
        "action": "已采取的措施",
        "lists": "词表",
        "excerpt": "摘录",
        "verdict": "你的判断",
        "approve": "通过（ok）",
        "reject": "驳回（bad）",
        "admins": "审核队列包含被标记的文本：需要管理员密钥才能查看和处理。",
    },
}


def pending(url: str, limit: int = 50) -> list[dict[str, Any]]:
    store = ReviewStore(url)
    try:
        return store.list(verdict="pending", limit=limit)
    finally:
        store.close()


def mark(rt: Runtime, item_id: int, verdict: Verdict, actor: str) -> bool:
    """Record an admin's verdict, and audit it."""
    store = ReviewStore(rt.settings.database_url)
    try:
        found = store.mark(item_id, verdict, "console")
    finally:
        store.close()
    if found:
        rt.audit.add(
            AuditEvent(
                ts=time.time(),
                action="review.mark",
                actor=actor,
                endpoint=f"POST /console/review/{item_id}",
                status=200,
                detail=detail(item=item_id, verdict=verdict),
            )
        )
    return found


def render(view: View) -> str:
    t = view.words(TEXT)
    url = view.rt.settings.database_url
    report = load(url, lambda c: privacy_report(c, view.since, view.tenant), PrivacyReport())
    parts = [f"<h3>{t['pii']}</h3>"]
    parts.append(
        f"<p><b id=with-pii>{report.with_pii}</b> {t['with_pii']} "
        f"<b id=pii-of>{report.requests}</b></p>"
    )
    if report.kinds:
        totals = sorted(
            ((k, sum(c.values())) for k, c in report.kinds.items()), key=lambda i: -i[1]
        )
        parts.append(bar_chart("pii-chart", t["kind"], totals))
        cells = [
            (kind, route or "(refused)", n, route)
            for kind, counts in sorted(report.kinds.items())
            for route, n in counts.most_common()
        ]
        parts.append(
            table(
                "pii",
                [t["kind"], t["where"], t["requests"]],
                ([kind, shown, Raw(f"<span class=n>{n}</span>")] for kind, shown, n, _ in cells),
                [
                    f"data-kind='{esc(kind)}' data-route='{esc(route)}'"
                    for kind, _, _, route in cells
                ],
            )
        )
    else:
        parts.append(f"<p id=no-pii>{t['none_pii']}</p>")
    parts.append(f"<h3>{t['queue']}</h3>")
    if not view.admin:
        parts.append(f"<p id=queue-admins>{t['admins']}</p>")
        return "".join(parts)
    items = pending(url)
    if not items:
        parts.append(f"<p id=empty-queue>{t['empty_queue']}</p>")
        return "".join(parts)
    rows = []
    for item in items:
        when = datetime.fromtimestamp(item["ts"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        excerpt = " ".join(item["excerpt"].split())
        buttons = "".join(
            f"<form class=inline method=post "
            f"action='/console/review/{item['id']}?lang={view.lang}'>"
            f"<input type=hidden name=csrf value='{view.csrf}'><input type=hidden name=verdict "
            f"value={verdict}><button type=submit class={verdict}>{label}</button></form> "
            for verdict, label in (("ok", t["approve"]), ("bad", t["reject"]))
        )
        rows.append(
            [
                item["id"],
                when,
                item["tenant"],
                item["direction"],
                item["action"],
                item["lists"],
                excerpt[:160],
                Raw(buttons),
            ]
        )
    parts.append(
        table(
            "review",
            [
                t["id"],
                t["when"],
                t["tenant"],
                t["direction"],
                t["action"],
                t["lists"],
                t["excerpt"],
                t["verdict"],
            ],
            rows,
            [f"data-item={item['id']}" for item in items],
        )
    )
    return "".join(parts)

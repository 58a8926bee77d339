"""Routing: decisions by rule and reason, cascade escalations and fallbacks, shadow outcomes,
and the quality/cost curve of the last `thrifty route eval` (stored by that command)."""

from __future__ import annotations

from datetime import UTC, datetime

from thrifty.api.console._html import Raw, View, esc, percent, table, usd
from thrifty.api.console.svg import bar_chart, curve_chart
from thrifty.store.console import (
    RouteEval,
    RoutingReport,
    ShadowRow,
    latest_route_eval,
    load,
    routing_report,
    shadow_report,
)

TEXT = {
    "en": {
        "decisions": "Decisions by rule and reason",
        "rule": "Rule",
        "reason": "Reason",
        "route": "Route",
        "escalations": "Escalations (cascade)",
        "first": "First target",
        "check": "Failed check",
        "to": "Escalated to",
        "no_escalations": "No escalations in this window.",
        "fallbacks": "Fallbacks",
        "failed": "Failed target",
        "next": "Next target",
        "error": "Error",
        "shadow": "Shadow outcomes",
        "target": "Target",
        "judged": "Judged",
        "good": "Good enough",
        "rate": "Rate",
        "no_shadow": "No shadow evaluations in this window.",
        "curve": "Quality against cost: the last `thrifty route eval`",
        "quality": "quality",
        "cost_usd": "cost",
        "no_curve": "No `thrifty route eval` stored yet.",
        "apgr": "APGR",
        "at": "At the quality target",
        "threshold": "threshold",
        "cloud": "cloud",
        "cheaper": "cheaper",
    },
    "zh": {
        "decisions": "按规则与原因的路由决策",
        "rule": "规则",
        "reason": "原因",
        "route": "路由",
        "escalations": "升级（级联）",
        "first": "首选目标",
        "check": "未通过的检查",
        "to": "升级到",
        "no_escalations": "这段时间内没有升级。",
        "fallbacks": "回退",
        "failed": "失败的目标",
        "next": "下一个目标",
        "error": "错误",
        "shadow": "影子评估结果",
        "target": "目标",
        "judged": "已评判",
        "good": "足够好",
        "rate": "比例",
        "no_shadow": "这段时间内没有影子评估。",
        "curve": "质量与花费：最近一次 `thrifty route eval`",
        "quality": "质量",
        "cost_usd": "花费",
        "no_curve": "还没有保存的 `thrifty route eval` 结果。",
        "apgr": "APGR",
        "at": "达到质量目标时",
        "threshold": "阈值",
        "cloud": "云端",
        "cheaper": "倍节省",
    },
}


def render(view: View) -> str:
    t = view.words(TEXT)
    url = view.rt.settings.database_url
    report = load(url, lambda c: routing_report(c, view.since, view.tenant), RoutingReport())
    shadows: list[ShadowRow] = load(url, lambda c: shadow_report(c, view.since, view.tenant), [])
    curve: RouteEval | None = load(url, latest_route_eval, None)
    parts = [f"<h3>{t['decisions']}</h3>"]
    if not report.requests:
        parts.append(f"<p id=empty>{t['none']}</p>")
    else:
        decisions = report.decisions.most_common()
        by_rule: dict[str, int] = {}
        for (rule, _, _), count in decisions:
            by_rule[rule] = by_rule.get(rule, 0) + count
        parts.append(
            bar_chart("rule-chart", t["rule"], sorted(by_rule.items(), key=lambda i: -i[1]))
        )
        parts.append(
            table(
                "decisions",
                [t["rule"], t["reason"], t["route"], t["requests"]],
                (
                    [rule, why or "–", route or "(refused)", Raw(f"<span class=n>{n}</span>")]
                    for (rule, why, route), n in decisions
                ),
                [
                    f"data-rule='{esc(rule)}' data-route='{esc(route)}'"
                    for (rule, _, route), _ in decisions
                ],
            )
        )
    parts.append(f"<h3>{t['escalations']}</h3>")
    if report.escalations:
        rows = report.escalations.most_common()
        parts.append(
            table(
                "escalations",
                [t["first"], t["check"], t["to"], t["requests"]],
                ([*key, n] for key, n in rows),
            )
        )
    else:
        parts.append(f"<p id=no-escalations>{t['no_escalations']}</p>")
    if report.fallbacks:
        parts.append(f"<h3>{t['fallbacks']}</h3>")
        rows = report.fallbacks.most_common()
        parts.append(
            table(
                "fallbacks",
                [t["failed"], t["next"], t["error"], t["requests"]],
                ([*key, n] for key, n in rows),
            )
        )
    parts.append(f"<h3>{t['shadow']}</h3>")
    if shadows:
        parts.append(
            table(
                "shadows",
                [t["target"], t["judged"], t["good"], t["rate"], t["cost"]],
                (
                    [
                        s.target,
                        s.judged,
                        s.good,
                        percent(s.good / s.judged if s.judged else None),
                        usd(s.cost_nanos),
                    ]
                    for s in shadows
                ),
                [f"data-target='{esc(s.target)}'" for s in shadows],
            )
        )
    else:
        parts.append(f"<p id=no-shadow>{t['no_shadow']}</p>")
    parts.append(f"<h3>{t['curve']}</h3>")
    parts.append(_curve(curve, t) if curve is not None else f"<p id=no-curve>{t['no_curve']}</p>")
    return "".join(parts)


def _curve(curve: RouteEval, t: dict[str, str]) -> str:
    result = curve.result
    when = datetime.fromtimestamp(curve.ts, UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        f"<p id=curve-of>{esc(curve.local)} / {esc(curve.cloud)} · {when}</p>",
        curve_chart(result.get("points") or [], t["quality"], t["cost_usd"]),
    ]
    apgr = result.get("apgr")
    at = result.get("at_quality") or {}
    facts = [f"{t['apgr']} <b id=apgr>{'–' if apgr is None else f'{apgr:.3f}'}</b>"]
    if at.get("threshold") is not None:
        saving = at.get("cost_saving_x")
        facts.append(
            f"{t['at']} {at['target']:.0%}: {t['threshold']} {at['threshold']:.4f}, "
            f"{t['cloud']} {at['cloud_share']:.1%}"
            + (f", {saving:.2f}× {t['cheaper']}" if saving is not None else "")
        )
    parts.append("<p>" + " · ".join(facts) + "</p>")
    return "".join(parts)

"""Tenants and keys: usage in the window and today (UTC), daily budgets and what is left of them,
rate limits. Admins see every tenant and key; other roles their own tenant's."""

from __future__ import annotations

import time

from thrifty.api.console._html import View, esc, table, usd
from thrifty.costs.money import to_nanos
from thrifty.store.console import TenantUsage, Usage, load, tenant_usage

TEXT = {
    "en": {
        "tenants": "Tenants",
        "keys": "API keys",
        "key": "Key",
        "role": "Role",
        "status": "Status",
        "window_use": "Requests in the window",
        "today": "Today (UTC)",
        "tokens_today": "Tokens today",
        "cost_today": "Cost today",
        "tokens_left": "Daily tokens left",
        "usd_left": "Daily budget left",
        "rate": "Rate limits (rpm / tpm)",
        "unlimited": "unlimited",
        "no_keys": "No API keys: the gateway serves without keys on loopback.",
    },
    "zh": {
        "tenants": "租户",
        "keys": "API 密钥",
        "key": "密钥",
        "role": "角色",
        "status": "状态",
        "window_use": "这段时间内的请求",
        "today": "今天（UTC）",
        "tokens_today": "今天的词元数",
        "cost_today": "今天的花费",
        "tokens_left": "今日剩余词元",
        "usd_left": "今日剩余预算",
        "rate": "速率限制（每分钟请求 / 词元）",
        "unlimited": "不限",
        "no_keys": "没有 API 密钥：网关只在本机回环地址上免密钥服务。",
    },
}


def _left(limit: int | None, used: int, t: dict[str, str], money: bool = False) -> str:
    if limit is None:
        return t["unlimited"]
    left = max(limit - used, 0)
    return f"{usd(left)} / {usd(limit)}" if money else f"{left} / {limit}"


def _rate(rpm: int | None, tpm: int | None, t: dict[str, str]) -> str:
    return f"{t['unlimited'] if rpm is None else rpm} / {t['unlimited'] if tpm is None else tpm}"


def render(view: View) -> str:
    t = view.words(TEXT)
    rt = view.rt
    url = rt.settings.database_url
    now = time.time()
    midnight = now - now % 86400
    window = load(url, lambda c: tenant_usage(c, view.since, view.tenant), TenantUsage())
    today = load(url, lambda c: tenant_usage(c, midnight, view.tenant), TenantUsage())
    records = [r for r in rt.keys.records() if view.tenant in (None, r.spec.tenant)]
    limits = rt.settings.limits
    names = set(window.tenants) | set(today.tenants) | {r.spec.tenant for r in records}
    if view.tenant is None:
        names |= set(limits.tenants)
    else:
        names = {view.tenant}
    rows, attrs = [], []
    for name in sorted(names):
        quota = limits.tenants.get(name) or limits.default_tenant
        used = today.tenants.get(name, Usage())
        budget = to_nanos(quota.daily_usd) if quota and quota.daily_usd is not None else None
        rows.append(
            [
                name,
                window.tenants.get(name, Usage()).requests,
                used.tokens,
                usd(used.cost_nanos),
                _left(quota.daily_tokens if quota else None, used.tokens, t),
                _left(budget, used.cost_nanos, t, money=True),
                _rate(quota.rpm if quota else None, quota.tpm if quota else None, t),
            ]
        )
        attrs.append(f"data-tenant='{esc(name)}'")
    head = [
        t["tenant"],
        t["window_use"],
        t["tokens_today"],
        t["cost_today"],
        t["tokens_left"],
        t["usd_left"],
        t["rate"],
    ]
    parts = [f"<h3>{t['tenants']}</h3>", table("tenants", head, rows, attrs)]
    parts.append(f"<h3>{t['keys']}</h3>")
    if not records:
        parts.append(f"<p id=no-keys>{t['no_keys']}</p>")
        return "".join(parts)
    rows, attrs = [], []
    for r in sorted(records, key=lambda r: (r.spec.tenant, r.created_at)):
        s = r.spec
        used = today.keys.get(r.id, Usage())
        rows.append(
            [
                r.id,
                s.tenant,
                s.role,
                r.status(now),
                window.keys.get(r.id, Usage()).requests,
                used.tokens,
                usd(used.cost_nanos),
                _left(s.daily_tokens, used.tokens, t),
                _left(s.daily_usd_nanos, used.cost_nanos, t, money=True),
                _rate(s.rpm, s.tpm, t),
            ]
        )
        attrs.append(f"data-key='{esc(r.id)}' data-tenant='{esc(s.tenant)}'")
    head = [t["key"], t["tenant"], t["role"], t["status"], *head[1:]]
    parts.append(table("keys", head, rows, attrs))
    return "".join(parts)

"""The console tests' gateway (fake engines instead of models), keys of two tenants,
and a known set of requests: local, cloud, a cache hit, personal data, a cascade escalation,
flagged text for the review queue; plus a stored `route eval` sweep and shadow outcomes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from fakes.upstream import FakeUpstream
from support import ThriftyServer

CASCADE_RULE = {
    "name": "triage",
    "when": {"header": {"x-check": "labels"}},
    "target": {
        "cascade": ["local", "deepseek-chat"],
        "checks": ["labels"],
        "labels": ["refund", "other"],
    },
}
SWEEP = {
    "points": [
        {
            "threshold": 0.0,
            "cloud_share": 0.0,
            "quality": 0.5,
            "quality_vs_cloud": 0.55,
            "cost_usd": 0.0001,
        },
        {
            "threshold": 0.5,
            "cloud_share": 0.4,
            "quality": 0.8,
            "quality_vs_cloud": 0.88,
            "cost_usd": 0.0009,
        },
        {
            "threshold": 1.0,
            "cloud_share": 1.0,
            "quality": 0.91,
            "quality_vs_cloud": 1.0,
            "cost_usd": 0.002,
        },
    ],
    "apgr": 0.712,
    "cpt": {"50": 0.2, "80": 0.6, "95": None},
    "at_quality": {
        "target": 0.85,
        "threshold": 0.5,
        "cloud_share": 0.4,
        "quality_vs_cloud": 0.88,
        "cost_saving_x": 2.2222,
    },
}


@dataclass
class Gateway:
    server: ThriftyServer
    secrets: dict[str, str]  # admin (acme), acme (user), beta (user), viewer (beta)

    @property
    def url(self) -> str:
        return self.server.url

    def rows(self, tenant: str | None = None) -> list[dict[str, Any]]:
        rows = self.server.rows()
        return [r for r in rows if tenant is None or r["tenant"] == tenant]


def ask(server: ThriftyServer, model: str, text: str, key: str, **headers: str) -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": text}], "temperature": 0}
    response = httpx.post(
        server.base_url + "/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}", **headers},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return dict(response.headers)


def config(fake_local: FakeUpstream, fake_cloud: FakeUpstream, words: Path) -> dict[str, Any]:
    return {
        "local": {"url": fake_local.url, "system_prompt": None},
        "upstreams": [
            {
                "name": "deepseek",
                "base_url": fake_cloud.url,
                "models": {"deepseek-chat": "deepseek-chat"},  # priced by the shipped table
            }
        ],
        "auth": {"refresh_s": 0.2},
        "router": {"rules": [CASCADE_RULE]},
        "moderation": {"files": [str(words)], "review_sample": 1.0},
        "limits": {"tenants": {"beta": {"daily_tokens": 100000, "daily_usd": "1.50"}}},
        "experiments": {
            "chat-ab": {
                "variants": {
                    "control": {"model": "local", "weight": 0.5},
                    "cloud": {"model": "deepseek-chat", "weight": 0.5},
                }
            }
        },
    }

"""Models: each local model's state (loaded, loading, unloaded; adapters), its engine's slots,
queue and in-flight requests, tokens per second from the request log; upstreams and their
circuit breakers. The live parts are this worker's (each of `serve --workers N` has its own)."""

from __future__ import annotations

from thrifty.api.console._html import Raw, View, esc, table
from thrifty.store.console import Throughput, load, local_throughput

TEXT = {
    "en": {
        "local": "Local models",
        "model": "Model",
        "state": "State",
        "adapter_of": "Adapter of",
        "pinned": "Pinned",
        "engines": "Engines (slots)",
        "engine": "Engine",
        "adapters": "Adapters",
        "parallel": "Parallel slots",
        "in_flight": "In flight",
        "queue": "Queue",
        "memory": "Memory (MB)",
        "speed": "Tokens per second (answered local requests in the window)",
        "tokens": "Completion tokens",
        "seconds": "Seconds answering",
        "tok_s": "tok/s",
        "no_local": "No local model is configured.",
        "upstreams": "Upstreams",
        "upstream": "Upstream",
        "names": "Model names",
        "breaker": "Circuit breaker",
        "no_upstreams": "No upstream is configured.",
        "yes": "yes",
        "no": "no",
        "live": "Live state of the worker that answered this page.",
    },
    "zh": {
        "local": "本地模型",
        "model": "模型",
        "state": "状态",
        "adapter_of": "所属基座",
        "pinned": "常驻",
        "engines": "推理引擎（槽位）",
        "engine": "引擎",
        "adapters": "适配器",
        "parallel": "并行槽位",
        "in_flight": "处理中",
        "queue": "队列",
        "memory": "内存（MB）",
        "speed": "每秒生成词元数（这段时间内本地回答的请求）",
        "tokens": "生成词元数",
        "seconds": "回答用时（秒）",
        "tok_s": "词元/秒",
        "no_local": "没有配置本地模型。",
        "upstreams": "上游",
        "upstream": "上游",
        "names": "模型名",
        "breaker": "熔断器",
        "no_upstreams": "没有配置上游。",
        "yes": "是",
        "no": "否",
        "live": "实时状态来自响应本页的工作进程。",
    },
}

_STATES = {"zh": {"loaded": "已加载", "loading": "加载中", "unloaded": "未加载"}}
_BREAKERS = {
    "en": {0: "closed", 1: "half-open", 2: "open"},
    "zh": {0: "关闭（正常）", 1: "半开（试探）", 2: "打开（熔断）"},
}
_CLASSES = {0: "closed", 1: "half_open", 2: "open"}


def render(view: View) -> str:
    t = view.words(TEXT)
    rt = view.rt
    parts = [f"<p class=note>{t['live']}</p>", f"<h3>{t['local']}</h3>"]
    pool = rt.registry.local
    if pool is None:
        parts.append(f"<p id=no-local>{t['no_local']}</p>")
    else:
        states = _STATES.get(view.lang, {})
        specs = sorted(pool.specs.values(), key=lambda s: (s.engine_key, s.adapter_of is not None))
        parts.append(
            table(
                "local-models",
                [t["model"], t["state"], t["adapter_of"], t["pinned"]],
                (
                    [
                        s.name,
                        Raw(f"<span class=state>{esc(states.get(st, st))}</span>"),
                        s.adapter_of or "–",
                        t["yes"] if s.pinned or s.name == pool.default else t["no"],
                    ]
                    for s, st in ((s, pool.state(s.name)) for s in specs)
                ),
                [f"data-model='{esc(s.name)}' data-state='{pool.state(s.name)}'" for s in specs],
            )
        )
        parts.append(f"<h3>{t['engines']}</h3>")
        slots = sorted(pool.slots.items())
        parts.append(
            table(
                "engines",
                [
                    t["engine"],
                    t["adapters"],
                    t["parallel"],
                    t["in_flight"],
                    t["queue"],
                    t["memory"],
                ],
                (
                    [
                        key,
                        ", ".join(slot.adapters) or "–",
                        pool.handles[key].parallel if key in pool.handles else "–",
                        slot.engine.in_flight,
                        slot.engine.load() + slot.waiting,
                        f"{slot.memory_mb():.0f}",
                    ]
                    for key, slot in slots
                ),
                [f"data-engine='{esc(key)}'" for key, _ in slots],
            )
        )
        speeds: list[Throughput] = load(
            rt.settings.database_url, lambda c: local_throughput(c, view.since), []
        )
        parts.append(f"<h3>{t['speed']}</h3>")
        parts.append(
            table(
                "speed",
                [t["model"], t["requests"], t["tokens"], t["seconds"], t["tok_s"]],
                (
                    [
                        s.model,
                        s.requests,
                        s.completion_tokens,
                        f"{s.seconds:.2f}",
                        "–" if s.tokens_per_s is None else f"{s.tokens_per_s:.1f}",
                    ]
                    for s in speeds
                ),
                [f"data-model='{esc(s.model)}'" for s in speeds],
            )
        )
    parts.append(f"<h3>{t['upstreams']}</h3>")
    upstreams = rt.settings.upstreams
    if not upstreams:
        parts.append(f"<p id=no-upstreams>{t['no_upstreams']}</p>")
        return "".join(parts)
    names = _BREAKERS[view.lang]
    rows, attrs = [], []
    for up in upstreams:
        breaker = rt.parts.breakers.get(up.name)
        state = int(breaker.state) if breaker is not None else 0
        rows.append(
            [
                up.name,
                ", ".join(sorted(up.models)),
                Raw(f"<span class={_CLASSES[state]}>{esc(names[state])}</span>"),
            ]
        )
        attrs.append(f"data-upstream='{esc(up.name)}' data-breaker='{_CLASSES[state]}'")
    parts.append(table("upstreams", [t["upstream"], t["names"], t["breaker"]], rows, attrs))
    return "".join(parts)

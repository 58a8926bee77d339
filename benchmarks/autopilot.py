"""The autopilot over simulated days of customer-service traffic: local share, cost, quality.

    python benchmarks/autopilot.py [--days 3] [--per-day 420] [--epochs 3] [--plot autopilot.png]

A real `thrifty serve`: the bundled SmolLM2-135M as `local`, and a cloud stand-in (the tests'
fake upstream with an answer book) that answers from the references and is right 95% of the time,
priced as deepseek-chat. Every request asks for `auto`; the configured rule sends everything to
the cloud, so before the autopilot promotes anything the local share is 0%. Traffic per day is
the routing benchmark's mix (benchmarks/routing.py: 60% the intent task of `examples/intent`,
Chinese and English; 15% FAQ, 15% arithmetic, 10% code), with new intent phrasings every day.
Capture is on. After each day's traffic the scheduler's run happens: `thrifty autopilot run` as a
child process (collect → … → gate → candidate; the next day's traffic is the live test; then the
decision); not after the last day, whose run no measured traffic would show. Per day: local
share of all requests and of the intent task, cost per 1,000 requests (marginal basis, as
routing compares; fully loaded beside it), and quality relative to all-cloud (the served
answers' score over the stand-in's score on the same items).

Targets (issue 18): intent local share 0% → ≥ 70%; cost per 1,000 down ≥ 50%; quality ≥ 95% of
all-cloud on every day after the first promotion, never below 90%. The table says which are met.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, os.path.dirname(__file__))
from _common import ROOT, machine_header, start_fake_upstream, table, thrifty_serve
from routing import MAX_TOKENS, Item, reference, score, workload

INTENT = ROOT / "examples" / "intent"
CLOUD_RIGHT = 0.95


@dataclass
class Served:
    item: Item
    route: str
    reason: str
    cost_nanos: int
    seconds: float
    score: float
    cloud_score: float


def intent_pool(seed: int, need: int) -> list[Item]:
    """Every intent phrasing of examples/intent (train and test), and when the days need more,
    new ones from its generator (`thrifty.train.intent`: the same templates, other slot fills),
    shuffled: no phrasing comes twice."""
    from thrifty.train.intent import build

    rows = []
    for name in ("train.jsonl", "test.jsonl"):
        rows += [json.loads(line) for line in (INTENT / name).read_text().splitlines() if line]
    seen = {r["messages"][1]["content"] for r in rows}
    more = 0
    while len(rows) < need:
        more += 1
        for row in (r for split in build(seed=1000 * more + seed) for r in split):
            if row.text not in seen:
                seen.add(row.text)
                rows.append({"messages": row.messages()})
    random.Random(seed).shuffle(rows)
    labels = sorted({r["messages"][-1]["content"] for r in rows})
    return [
        Item(
            f"intent-{i}", "intent", r["messages"][:-1], r["messages"][-1]["content"], labels=labels
        )
        for i, r in enumerate(rows)
    ]


def day_items(day: int, per_day: int, pool: list[Item], seed: int) -> list[Item]:
    mix = [i for i in workload(per_day, seed + day) if i.kind != "intent"]
    n_intent = per_day - len(mix)
    intents = pool[day * n_intent : (day + 1) * n_intent]
    items = [*intents, *mix]
    random.Random(seed + day).shuffle(items)
    return items


def stand_in_answer(item: Item, rng: random.Random) -> str:
    """The cloud's answer: the reference 95% of the time, else a plausible wrong one."""
    if rng.random() < CLOUD_RIGHT:
        return reference(item)
    if item.kind == "intent":
        return next(label for label in item.labels if label != item.expected)
    return "I am not sure."


def ask(base_url: str, item: Item) -> tuple[str, str, str, int, float]:
    body = {"model": "auto", "messages": item.messages, "max_tokens": MAX_TOKENS[item.kind],
            "temperature": 0}  # fmt: skip
    started = time.monotonic()
    reply = httpx.post(base_url + "/chat/completions", json=body, timeout=300)
    seconds = time.monotonic() - started
    reply.raise_for_status()
    text = reply.json()["choices"][0]["message"]["content"] or ""
    header = reply.headers.get("x-thrifty-cost-usd") or "0"
    cost = round(float(header) * 1e9) if header != "unknown" else 0
    return text, reply.headers["x-thrifty-route"], reply.headers["x-thrifty-reason"], cost, seconds


def fully_loaded_nanos(served: list[Served]) -> int:
    from thrifty.costs.local import LocalCost

    local = LocalCost()
    return sum(
        local.cost_nanos(s.seconds, fully_loaded=True) if s.route == "local" else s.cost_nanos
        for s in served
    )


def config(
    upstream_url: str, min_examples: int, epochs: int, threads: int | None
) -> dict[str, Any]:
    return {
        "local": {"model": "smollm2-135m"},
        "upstreams": [
            {
                "name": "deepseek",
                "base_url": upstream_url,
                "models": {"deepseek-chat": "deepseek-chat"},
            }
        ],
        "router": {"rules": [{"name": "cloud", "target": "deepseek-chat"}]},
        "cache": {"enabled": False},
        # the cost column is marginal: local answers priced by their electricity, as routing
        # compares (the gateway's default, fully_loaded, adds the machine's depreciation)
        "costs": {"local_basis": "marginal"},
        "store": {"flush_interval_s": 0.1},
        "privacy": {"on_pii": "mask"},
        "autopilot": {
            "enabled": False,  # the benchmark runs the scheduler's run itself, once a day
            "min_examples": min_examples,
            "holdout": 0.2,
            "metric": "exact",
            "max_tokens": 8,
            "train": {
                "epochs": epochs,
                "lr": 1e-3,
                "batch_size": 8,
                "max_len": 160,
                "threads": threads,
            },
            "gate": {"cloud_share": 0.8, "regression_examples": 8},
            "shadow": {"min_requests": 16, "max_requests": 48},
        },
        "distill": {"capture_tenants": ["*"]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--per-day", type=int, default=420)
    parser.add_argument("--min-examples", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3, help="autopilot.train.epochs")
    parser.add_argument("--threads", type=int, help="autopilot.train.threads (every core)")
    parser.add_argument("--plot", type=Path, default=Path("autopilot.png"))
    args = parser.parse_args()
    print(machine_header("thrifty autopilot: simulated days of customer-service traffic"))
    rng = random.Random(args.seed)
    n_intent = args.per_day - len([i for i in workload(args.per_day, 0) if i.kind != "intent"])
    pool = intent_pool(args.seed, args.days * n_intent)
    upstream = start_fake_upstream()
    rows, series = [], []
    with tempfile.TemporaryDirectory(prefix="thrifty-autopilot-") as tmp:
        home = Path(tmp)
        server = thrifty_serve(
            home, config=config(upstream.url, args.min_examples, args.epochs, args.threads)
        ).start()
        try:
            for day in range(args.days):
                items = day_items(day, args.per_day, pool, args.seed)
                book = {i.question: stand_in_answer(i, rng) for i in items}
                upstream.set_answers(book)
                served = []
                for item in items:
                    text, route, reason, cost, seconds = ask(server.base_url, item)
                    cloud = score(item, book[item.question])
                    served.append(
                        Served(item, route, reason, cost, seconds, score(item, text), cloud)
                    )
                started = time.monotonic()
                if day + 1 < args.days:
                    outcome = autopilot_run(home, server.base_url)
                else:  # no later day's traffic could show what it did
                    outcome = "not run: the last day"
                rows.append(summarize(day + 1, served, outcome, time.monotonic() - started))
                series.append(rows[-1])
                print(table(HEADERS, [r[:-1] for r in rows[-1:]]), flush=True)
        finally:
            server.stop()
            upstream.stop()
    print()
    print(table(HEADERS, [r[:-1] for r in rows]))
    report_targets(rows)
    plot(series, args.plot)


def autopilot_run(home: Path, base_url: str) -> str:
    """The scheduler's run, as a child process; its last line (the task's outcome)."""
    env = {**os.environ, "THRIFTY_HOME": str(home), "THRIFTY_CONFIG": str(home / "thrifty.yaml")}
    run = subprocess.run(
        [sys.executable, "-m", "thrifty.cli", "autopilot", "run", "--url", base_url],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    for line in run.stderr.splitlines():  # the steps' scores, as the run says them
        if line.strip().startswith(("finetune:", "gate:", "shadow:", "decide:")):
            print(f"  | {line.strip()}", flush=True)
    return (run.stdout.strip().splitlines() or [run.stderr.strip()[-200:]])[-1]


HEADERS = ["day", "local share", "intent local", "cost /1k (marginal)", "fully loaded /1k",
           "quality vs cloud", "autopilot run"]  # fmt: skip


def summarize(day: int, served: list[Served], outcome: str, run_s: float) -> list[Any]:
    n = len(served)
    local = sum(s.route == "local" for s in served) / n
    intents = [s for s in served if s.item.kind == "intent"]
    intent_local = sum(s.route == "local" for s in intents) / max(1, len(intents))
    marginal = sum(s.cost_nanos for s in served) / n * 1000 / 1e9
    loaded = fully_loaded_nanos(served) / n * 1000 / 1e9
    cloud = sum(s.cloud_score for s in served)
    quality = sum(s.score for s in served) / cloud if cloud else 0.0
    facts = {"local": local, "intent_local": intent_local, "cost": marginal, "quality": quality}
    return [day, f"{local:.0%}", f"{intent_local:.0%}", f"${marginal:.4f}", f"${loaded:.4f}",
            f"{quality:.1%}", f"{_short(outcome)} ({run_s:.0f}s)", facts]  # fmt: skip


def _short(outcome: str) -> str:
    """The run's status and, when the gate decided, its scores: `rejected: candidate 0.4 …`."""
    status = outcome.split(" [")[0].split(": ", 1)[-1]
    found = outcome.find("candidate ")
    return status + (": " + outcome[found : found + 40] if found >= 0 else "")


def report_targets(rows: list[list[Any]]) -> None:
    first, last = rows[0][-1], rows[-1][-1]
    promoted = next((i for i, r in enumerate(rows) if r[-1]["intent_local"] > 0), None)
    after = [r[-1]["quality"] for r in rows[promoted:]] if promoted is not None else []
    checks = [
        ("intent local share >= 70% (last day)", last["intent_local"] >= 0.70,
         f"{last['intent_local']:.0%}"),
        ("cost per 1,000 down >= 50% (last day vs day 1)",
         first["cost"] > 0 and last["cost"] <= 0.5 * first["cost"],
         f"{(1 - last['cost'] / first['cost']) if first['cost'] else 0:.0%} down"),
        ("quality >= 95% of all-cloud after the first promotion",
         bool(after) and min(after) >= 0.95, f"min {min(after):.1%}" if after else "no promotion"),
        ("quality never below 90%", min(r[-1]["quality"] for r in rows) >= 0.90,
         f"min {min(r[-1]['quality'] for r in rows):.1%}"),
    ]  # fmt: skip
    print("\ntargets:")
    for name, met, value in checks:
        print(f"  {'met    ' if met else 'MISSED '} {name}: {value}")


def plot(rows: list[list[Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = [r[0] for r in rows]
    facts = [r[-1] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    axes[0].plot(days, [f["intent_local"] * 100 for f in facts], "o-", label="intent task")
    axes[0].plot(days, [f["local"] * 100 for f in facts], "s--", label="all traffic")
    axes[0].set(title="local share (%)", xlabel="day", ylim=(0, 100))
    axes[0].legend()
    axes[1].plot(days, [f["cost"] for f in facts], "o-")
    axes[1].set(title="cost per 1,000 requests (USD, marginal)", xlabel="day")
    axes[2].plot(days, [f["quality"] * 100 for f in facts], "o-")
    axes[2].axhline(95, color="grey", linestyle=":", label="target 95%")
    axes[2].axhline(90, color="red", linestyle=":", label="floor 90%")
    axes[2].legend()
    axes[2].set(title="quality vs all-cloud (%)", xlabel="day")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()

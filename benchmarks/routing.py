"""What routing saves at what quality, on a customer-service-shaped workload.

    python benchmarks/routing.py [--items 100] [--student PATH.gguf] [--seed 0]

Workload (fixed mix, Chinese and English, seeded): 60% the intent task of `examples/intent`
(classify a customer's message into one of ten labels), 15% short factual / FAQ questions, 15%
arithmetic word problems, 10% code questions (a Python function, run against tests in the eval
sandbox). Every item is answered by both targets, as `thrifty route eval` does:

- local: `thrifty serve` on the intent student (`--student`, a GGUF from `thrifty finetune` +
  `thrifty export`) for intent items, and on the bundled model for the rest; without a student
  the bundled model answers everything (the report says which);
- cloud: an OpenAI-compatible stand-in that answers from the references and is right 95% of the
  time (the fake upstream of the tests with an answer book), priced as deepseek-chat.

The items are split in half, seeded: the learned scorer is trained on the first half's outcomes
(`thrifty.gateway.scorer.train`, the multilingual encoder plus cheap cues) and every row below is
measured on the second half only. Rows: all-local, all-cloud, random (at the learned router's
cloud share), today's rules (complexity >= 0.7 goes to the cloud), the learned scorer at the
cheapest threshold that keeps 95% of all-cloud quality, the cascade (answer locally, escalate when
a check fails: logprob, labels, code), and the oracle (the better answer; on a tie the cheaper).
Costs on the marginal basis (the electricity of the engine seconds each local answer took), with
the fully loaded figure (the shipped 2,000 USD machine at 25% utilization) beside it; cloud at
deepseek-chat's price table now. Then APGR and CPT of the learned scorer, and the decision time of
the router with the learned scorer, embedding included, against an explicit-model request.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, os.path.dirname(__file__))
from _common import (
    ROOT,
    load_average,
    machine_header,
    percentile,
    start_fake_upstream,
    table,
    thrifty_serve,
)

INTENT_SUITE = ROOT / "examples" / "intent" / "intent.suite.jsonl"
MIX = {"intent": 0.60, "faq": 0.15, "arithmetic": 0.15, "code": 0.10}
CLOUD_RIGHT = 0.95
MAX_TOKENS = {"intent": 8, "faq": 32, "arithmetic": 48, "code": 128}
MIN_LOGPROB = -1.0

FAQ = [
    ("What is the capital of France?", "Paris"), ("中国的首都是哪里？", "北京"),
    ("What is the largest planet in the solar system?", "Jupiter"), ("一年有多少个月？", "12"),
    ("What color is the sky on a clear day?", "blue"), ("水的化学式是什么？", "H2O"),
    ("How many days are in a week?", "7"), ("太阳从哪个方向升起？", "东"),
    ("What is the boiling point of water in Celsius?", "100"), ("长城在哪个国家？", "中国"),
    ("Which animal is known as the king of the jungle?", "lion"), ("一天有多少小时？", "24"),
    ("What language is spoken in Brazil?", "Portuguese"), ("熊猫主要吃什么？", "竹"),
    ("What is the freezing point of water in Celsius?", "0"), ("日本的首都是哪里？", "东京"),
    ("How many continents are there?", "7"), ("彩虹有几种颜色？", "7"),
    ("What do bees make?", "honey"), ("地球绕着什么转？", "太阳"),
]  # fmt: skip
CODE = [
    ("add", "Write a Python function add(a, b) that returns the sum of a and b.",
     "assert add(2, 3) == 5 and add(-1, 1) == 0"),
    ("is_even", "写一个 Python 函数 is_even(n)，当 n 是偶数时返回 True，否则返回 False。",
     "assert is_even(4) and not is_even(7)"),
    ("reverse_words", "Write a Python function reverse_words(s) that returns the words of s "
     "in reverse order, joined by single spaces.",
     "assert reverse_words('a b c') == 'c b a'"),
    ("count_vowels", "写一个 Python 函数 count_vowels(s)，"
     "返回字符串 s 中元音字母 aeiou 的个数（不区分大小写）。",
     "assert count_vowels('Hello World') == 3"),
    ("fib", "Write a Python function fib(n) that returns the n-th Fibonacci number, fib(0) = 0, "
     "fib(1) = 1.", "assert fib(10) == 55 and fib(1) == 1"),
    ("max_of", "写一个 Python 函数 max_of(xs)，不使用内置 max，返回列表 xs 中的最大值。",
     "assert max_of([3, 9, 2]) == 9"),
    ("palindrome", "Write a Python function palindrome(s) that returns True when s reads the "
     "same backwards, ignoring case.", "assert palindrome('Level') and not palindrome('abc')"),
    ("dedupe", "写一个 Python 函数 dedupe(xs)，去掉列表中的重复元素并保持原有顺序。",
     "assert dedupe([1, 2, 1, 3, 2]) == [1, 2, 3]"),
]  # fmt: skip


@dataclass
class Item:
    id: str
    kind: str
    messages: list[dict[str, str]]
    expected: Any
    test: str = ""  # code: the assertion
    labels: list[str] = field(default_factory=list)

    @property
    def question(self) -> str:
        return self.messages[-1]["content"]


@dataclass
class Answer:
    text: str
    seconds: float
    prompt_tokens: int
    completion_tokens: int
    mean_logprob: float | None = None


def arithmetic(rng: random.Random, n: int) -> Item:
    a, b, c = rng.randint(3, 19), rng.randint(2, 9), rng.randint(2, 30)
    if n % 2:
        q = f"小明有 {a} 个苹果，又买了 {b} 袋，每袋 {c} 个。他现在一共有多少个苹果？只回答数字。"
    else:
        q = f"Anna has {a} apples and buys {b} bags with {c} apples each. How many apples does she have now? Answer with the number."  # noqa: E501
    return Item(f"arith-{n}", "arithmetic", [{"role": "user", "content": q}], a + b * c)


def workload(total: int, seed: int) -> list[Item]:
    rng = random.Random(seed)
    rows = [json.loads(line) for line in INTENT_SUITE.read_text(encoding="utf-8").splitlines()]
    header = rows[0]["suite"]
    labels = [w.strip(" .,") for w in header["system"].split("labels:")[1].split(".")[0].split(",")]
    intents = rows[1:]
    rng.shuffle(intents)
    counts = {kind: round(total * share) for kind, share in MIX.items()}
    items: list[Item] = []
    for row in intents[: counts["intent"]]:
        messages = [
            {"role": "system", "content": header["system"]},
            {"role": "user", "content": row["prompt"]},
        ]
        items.append(Item(row["id"], "intent", messages, row["expected"], labels=labels))
    for n in range(counts["faq"]):
        q, a = FAQ[n % len(FAQ)]
        items.append(Item(f"faq-{n}", "faq", [{"role": "user", "content": q}], a))
    items += [arithmetic(rng, n) for n in range(counts["arithmetic"])]
    for n in range(counts["code"]):
        name, q, test = CODE[n % len(CODE)]
        items.append(Item(f"code-{n}", "code", [{"role": "user", "content": q}], name, test))
    rng.shuffle(items)
    return items


def reference(item: Item) -> str:
    if item.kind == "code":
        return {
            "add": "```python\ndef add(a, b):\n    return a + b\n```",
            "is_even": "```python\ndef is_even(n):\n    return n % 2 == 0\n```",
            "reverse_words": "```python\ndef reverse_words(s):\n    return ' '.join(s.split()[::-1])\n```",  # noqa: E501
            "count_vowels": "```python\ndef count_vowels(s):\n    return sum(c in 'aeiou' for c in s.lower())\n```",  # noqa: E501
            "fib": "```python\ndef fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n```",  # noqa: E501
            "max_of": "```python\ndef max_of(xs):\n    m = xs[0]\n    for x in xs:\n        if x > m:\n            m = x\n    return m\n```",  # noqa: E501
            "palindrome": "```python\ndef palindrome(s):\n    s = s.lower()\n    return s == s[::-1]\n```",  # noqa: E501
            "dedupe": "```python\ndef dedupe(xs):\n    return list(dict.fromkeys(xs))\n```",
        }[item.expected]
    return str(item.expected)


def score(item: Item, text: str) -> float:
    from thrifty.evals.runner import extract_code
    from thrifty.evals.sandbox import Limits, run_python
    from thrifty.evals.scorers import contains, exact, numeric

    if item.kind == "intent":
        return exact(text.strip().strip(".").lower(), item.expected).score
    if item.kind == "faq":
        return contains(text, item.expected).score
    if item.kind == "arithmetic":
        return numeric(text, item.expected).score
    program = f"{extract_code(text)}\n\n{item.test}\n"
    return 1.0 if run_python(program, Limits(timeout_s=5)).passed else 0.0


def ask(base_url: str, model: str, item: Item, logprobs: bool) -> Answer:
    body: dict[str, Any] = {
        "model": model,
        "messages": item.messages,
        "max_tokens": MAX_TOKENS[item.kind],
        "temperature": 0,
    }
    if logprobs:
        body["logprobs"] = True
    started = time.perf_counter()
    r = httpx.post(
        base_url + "/chat/completions",
        json=body,
        timeout=300,
        headers={"x-thrifty-cache": "no-cache, no-store"},
    )
    seconds = time.perf_counter() - started
    r.raise_for_status()
    data = r.json()
    choice = data["choices"][0]
    mean = None
    content = ((choice.get("logprobs") or {}).get("content")) or []
    values = [t["logprob"] for t in content if isinstance(t.get("logprob"), int | float)]
    if values:
        mean = sum(values) / len(values)
    usage = data.get("usage") or {}
    return Answer(
        choice["message"].get("content") or "",
        seconds,
        int(usage.get("prompt_tokens") or 0),
        int(usage.get("completion_tokens") or 0),
        mean,
    )


def checks_fail(item: Item, answer: Answer) -> str | None:
    """The cascade's verdict on a local answer: the first failed check, or None."""
    if answer.mean_logprob is not None and answer.mean_logprob < MIN_LOGPROB:
        return "logprob"
    if item.labels and answer.text.strip().strip(".").lower() not in item.labels:
        return "labels"
    if item.kind == "code":
        from thrifty.evals.runner import extract_code

        try:
            tree = ast.parse(extract_code(answer.text))
        except SyntaxError:
            return "code"
        if not any(isinstance(node, ast.FunctionDef) for node in ast.walk(tree)):
            return "code"
    return None


@dataclass
class Row:
    name: str
    cloud: list[bool]  # per item: went to the cloud
    extra_local: list[bool] | None = None  # cascade: a local attempt before the cloud


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--student", type=Path, help="The intent student's GGUF.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--answers",
        type=Path,
        help="A JSON file of both targets' answers: written after asking, read instead of "
        "asking when it exists (to re-analyse a run without the models).",
    )
    args = parser.parse_args()

    from thrifty.costs.local import LocalCost
    from thrifty.costs.pricebook import PriceBook
    from thrifty.costs.usage import TokenUsage
    from thrifty.encoders import load_embedder
    from thrifty.evals.routing import Pair, summarize
    from thrifty.gateway.complexity import HeuristicScorer
    from thrifty.gateway.scorer import RequestFeatures, design_row, train
    from thrifty.store.outcomes import Outcome

    print(machine_header("routing: saving at a quality bar"))
    items = workload(args.items, args.seed)
    rng = random.Random(args.seed + 1)
    work = Path(tempfile.mkdtemp(prefix="thrifty-bench-routing-"))
    cloud_fake = start_fake_upstream()
    book = {}
    for item in items:
        book[item.question] = reference(item) if rng.random() < CLOUD_RIGHT else "I am not sure."
    cloud_fake.set_answers(book)
    local_answers: dict[str, Answer] = {}
    cloud_answers: dict[str, Answer] = {}
    student = args.student if args.student and args.student.is_file() else None
    started = time.monotonic()
    saved = args.answers is not None and args.answers.is_file()
    if saved:
        stored = json.loads(args.answers.read_text(encoding="utf-8"))
        local_answers = {k: Answer(**v) for k, v in stored["local"].items()}
        cloud_answers = {k: Answer(**v) for k, v in stored["cloud"].items()}
        cloud_fake.stop()
        print(f"answers read from {args.answers} (asked on {stored['when']}, {stored['load']})")
    try:
        servers = {"bundled": thrifty_serve(work / "bundled", config={"cache": {"enabled": False}})}
        if student is not None:
            servers["student"] = thrifty_serve(
                work / "student", "-m", str(student), config={"cache": {"enabled": False}}
            )
        for kind, server in servers.items() if not saved else ():
            with server:
                for item in items:
                    use = "student" if student is not None and item.kind == "intent" else "bundled"
                    if use == kind:
                        local_answers[item.id] = ask(server.base_url, "local", item, True)
        for item in items if not saved else ():
            cloud_answers[item.id] = ask(cloud_fake.url, "deepseek-chat", item, False)
    finally:
        cloud_fake.stop()
    answered_s = time.monotonic() - started
    if args.answers is not None and not saved:
        from dataclasses import asdict

        args.answers.write_text(
            json.dumps(
                {
                    "when": datetime.now(UTC).isoformat(timespec="seconds"),
                    "load": load_average(),
                    "local": {k: asdict(v) for k, v in local_answers.items()},
                    "cloud": {k: asdict(v) for k, v in cloud_answers.items()},
                },
                ensure_ascii=False,
            ),
            encoding="utf-8",
        )

    prices = PriceBook.load()
    now = datetime.now(UTC)
    machine = LocalCost()

    def cloud_nanos(a: Answer) -> int:
        usage = TokenUsage(a.prompt_tokens, a.completion_tokens)
        return prices.cost_nanos("deepseek-chat", usage, now) or 0

    def local_nanos(a: Answer, loaded: bool) -> int:
        return machine.cost_nanos(a.seconds, fully_loaded=loaded)

    heuristic = HeuristicScorer()
    features = {i.id: RequestFeatures.of(i.messages, heuristic) for i in items}
    q_local = {i.id: score(i, local_answers[i.id].text) for i in items}
    q_cloud = {i.id: score(i, cloud_answers[i.id].text) for i in items}

    order = [i.id for i in items]
    random.Random(args.seed + 2).shuffle(order)
    half = len(order) // 2
    train_ids, test_ids = set(order[:half]), order[half:]
    by_id = {i.id: i for i in items}

    outcomes = []
    for item_id in train_ids:
        f = features[item_id]
        for target, q in (("local", q_local[item_id]), ("deepseek-chat", q_cloud[item_id])):
            outcomes.append(
                Outcome(
                    "eval",
                    target,
                    f.fingerprint,
                    q >= 1.0,
                    score=q,
                    text=f.text,
                    task=f.task,
                    features=f.cheap,
                    ref=item_id,
                )
            )
    embedder = load_embedder("use-multilingual-v3")
    model = train(outcomes, embedder, min_examples=2)
    vectors = embedder.embed_batch([features[i].text or " " for i in test_ids])
    p_local = {
        i: model.predict(design_row(features[i].cheap, features[i].task, vectors[n]))["local"]
        for n, i in enumerate(test_ids)
    }

    def pairs(scores: dict[str, float], loaded: bool) -> list[Pair]:
        return [
            Pair(
                i,
                scores[i],
                q_local[i],
                q_cloud[i],
                local_nanos(local_answers[i], loaded),
                cloud_nanos(cloud_answers[i]),
            )
            for i in test_ids
        ]

    learned = summarize(pairs(p_local, False), 0.95)
    learned_loaded = summarize(pairs(p_local, True), 0.95)
    at = learned["at_quality"]
    threshold = at["threshold"]
    learned_cloud = [p_local[i] < threshold if threshold is not None else True for i in test_ids]
    share = sum(learned_cloud) / len(test_ids)
    coin = random.Random(args.seed + 3)
    rows = [
        Row("all-local", [False] * len(test_ids)),
        Row("all-cloud", [True] * len(test_ids)),
        Row(f"random ({share:.0%} cloud)", [coin.random() < share for _ in test_ids]),
        Row("today's rules (complexity>=0.7)", [features[i].complexity >= 0.7 for i in test_ids]),
        Row("learned scorer @95%", learned_cloud),
    ]
    failed = [checks_fail(by_id[i], local_answers[i]) for i in test_ids]
    rows.append(
        Row(
            "cascade (logprob, labels, code)",
            [f is not None for f in failed],
            [f is not None for f in failed],
        )
    )
    # the oracle knows both answers' quality: the better one, and on a tie the cheaper one
    oracle = [
        q_local[i] < q_cloud[i]
        or (
            q_local[i] == q_cloud[i]
            and local_nanos(local_answers[i], False) > cloud_nanos(cloud_answers[i])
        )
        for i in test_ids
    ]
    rows.append(Row("oracle", oracle))

    all_cloud_q = sum(q_cloud[i] for i in test_ids) / len(test_ids)
    all_cloud_cost = sum(cloud_nanos(cloud_answers[i]) for i in test_ids)
    out = []
    savings: dict[str, float] = {}
    for row in rows:
        quality = sum(
            q_cloud[i] if c else q_local[i] for i, c in zip(test_ids, row.cloud, strict=True)
        ) / len(test_ids)
        costs = []
        for loaded in (False, True):
            total = 0
            for i, c in zip(test_ids, row.cloud, strict=True):
                if not c or row.extra_local is not None:  # the cascade pays for both attempts
                    total += local_nanos(local_answers[i], loaded)
                if c:
                    total += cloud_nanos(cloud_answers[i])
            costs.append(total)
        saving = all_cloud_cost / costs[0] if costs[0] else float("inf")
        savings[row.name] = saving
        out.append(
            [
                row.name,
                f"{sum(row.cloud) / len(test_ids):.0%}",
                f"{quality:.3f}",
                f"{quality / all_cloud_q:.1%}" if all_cloud_q else "-",
                f"${costs[0] / 1e9:.6f}",
                f"{saving:.2f}x",
                f"${costs[1] / 1e9:.6f}",
                f"{all_cloud_cost / costs[1]:.2f}x" if costs[1] else "-",
            ]
        )

    print(
        f"\nworkload: {len(items)} items ({', '.join(f'{k} {v:.0%}' for k, v in MIX.items())}), "
        f"Chinese and English; evaluated on {len(test_ids)} held out, the learned scorer trained "
        f"on the other {len(train_ids)}"
    )
    print(
        "local: "
        + (
            f"intent student {student.name} for intent, "
            if student
            else "the bundled smollm2-135m for everything (no intent student given), "
        )
        + "bundled smollm2-135m for the rest; cloud: stand-in right "
        f"{CLOUD_RIGHT:.0%} of the time, priced as deepseek-chat; answers took {answered_s:.0f}s"
    )
    per_kind = {}
    for kind in MIX:
        ids = [i for i in test_ids if by_id[i].kind == kind]
        if ids:
            per_kind[kind] = (
                sum(q_local[i] for i in ids) / len(ids),
                sum(q_cloud[i] for i in ids) / len(ids),
            )
    seconds = sorted(local_answers[i].seconds for i in test_ids)
    tokens = sum(local_answers[i].completion_tokens for i in test_ids)
    n = len(test_ids)
    print(
        f"local answers: median {seconds[n // 2]:.2f} s each, {tokens / sum(seconds):.1f} answer "
        f"tokens/s (load now: {load_average()}); mean cost per answer: local marginal "
        f"${sum(local_nanos(local_answers[i], False) for i in test_ids) / n / 1e9:.7f}, fully "
        f"loaded ${sum(local_nanos(local_answers[i], True) for i in test_ids) / n / 1e9:.7f}; "
        f"cloud ${sum(cloud_nanos(cloud_answers[i]) for i in test_ids) / n / 1e9:.7f}"
    )
    print(
        "quality by kind (local / cloud): "
        + ", ".join(f"{k} {a:.2f}/{b:.2f}" for k, (a, b) in per_kind.items())
    )
    print()
    print(
        table(
            [
                "row",
                "cloud",
                "quality",
                "vs cloud",
                "cost marginal",
                "saving",
                "cost loaded",
                "saving (loaded)",
            ],
            out,
        )
    )
    oracle_saving = savings["oracle"]
    learned_saving = at["cost_saving_x"]
    print()
    print(
        "learned scorer at 95% of all-cloud quality: "
        + (
            f"{learned_saving:.2f}x cheaper (marginal; fully loaded "
            f"{learned_loaded['at_quality']['cost_saving_x']}x), {at['cloud_share']:.0%} cloud, "
            f"{at['quality_vs_cloud']:.1%} of all-cloud quality"
            if learned_saving is not None
            else "no threshold reaches it"
        )
        + f"; the oracle saves {oracle_saving:.2f}x"
    )
    print(f"APGR {learned['apgr']}, CPT {learned['cpt']}  (targets: >= 2.5x, APGR >= 0.7)")
    print(decision_time(model, [by_id[i] for i in test_ids], work))


def decision_time(model: Any, items: list[Item], work: Path) -> str:
    """p50/p99 of the router's decision with the learned scorer, embedding included."""
    from thrifty.backends import Registry, Target
    from thrifty.config import RouterSettings
    from thrifty.context import RequestContext
    from thrifty.gateway.router import Router
    from thrifty.gateway.scorer import artifact_path

    model.save(artifact_path(work))

    class Engine:
        def saturated(self) -> bool:
            return False

        def load(self) -> int:
            return 0

    reg = Registry()
    engine = Engine()
    reg.local = engine  # type: ignore[assignment]
    reg.add(["local"], Target("local", engine, "local"))  # type: ignore[arg-type]
    reg.add(["deepseek-chat"], Target("deepseek-chat", object(), "deepseek-chat", "deepseek"))  # type: ignore[arg-type]
    router = Router(RouterSettings(scorer="learned"), reg, home=work)
    stage = router.on_request
    loop = asyncio.new_event_loop()

    def once(model_name: str, item: Item) -> float:
        ctx = RequestContext(
            "chat", {"model": model_name, "messages": item.messages}, model_name, False
        )
        started = time.perf_counter()
        loop.run_until_complete(stage(ctx))
        return (time.perf_counter() - started) * 1e6

    for item in items[:5]:
        once("auto", item)  # loads the encoder and the artifact
    auto = [once("auto", item) for item in items * 3]
    embedder = router.quality.embedder  # type: ignore[union-attr]
    embed = []
    for item in items * 3:
        started = time.perf_counter()
        embedder.embed(item.question)
        embed.append((time.perf_counter() - started) * 1e6)
    named = [once("deepseek-chat", item) for item in items * 3]
    p50 = percentile(auto, 0.5) / 1000
    return (
        f"decision time, learned scorer, embedding included: p50 {p50:.2f} "
        f"ms, p99 {percentile(auto, 0.99) / 1000:.2f} ms (target <= 3 ms p50), of which the "
        f"embedding alone p50 {percentile(embed, 0.5) / 1000:.2f} ms; an explicit-model "
        f"request: p50 {percentile(named, 0.5):.1f} µs (the router is skipped)"
    )


if __name__ == "__main__":
    main()

"""How long the privacy scan takes on the request path: the whole request, every field.

    python benchmarks/pii.py [--iterations N]

Prints p50/p99 in milliseconds of `pii_request.scan_request` (what `PIIScan` runs: every string
and number of the body at any depth, and the boundaries between strings) on a chat request
whose user message is a prompt of about 200 or 4,000 tokens, Chinese and English, clean and
with personal data; the request also carries a system message, `user`, `metadata` and a tool
with a described parameter. In the same run, the baselines: the message-only scan the gateway
ran before (`PIIDetector.scan_messages` over the messages, with the eight kinds it knew), and
the same over every kind. The ratio column is whole-request / old message-only.
A last row times the name-and-address pass when an address triggers it (a Chinese address and
name in a ~200-token prompt: the segmenter runs on the window around it).

The texts are built here: realistic prose with the numbers clean prompts carry (dates, times,
versions, prices, order numbers); the PII variant puts a phone number, an email address and an
ID number in the middle and at the end, so the scan cannot stop early on them. Token counts are
estimated (English ~4 characters a token, Chinese ~1.5), no tokenizer needed.
Targets: <= 0.3 ms p50 at 200 tokens, <= 3 ms at 4,000; the name-and-address pass <= 3 ms p50.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from thrifty.gateway.pii import PIIDetector
from thrifty.gateway.pii_request import scan_request

EN_SENTENCES = (
    "Please summarize the following meeting notes for the quarterly review.",
    "The team discussed the Python 3.11.7 migration and the 2024-03-15 10:30 deadline.",
    "The budget of $12,500 covers two contractors and the staging cluster.",
    "We also reviewed order #20240315 and the new caching layer in front of the API.",
    "Performance improved by 35% after switching to the async client; p99 dropped to 48 ms.",
    "Next steps: write tests, update the docs, and deploy to staging on Friday.",
    "Invoice INV-88213 for ¥1,299.00 is still pending approval from finance.",
    "Keep the answer under 300 words and use bullet points where it helps.",
)
CN_SENTENCES = (
    "请帮我总结一下这份会议纪要，重点列出行动项和负责人。",
    "团队讨论了第三季度的产品路线图，包括在2024年3月15日之前完成Python 3.11的迁移。",
    "本季度预算为人民币12,500元，主要用于两名外包人员和预发环境的服务器。",
    "我们还复盘了上个月的订单处理流程，订单号20240315的问题已经修复。",
    "新的缓存层上线后性能提升了35%，P99延迟下降到48毫秒。",
    "下一步：补充单元测试、更新文档，并在周五部署到预发环境。",
    "发票金额为¥1,299.00，目前仍在等待财务审批。",
    "回答请控制在300字以内，必要时使用要点列表。",
)
EN_PII = "Reach the customer at +86 138 1234 5678 or zhang.wei@example.com, ID 110105194912310038."
CN_PII = "客户电话13812345678，邮箱zhang.wei@163.com，身份证号110105194912310038。"

CHARS_PER_TOKEN = {"en": 4.0, "cn": 1.5}


def build(sentences: tuple[str, ...], tokens: int, chars_per_token: float) -> str:
    """Cycle the sentences until the text reaches about `tokens` tokens."""
    target = int(tokens * chars_per_token)
    parts: list[str] = []
    length = 0
    while length < target:
        sentence = sentences[len(parts) % len(sentences)]
        parts.append(sentence)
        length += len(sentence) + 1
    return " ".join(parts)


def with_pii(clean: str, pii: str) -> str:
    middle = len(clean) // 2
    return f"{clean[:middle]} {pii} {clean[middle:]} {pii}"


def build_texts() -> dict[str, str]:
    """The benchmark's prompts by name: en/cn, ~200/~4,000 tokens, clean/pii."""
    texts = {}
    for tokens in (200, 4000):
        for lang, sentences, pii in (("en", EN_SENTENCES, EN_PII), ("cn", CN_SENTENCES, CN_PII)):
            clean = build(sentences, tokens, CHARS_PER_TOKEN[lang])
            texts[f"{lang} ~{tokens} tokens clean"] = clean
            texts[f"{lang} ~{tokens} tokens pii"] = with_pii(clean, pii)
    return texts


OLD_KINDS = (
    "id_card", "phone", "bank_card", "credit_card", "email", "ip_address", "passport", "us_ssn"
)  # fmt: skip
ADDRESS = "收件人：张伟，地址北京市朝阳区建国路88号3单元502室，电话请见备注。"


def request(prompt: str) -> dict[str, Any]:
    """A chat request as clients send one: the prompt plus the fields around it."""
    return {
        "model": "deepseek-chat",
        "user": "user-42",
        "metadata": {"team": "support", "ticket": "A-1024"},
        "messages": [
            {"role": "system", "content": "You are a helpful support assistant. 请用中文回答。"},
            {"role": "user", "content": prompt},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "lookup_order",
                    "description": "Look up an order by its number.",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "order": {"type": "string", "description": "The order number."}
                        },
                        "required": ["order"],
                    },
                },
            }
        ],
        "max_tokens": 512,
        "temperature": 0.7,
    }


def percentiles(fn: Callable[[], object], iterations: int) -> tuple[float, float]:
    for _ in range(min(50, iterations)):  # warm caches and the regex engine
        fn()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(iterations):
        start = clock()
        fn()
        samples.append(clock() - start)
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49] / 1e6, cuts[98] / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000, help="scans per 200-token row")
    args = parser.parse_args()

    detector = PIIDetector()
    old = PIIDetector(OLD_KINDS)
    load = os.getloadavg()[0]
    print(
        f"Privacy scan latency (ms), Python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {load:.1f} (other work on the machine inflates p99)"
    )
    header = (
        f"{'prompt':<24}{'chars':>7}{'whole p50':>11}{'whole p99':>11}"
        f"{'old msgs p50':>14}{'all msgs p50':>14}{'ratio':>8}"
    )
    print(header)
    print("-" * len(header))
    for tokens in (200, 4000):
        # fewer iterations for the long prompts keep the run short on a shared machine
        iterations = args.iterations if tokens == 200 else max(50, args.iterations // 10)
        for lang, sentences, pii in (("en", EN_SENTENCES, EN_PII), ("cn", CN_SENTENCES, CN_PII)):
            clean = build(sentences, tokens, CHARS_PER_TOKEN[lang])
            for label, text in (("clean", clean), ("pii", with_pii(clean, pii))):
                body = request(text)
                whole = percentiles(partial(scan_request, detector, body), iterations)
                messages = body["messages"]
                before = percentiles(partial(old.scan_messages, messages), iterations)
                now = percentiles(partial(detector.scan_messages, messages), iterations)
                name = f"{lang} ~{tokens} tokens {label}"
                print(
                    f"{name:<24}{len(text):>7}{whole[0]:>11.3f}{whole[1]:>11.3f}"
                    f"{before[0]:>14.3f}{now[0]:>14.3f}{whole[0] / before[0]:>7.1f}x"
                )
    text = build(CN_SENTENCES, 200, CHARS_PER_TOKEN["cn"])
    text = text[: len(text) // 2] + ADDRESS + text[len(text) // 2 :]
    body = request(text)
    assert "name_address" in scan_request(detector, body).kinds  # the pass ran and found it
    whole = percentiles(partial(scan_request, detector, body), args.iterations)
    before = percentiles(partial(old.scan_messages, body["messages"]), args.iterations)
    print(
        f"{'cn ~200 name+address':<24}{len(text):>7}{whole[0]:>11.3f}{whole[1]:>11.3f}"
        f"{before[0]:>14.3f}{'':>14}{whole[0] / before[0]:>7.1f}x"
    )


if __name__ == "__main__":
    main()

"""Tool-call validity of the bundled local model, with and without thrifty's grammar.

50 prompts (English and Chinese) over five tools, `tool_choice: required`, temperature 0:

- with the grammar: through `thrifty serve`, which prompts the model with the tools and holds
  generation to a grammar built from their JSON schemas (`thrifty.backends.tools`);
- without it: the same prompt (the same tool listing and instructions, rendered by the same
  code) sent to a plain llama-server started with thrifty's flags, and the answer parsed by the
  same parser;
- the template's own: the request as the client sent it (`tools`, `tool_choice`) to that plain
  llama-server (`--jinja`), which renders the tools with the model's chat template and parses
  the calls itself: the path thrifty would take where a template supports tools.

A call is valid when the answer holds at least one call, every call names one of the tools and
its arguments validate against that tool's schema; "right tool" also asks that the first call is
the tool the prompt is about.

    .venv/bin/python benchmarks/tool_calls.py                 # ~5-15 min on 2 shared cores
    .venv/bin/python benchmarks/tool_calls.py -m gemma3-270m --limit 20
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import orjson

from _common import Server, free_port, machine_header, table, thrifty_serve
from thrifty.backends.local_api import prepare
from thrifty.backends.tools import parse_answer, plan_tools

TOOLS: list[dict[str, Any]] = [
    {"name": "get_weather", "description": "Current weather in a city",
     "parameters": {"type": "object", "required": ["city"], "properties": {
         "city": {"type": "string"},
         "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}}},
    {"name": "send_email", "description": "Send an email",
     "parameters": {"type": "object", "required": ["to", "subject", "body"], "properties": {
         "to": {"type": "string"}, "subject": {"type": "string"}, "body": {"type": "string"}}}},
    {"name": "convert_currency", "description": "Convert an amount between currencies",
     "parameters": {"type": "object", "required": ["amount", "from", "to"], "properties": {
         "amount": {"type": "number"}, "from": {"type": "string"}, "to": {"type": "string"}}}},
    {"name": "create_event", "description": "Put an event in the calendar",
     "parameters": {"type": "object", "required": ["title", "date"], "properties": {
         "title": {"type": "string"}, "date": {"type": "string"},
         "attendees": {"type": "array", "items": {"type": "string"}}}}},
    {"name": "search_products", "description": "Search the shop's catalogue",
     "parameters": {"type": "object", "required": ["query"], "properties": {
         "query": {"type": "string"}, "max_price": {"type": "number"},
         "in_stock": {"type": "boolean"}}}},
]  # fmt: skip

PROMPTS: dict[str, list[str]] = {
    "get_weather": [
        "What's the weather in Paris?",
        "Is it raining in London right now?",
        "How hot is it in Dubai, in fahrenheit?",
        "Weather for Tokyo please",
        "Do I need an umbrella in Seattle today?",
        "北京今天天气怎么样？",
        "上海现在多少度？",
        "广州会下雨吗？",
        "查一下深圳的天气",
        "成都的天气，用摄氏度",
    ],
    "send_email": [
        "Email bob@example.com that the meeting moved to 3pm",
        "Send alice@example.com a thank-you note for the flowers",
        "Write to hr@example.com asking for my payslip",
        "Tell team@example.com the build is green",
        "Send an email to sam@example.com with subject Lunch saying see you at noon",
        "给 li@example.com 发邮件，说明天的会议取消",
        "发邮件给 wang@example.com 感谢他的帮助",
        "通知 ops@example.com 服务器已经重启",
        "给 zhao@example.com 写信，主题是报价",
        "发一封邮件给 chen@example.com，告诉她包裹到了",
    ],
    "convert_currency": [
        "Convert 100 USD to EUR",
        "How much is 250 euros in yen?",
        "50 GBP in US dollars?",
        "Change 1200 CNY into USD",
        "What are 75 Swiss francs in euros?",
        "100美元换成人民币是多少？",
        "把500欧元换成日元",
        "300英镑等于多少人民币",
        "兑换 1000 港币到美元",
        "20 美元是多少欧元",
    ],
    "create_event": [
        "Schedule a dentist appointment on 2026-03-14",
        "Add 'Team offsite' to my calendar for June 2 with Ann and Raj",
        "Create an event called Launch review next Friday",
        "Put Mom's birthday on 12 May",
        "Book 'Quarterly planning' for 2026-01-20 with the finance team",
        "在日历里添加 3月8日 的项目评审",
        "安排下周一的团队聚餐",
        "把 5月1日 的旅行加到日历",
        "创建一个活动：年终总结，12月30日",
        "给我和小王约个会，明天下午",
    ],
    "search_products": [
        "Find running shoes under 80 dollars",
        "Search for a waterproof jacket that's in stock",
        "Look up USB-C chargers",
        "Any mechanical keyboards below 100?",
        "Show me coffee grinders in stock",
        "搜索一下蓝牙耳机",
        "找 200 元以内的电饭煲",
        "有没有现货的登山包？",
        "查找儿童自行车",
        "搜一下最便宜的机械键盘",
    ],
}

SCHEMAS = {t["name"]: t["parameters"] for t in TOOLS}
OPENAI_TOOLS = [{"type": "function", "function": t} for t in TOOLS]


def score(calls: list[dict[str, Any]], expected: str) -> tuple[bool, bool]:
    """(valid, right tool) for the parsed calls of one answer."""
    if not calls:
        return False, False
    for call in calls:
        fn = call["function"]
        if fn["name"] not in SCHEMAS:
            return False, False
        try:
            jsonschema.validate(orjson.loads(fn["arguments"]), SCHEMAS[fn["name"]])
        except (jsonschema.ValidationError, orjson.JSONDecodeError):
            return False, False
    return True, calls[0]["function"]["name"] == expected


def body(prompt: str, max_tokens: int) -> dict[str, Any]:
    return {
        "model": "local",
        "messages": [{"role": "user", "content": prompt}],
        "tools": OPENAI_TOOLS,
        "tool_choice": "required",
        "temperature": 0,
        "max_tokens": max_tokens,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-m", "--model", default="smollm2-135m")
    parser.add_argument("--limit", type=int, default=50, help="prompts to run (of 50)")
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument(
        "--threads", type=int, default=1, help="engine threads, each (two engines share the CPU)"
    )
    args = parser.parse_args()
    cases = [(tool, p) for tool, prompts in PROMPTS.items() for p in prompts]
    cases = cases[:: max(1, len(cases) // args.limit)][: args.limit]
    print(machine_header(f"tool-call validity, {args.model}, {len(cases)} prompts"))
    home = Path(tempfile.mkdtemp(prefix="thrifty-bench-tools-"))
    from thrifty.backends import local_engine
    from thrifty.config import Settings

    local = {"model": args.model, "parallel": 1, "threads": args.threads}
    settings = Settings(home=home / "plain", local=local)
    engine = local_engine(settings)
    port = free_port()
    engine.port = port
    command = engine.command(engine.locate())  # exactly the flags thrifty gives llama-server
    results: dict[str, list[tuple[bool, bool, float]]] = {
        "with grammar": [],
        "without": [],
        "template's own": [],
    }
    with (
        thrifty_serve(home / "thrifty", config={"local": local}) as gw,
        Server(command, port, home / "llama.log", ready_path="/health") as plain,
        httpx.Client(timeout=300) as http,
    ):
        for expected, prompt in cases:
            request = body(prompt, args.max_tokens)
            started = time.perf_counter()
            answer = http.post(gw.base_url + "/chat/completions", json=request).json()
            took = time.perf_counter() - started
            calls = answer["choices"][0]["message"].get("tool_calls") or []
            results["with grammar"].append((*score(calls, expected), took))

            call = prepare("chat", request, default_max_tokens=None, slots=1)
            bare = {k: v for k, v in call.body.items() if k != "grammar"}  # same prompt, free
            bare["stop"] = engine.stop or None
            started = time.perf_counter()
            answer = http.post(plain.base_url + "/chat/completions", json=bare).json()
            took = time.perf_counter() - started
            text = answer["choices"][0]["message"].get("content") or ""
            plan = plan_tools(request)
            assert plan is not None
            parsed = parse_answer(text, plan).tool_calls
            results["without"].append((*score(parsed, expected), took))

            native = {**request, "stop": engine.stop or None}
            started = time.perf_counter()
            reply = http.post(plain.base_url + "/chat/completions", json=native)
            took = time.perf_counter() - started
            message = reply.json()["choices"][0]["message"] if reply.status_code == 200 else {}
            results["template's own"].append(
                (*score(message.get("tool_calls") or [], expected), took)
            )
            done = len(results["without"])
            valid = " ".join(f"{k}: {sum(v for v, _, _ in r)}" for k, r in results.items())
            print(f"{done}/{len(cases)} valid so far: {valid}", file=sys.stderr, flush=True)
    rows = []
    for name, runs in results.items():
        valid = sum(v for v, _, _ in runs)
        right = sum(r for _, r, _ in runs)
        mean_s = sum(t for _, _, t in runs) / len(runs)
        rows.append([name, f"{valid}/{len(runs)}", f"{right}/{len(runs)}", f"{mean_s:.2f}"])
    print(table(["", "valid calls", "right tool", "mean s"], rows))


if __name__ == "__main__":
    main()

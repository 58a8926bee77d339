"""A bounded load generator for any OpenAI-compatible chat endpoint (`thrifty bench`'s engine).

`concurrency` workers send chat completions back to back until `duration_s` has passed (or
`max_requests` have been sent); requests still in flight then finish, each within `timeout_s`,
so a run never lasts longer than ``duration_s + timeout_s``. Only the URL given is called:
redirects are not followed.

Per request it records the HTTP status (or `timeout`, `connect`, or
`bad-response` for a 200 whose body or stream broke off or was not JSON), the latency
to the last byte, the time to the first content token (streams), the completion and prompt
tokens (the usage the server reports; for streams without usage, the content chunks), and
thrifty's `x-thrifty-route` header when the server sends one.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thrifty.sse import DONE, iter_events

DEFAULT_PROMPTS: tuple[str, ...] = (
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "List three prime numbers.",
    "Translate 'good morning' into Spanish.",
    "用一句话介绍长城。",
    "What is 17 times 23?",
    "Name a colour of the rainbow.",
    "Give a synonym for 'quick'.",
)


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """What to send, where, and for how long."""

    url: str
    concurrency: int = 4
    duration_s: float = 30.0
    max_requests: int | None = None
    stream: bool = False
    model: str = "auto"
    max_tokens: int = 64
    temperature: float | None = None
    api_key: str | None = None
    timeout_s: float = 60.0
    prompts: tuple[list[dict[str, Any]], ...] = field(
        default_factory=lambda: tuple([{"role": "user", "content": p}] for p in DEFAULT_PROMPTS)
    )

    @property
    def endpoint(self) -> str:
        """The chat completions URL: `url` when it names it, else `url` + /chat/completions."""
        url = self.url.rstrip("/")
        return url if url.endswith("/chat/completions") else url + "/chat/completions"


@dataclass(slots=True)
class Outcome:
    """One request: `status` is the HTTP code as text, or timeout / connect / bad-response."""

    status: str
    latency_s: float
    ttft_s: float | None = None
    completion_tokens: int = 0
    prompt_tokens: int = 0
    route: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "200"


@dataclass(slots=True)
class BenchResult:
    """Every outcome of a run, and the summary numbers `thrifty bench` prints."""

    config: BenchConfig
    outcomes: list[Outcome]
    elapsed_s: float

    @property
    def ok(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.ok]

    def errors(self) -> dict[str, int]:
        return dict(sorted(Counter(o.status for o in self.outcomes if not o.ok).items()))

    def routes(self) -> dict[str, int]:
        found = Counter(o.route for o in self.outcomes if o.route)
        return dict(found.most_common())

    def summary(self) -> dict[str, Any]:
        ok = self.ok
        elapsed = max(self.elapsed_s, 1e-9)
        latencies = [o.latency_s for o in ok]
        ttfts = [o.ttft_s for o in ok if o.ttft_s is not None]
        completion = sum(o.completion_tokens for o in ok)
        return {
            "url": self.config.endpoint,
            "model": self.config.model,
            "stream": self.config.stream,
            "concurrency": self.config.concurrency,
            "elapsed_s": round(self.elapsed_s, 3),
            "requests": len(self.outcomes),
            "ok": len(ok),
            "errors": self.errors(),
            "requests_per_s": len(self.outcomes) / elapsed,
            "ok_per_s": len(ok) / elapsed,
            "latency_ms": _quantiles(latencies),
            "ttft_ms": _quantiles(ttfts) if self.config.stream else None,
            "prompt_tokens": sum(o.prompt_tokens for o in ok),
            "completion_tokens": completion,
            "tokens_per_s": completion / elapsed,
            "routes": self.routes(),
        }


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, q in [0, 1]; NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _quantiles(seconds: Sequence[float]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        value = percentile(seconds, q)
        out[name] = None if math.isnan(value) else round(value * 1000, 3)
    return out


def load_prompts(path: Path) -> tuple[list[dict[str, Any]], ...]:
    """Prompts from a file: JSONL with `messages` or `prompt` per line, else one prompt a line."""
    prompts: list[list[dict[str, Any]]] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        item: Any = None
        if line.startswith("{"):
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON: {exc}") from None
        if item is None:
            prompts.append([{"role": "user", "content": line}])
        elif isinstance(item.get("messages"), list) and item["messages"]:
            prompts.append(item["messages"])
        elif isinstance(item.get("prompt"), str):
            prompts.append([{"role": "user", "content": item["prompt"]}])
        else:
            raise ValueError(f"{path}:{number}: a JSON line needs `messages` or `prompt`")
    if not prompts:
        raise ValueError(f"{path}: no prompts")
    return tuple(prompts)


def run(config: BenchConfig) -> BenchResult:
    """Run the load and return what every request did."""
    return asyncio.run(_run(config))


async def _run(config: BenchConfig) -> BenchResult:
    import aiohttp

    headers = {"content-type": "application/json"}
    if config.api_key:
        headers["authorization"] = f"Bearer {config.api_key}"
    outcomes: list[Outcome] = []
    issued = 0
    start = time.perf_counter()
    deadline = start + config.duration_s
    connector = aiohttp.TCPConnector(limit=config.concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=config.timeout_s)
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, timeout=timeout, read_bufsize=1 << 20
    ) as session:

        async def worker() -> None:
            nonlocal issued
            while time.perf_counter() < deadline and (
                config.max_requests is None or issued < config.max_requests
            ):
                messages = config.prompts[issued % len(config.prompts)]
                issued += 1
                outcomes.append(await _one(session, config, messages))

        await asyncio.gather(*(worker() for _ in range(config.concurrency)))
    return BenchResult(config, outcomes, time.perf_counter() - start)


async def _one(session: Any, config: BenchConfig, messages: list[dict[str, Any]]) -> Outcome:
    import aiohttp

    body: dict[str, Any] = {
        "model": config.model,
        "messages": messages,
        "max_tokens": config.max_tokens,
    }
    if config.temperature is not None:
        body["temperature"] = config.temperature
    if config.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    began = time.perf_counter()
    outcome = Outcome("connect", 0.0)
    try:
        async with session.post(
            config.endpoint, data=json.dumps(body), allow_redirects=False
        ) as response:
            outcome.status = str(response.status)
            outcome.route = response.headers.get("x-thrifty-route")
            if response.status != 200:
                await response.read()
            elif config.stream:
                await _read_stream(response, outcome, began)
            else:
                payload = await response.json(content_type=None)
                _take_usage(outcome, payload.get("usage") if isinstance(payload, dict) else None)
    except TimeoutError:
        outcome.status = "timeout"
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, ValueError):
        outcome.status = "bad-response" if outcome.status == "200" else "connect"
    except aiohttp.ClientError:
        outcome.status = "connect"
    outcome.latency_s = time.perf_counter() - began
    return outcome


async def _read_stream(response: Any, outcome: Outcome, began: float) -> None:
    """Read server-sent events; note the first content token and the usage, if any."""
    chunks = 0
    usage: Any = None
    done = False
    async for events in iter_events(response.content.iter_any()):
        for data in events:
            if data == DONE:
                done = True
                break
            event = json.loads(data)
            if "error" in event:
                raise ValueError("error event in the stream")
            for choice in event.get("choices") or []:
                text = (choice.get("delta") or {}).get("content") or choice.get("text")
                if text:
                    chunks += 1
                    if outcome.ttft_s is None:
                        outcome.ttft_s = time.perf_counter() - began
            if event.get("usage"):
                usage = event["usage"]
        if done:
            break
    if not done:
        raise ValueError("the stream ended without [DONE]")
    _take_usage(outcome, usage)
    if usage is None:
        outcome.completion_tokens = chunks


def _take_usage(outcome: Outcome, usage: Any) -> None:
    if isinstance(usage, dict):
        outcome.completion_tokens = int(usage.get("completion_tokens") or 0)
        outcome.prompt_tokens = int(usage.get("prompt_tokens") or 0)

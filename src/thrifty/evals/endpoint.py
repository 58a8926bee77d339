"""One non-streaming chat completion against any OpenAI-compatible endpoint, timed and priced.

When the endpoint is thrifty, its answer says where it came from (``x-thrifty-route``) and what
it cost (``x-thrifty-cost-usd``); other endpoints leave both unknown.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from thrifty.costs.money import parse_nanos

Message = dict[str, Any]

# A benchmark measures the model: thrifty's response cache would answer a re-run for free.
_NO_CACHE = {"x-thrifty-cache": "no-cache, no-store"}


class EndpointError(RuntimeError):
    """A call that failed. ``permanent``: the endpoint refused this request (a 4xx other than
    408/429), so asking again will not help; otherwise (network, 5xx, 429) a resume retries it."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer and what it took."""

    text: str
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    route: str | None
    cost_nanos: int | None
    reasoning: str | None = None  # a thinking model's reasoning_content, kept apart from text


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where to send chat completions, and how."""

    base_url: str
    api_key: str | None = None
    use_cache: bool = False
    timeout_s: float = 600.0

    async def chat(
        self,
        session: aiohttp.ClientSession,
        model: str,
        messages: list[Message],
        max_tokens: int,
        temperature: float = 0.0,
    ) -> Reply:
        """POST /chat/completions and return the first choice's text."""
        headers = {"content-type": "application/json"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        if not self.use_cache:
            headers.update(_NO_CACHE)
        body = {
            "model": model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        url = self.base_url.rstrip("/") + "/chat/completions"
        started = time.monotonic()
        try:
            async with session.post(
                url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            ) as response:
                raw = await response.read()
                latency_ms = (time.monotonic() - started) * 1000
                if response.status != 200:
                    permanent = 400 <= response.status < 500 and response.status not in (408, 429)
                    raise EndpointError(
                        f"HTTP {response.status}: {_error_text(raw)}", permanent=permanent
                    )
                data = _json(raw)
                route = response.headers.get("x-thrifty-route")
                cost = response.headers.get("x-thrifty-cost-usd")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise EndpointError(f"{url}: {exc or type(exc).__name__}", permanent=False) from None
        try:
            text = data["choices"][0]["message"].get("content") or ""
            reasoning = data["choices"][0]["message"].get("reasoning_content")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise EndpointError("the response has no choices[0].message", permanent=False) from None
        usage = data.get("usage") or {}
        return Reply(
            text=str(text),
            latency_ms=latency_ms,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            route=route,
            cost_nanos=_nanos(cost),
            reasoning=reasoning if isinstance(reasoning, str) else None,
        )


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise EndpointError("the response is not JSON", permanent=False) from None


def _error_text(raw: bytes) -> str:
    try:
        error = _json(raw)["error"]
        return str(error.get("message") or error)[:300]
    except (EndpointError, KeyError, TypeError, AttributeError):
        return raw[:300].decode("utf-8", "replace")


def _nanos(header: str | None) -> int | None:
    if not header:
        return None
    try:
        return parse_nanos(header)
    except ValueError:
        return None

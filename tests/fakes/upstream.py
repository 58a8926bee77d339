"""A fake OpenAI-compatible upstream with injectable faults: the "cloud" of failure tests.

It is a real HTTP server (a raw ASGI app under uvicorn with httptools and uvloop, the cheapest
Python stack measured here: ~0.07-0.09 CPU-ms per request against aiohttp.web's ~0.10-0.15), so
the gateway benchmark can also use it as a minimal fast upstream.

Run it on its own::

    python tests/fakes/upstream.py --port 9000 [--mode ok] [--model-name fake-chat]

(it prints ``ready`` once listening), or from a test::

    with start_upstream() as up:          # a subprocess on a free port of 127.0.0.1
        up.set_mode("http429", retry_after=2, times=1)
        ...  # point thrifty at up.url
        assert up.stats()["requests"] == 2

Endpoints: ``POST /v1/chat/completions`` and ``POST /v1/completions`` (stream or not; usage with
DeepSeek's ``prompt_cache_hit_tokens`` / ``prompt_cache_miss_tokens``, where a message prefix seen
in an earlier request counts as hits; the answer names the length of the last user message, so
tests can tell answers apart), ``POST /v1/embeddings`` (a small vector per input),
``GET /v1/models``, ``GET /health``. ``GET /_stats`` also lists the headers of the last model
calls.

With ``--flavor deepseek-v4`` (``start_upstream(flavor="deepseek-v4")``) it behaves like DeepSeek's
API since V4: it knows only ``deepseek-v4-flash`` and ``deepseek-v4-pro`` (any other model name is
a 400, as the retired ``deepseek-chat`` is), thinks unless the request says
``"thinking": {"type": "disabled"}`` (the answer then carries ``reasoning_content``, whole and in
stream deltas, and usage counts it in ``completion_tokens`` and
``completion_tokens_details.reasoning_tokens``), and writes JSON the way Python's ``json.dumps``
does (spaces after separators, non-ASCII as ``\\u`` escapes). The reasoning of ``echo:TEXT`` is
``Echo TEXT back.``, in small pieces too.

Control: ``POST /_fault`` ``{"mode", "delay_s", "retry_after", "times"}``, ``GET /_stats``,
``POST /_reset``, ``POST /_answers`` ``{"QUESTION": "ANSWER", …}`` (an answer book: a last user
message found in it is answered with its entry, any other with the ``"*"`` entry if there is
one; an empty book clears it). Faults apply to
completion requests only; ``times: N`` limits a fault to the next N of them, after which the
upstream is ``ok`` again. The modes are in `MODES`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = Sequence[tuple[bytes, bytes]]

MODES: dict[str, str] = {
    "ok": 'answer normally (a last user message "echo:TEXT" is answered with TEXT, "call:TEXT" '
    'with a call of the first tool whose arguments are {"text": TEXT})',
    "slow": "sleep delay_s (default 1), then answer normally",
    "hang": "accept the request and never answer",
    "refuse": "close the TCP connection without a response",
    "http500": "500 with an OpenAI error body",
    "http429": "429 with Retry-After: retry_after (default 1)",
    "malformed": "200 with a body that is not JSON (stream: an event that is not JSON)",
    "cut": "stream: two chunks, then drop the connection; not stream: half a body, then drop",
    "null_choice": "a reply whose choices are [null] (stream: the first event's)",
    "drip": "the answer a few bytes at a time, delay_s (default 0.5) apart (stream: each event)",
}
DEFAULT_MODEL = "fake-chat"
FLAVORS = ("plain", "deepseek-v4", "python-sse")
V4_MODELS = ("deepseek-v4-flash", "deepseek-v4-pro")
_KEPT_BODIES = 50
_MAX_REMEMBERED_PREFIXES = 100_000
_JSON = b"application/json"


@dataclass(slots=True)
class Fault:
    """What the next completion requests get; `times` None means until changed."""

    mode: str = "ok"
    delay_s: float = 0.0
    retry_after: float = 1.0
    times: int | None = None

    @classmethod
    def parse(cls, data: Any) -> Fault:
        if not isinstance(data, dict):
            raise ValueError("the fault must be a JSON object")
        unknown = set(data) - {"mode", "delay_s", "retry_after", "times"}
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        mode = data.get("mode", "ok")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; modes: {', '.join(MODES)}")
        times = data.get("times")
        if times is not None and (not isinstance(times, int) or times < 1):
            raise ValueError("times must be a positive integer")
        default_delay = {"slow": 1.0, "drip": 0.5}.get(mode, 0.0)
        return cls(
            mode,
            float(data.get("delay_s", default_delay)),
            float(data.get("retry_after", 1.0)),
            times,
        )


def estimate_tokens(text: str) -> int:
    """About four characters a token, at least one: deterministic, and close enough for tests."""
    return max(1, (len(text) + 3) // 4)


def _text(content: Any) -> str:
    """A message's text, whether content is a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _prompt_parts(endpoint: str, body: dict[str, Any]) -> list[str]:
    if endpoint == "chat":
        messages = body.get("messages")
        return (
            [_text(m.get("content")) for m in messages if isinstance(m, dict)] if messages else []
        )
    prompt = body.get("prompt", "")
    if isinstance(prompt, list):
        return [p if isinstance(p, str) else "    " for p in prompt]  # token ids: one each
    return [str(prompt)]


def _last_user_text(endpoint: str, body: dict[str, Any]) -> str:
    if endpoint != "chat":
        return "".join(_prompt_parts(endpoint, body))
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text(message.get("content"))
    return ""


def _error_body(message: str, type_: str, code: str) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}})


def _seconds(value: float) -> bytes:
    return f"{value:g}".encode()


def _abort_connection(send: Send) -> None:
    """Close the TCP connection under a request at once, with nothing more sent.

    ASGI has no message for "drop the connection without an answer", which `refuse` and `cut`
    need; uvicorn's `send` is a method of its request cycle, and the cycle holds the transport.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    abort = getattr(transport, "abort", None)
    if abort is None:
        raise RuntimeError("cannot reach the connection: run the fake upstream under uvicorn")
    abort()


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _drop(send: Send, receive: Receive) -> None:
    """Close the connection at once and wait until uvicorn has seen it go (so it logs nothing)."""
    _abort_connection(send)
    await _until_disconnect(receive)


async def _respond(
    send: Send, status: int, body: bytes, content_type: bytes = _JSON, extra: Headers = ()
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class FakeUpstreamApp:
    """The ASGI app: canned completions, faults on demand, and a record of what it was sent."""

    def __init__(
        self, mode: str = "ok", model_name: str = DEFAULT_MODEL, flavor: str = "plain"
    ) -> None:
        if flavor not in FLAVORS:
            raise ValueError(f"unknown flavor {flavor!r}; flavors: {', '.join(FLAVORS)}")
        self.model_name = model_name
        self.v4 = flavor == "deepseek-v4"
        # DeepSeek writes spaced JSON with ASCII escapes, as Python's json.dumps does
        self.dumps: Callable[[Any], bytes] = (
            (lambda obj: json.dumps(obj).encode()) if flavor != "plain" else orjson.dumps
        )
        # python-sse: every liberty the SSE spec allows (see `_frame`)
        self.frame = _loose_frame if flavor == "python-sse" else _frame
        self.fault = Fault.parse({"mode": mode})
        self.requests = 0
        self.bodies: deque[Any] = deque(maxlen=_KEPT_BODIES)
        self.headers: deque[dict[str, str]] = deque(maxlen=_KEPT_BODIES)  # of model calls
        self._prefixes: set[int] = set()  # hashes of message prefixes seen: the "prompt cache"
        self._created = int(time.time())
        self.answers: dict[str, str] = {}  # question -> canned answer (POST /_answers)
        self._routes: dict[tuple[str, str], Callable[[Receive, Send], Awaitable[None]]] = {
            ("POST", "/v1/chat/completions"): self._chat,
            ("POST", "/v1/completions"): self._completions,
            ("POST", "/v1/embeddings"): self._embeddings,
            ("GET", "/v1/models"): self._models,
            ("GET", "/health"): self._health,
            ("POST", "/_fault"): self._set_fault,
            ("GET", "/_stats"): self._stats,
            ("POST", "/_reset"): self._reset,
            ("POST", "/_answers"): self._set_answers,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        handler = self._routes.get((scope["method"], scope["path"]))
        if scope["path"].startswith("/v1/") and scope["method"] == "POST":
            self.headers.append(
                {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            )
        if handler is None:
            message = f"no route {scope['method']} {scope['path']}"
            await _respond(send, 404, _error_body(message, "invalid_request_error", "not_found"))
            return
        await handler(receive, send)

    # -- control ---------------------------------------------------------------------------------

    async def _set_fault(self, receive: Receive, send: Send) -> None:
        try:
            self.fault = Fault.parse(orjson.loads(await _read_body(receive)))
        except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
            await _respond(send, 400, _error_body(str(exc), "invalid_request_error", "bad_fault"))
            return
        await _respond(send, 200, orjson.dumps(asdict(self.fault)))

    async def _set_answers(self, receive: Receive, send: Send) -> None:
        try:
            book = orjson.loads(await _read_body(receive))
            if not isinstance(book, dict):
                raise ValueError("the answer book must be an object")
        except (orjson.JSONDecodeError, ValueError) as exc:
            await _respond(send, 400, _error_body(str(exc), "invalid_request_error", "bad_book"))
            return
        self.answers = {str(k): str(v) for k, v in book.items()}
        await _respond(send, 200, orjson.dumps({"answers": len(self.answers)}))

    async def _stats(self, receive: Receive, send: Send) -> None:
        stats = {
            "requests": self.requests,
            "bodies": list(self.bodies),
            "headers": list(self.headers),
            "fault": asdict(self.fault),
        }
        await _respond(send, 200, orjson.dumps(stats))

    async def _reset(self, receive: Receive, send: Send) -> None:
        self.requests = 0
        self.bodies.clear()
        self.headers.clear()
        self._prefixes.clear()
        await _respond(send, 200, b'{"reset":true}')

    def _take_fault(self) -> Fault:
        """The fault for this request; counts down a `times` fault and ends it when used up."""
        fault = self.fault
        if fault.times is not None:
            if fault.times <= 1:
                self.fault = Fault()
            else:
                self.fault = Fault(fault.mode, fault.delay_s, fault.retry_after, fault.times - 1)
        return fault

    # -- plain endpoints -------------------------------------------------------------------------

    async def _models(self, receive: Receive, send: Send) -> None:
        card = {
            "id": self.model_name,
            "object": "model",
            "created": self._created,
            "owned_by": "fake",
        }
        await _respond(send, 200, orjson.dumps({"object": "list", "data": [card]}))

    async def _health(self, receive: Receive, send: Send) -> None:
        await _respond(send, 200, b'{"status":"ok"}')

    async def _embeddings(self, receive: Receive, send: Send) -> None:
        """Record the body; one small vector per input (its length), float."""
        body = await self._recorded(receive)
        given = body.get("input") if isinstance(body, dict) else None
        if given is None:
            await _respond(
                send, 400, _error_body("input is required", "invalid_request_error", "no_input")
            )
            return
        inputs = (
            given
            if isinstance(given, list) and given and not isinstance(given[0], int)
            else [given]
        )
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(str(x))), 1.0, 0.0, 0.0]}
            for i, x in enumerate(inputs)
        ]
        tokens = sum(estimate_tokens(str(x)) for x in inputs)
        answer = {
            "object": "list",
            "data": data,
            "model": body.get("model", self.model_name),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        await _respond(send, 200, orjson.dumps(answer))

    # -- completions -----------------------------------------------------------------------------

    async def _chat(self, receive: Receive, send: Send) -> None:
        await self._complete("chat", receive, send)

    async def _completions(self, receive: Receive, send: Send) -> None:
        await self._complete("completions", receive, send)

    async def _recorded(self, receive: Receive) -> Any:
        """The request's JSON body (None when it is not JSON), counted and recorded as sent."""
        raw = await _read_body(receive)
        self.requests += 1
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        self.bodies.append(body if body is not None else raw.decode("utf-8", "replace"))
        return body

    async def _complete(self, endpoint: str, receive: Receive, send: Send) -> None:
        body = await self._recorded(receive)
        if not isinstance(body, dict):
            message = "the request body is not a JSON object"
            await _respond(send, 400, _error_body(message, "invalid_request_error", "bad_json"))
            return
        fault = self._take_fault()
        if fault.delay_s > 0 and fault.mode != "drip":
            await asyncio.sleep(fault.delay_s)
        mode = fault.mode
        if mode == "hang":
            await _until_disconnect(receive)
        elif mode == "refuse":
            await _drop(send, receive)
        elif mode == "http500":
            error = _error_body("fake upstream: injected failure", "server_error", "internal_error")
            await _respond(send, 500, error)
        elif mode == "http429":
            error = _error_body("fake upstream: slow down", "rate_limit_error", "rate_limited")
            await _respond(send, 429, error, extra=[(b"retry-after", _seconds(fault.retry_after))])
        elif self.v4 and body.get("model") not in V4_MODELS:
            message = f"Model Not Exist: {body.get('model')!r}; models: {', '.join(V4_MODELS)}"
            await _respond(send, 400, _error_body(message, "invalid_request_error", "bad_model"))
        elif body.get("stream"):
            await self._stream(endpoint, body, mode, receive, send, fault.delay_s)
        else:
            await self._whole(endpoint, body, mode, receive, send, fault.delay_s)

    def _thinks(self, endpoint: str, body: dict[str, Any]) -> bool:
        """V4 thinks by default, on chat requests, unless thinking is disabled."""
        thinking = body.get("thinking")
        disabled = isinstance(thinking, dict) and thinking.get("type") == "disabled"
        return self.v4 and endpoint == "chat" and not disabled

    def _reasoning(self, endpoint: str, body: dict[str, Any]) -> list[str]:
        """The reasoning's tokens: empty unless the model thinks."""
        if not self._thinks(endpoint, body):
            return []
        text = _last_user_text(endpoint, body)
        if text.startswith("echo:"):
            said = f"Echo {text[5:]} back."
            return [said[i : i + 3] for i in range(0, len(said), 3)]
        return ["The", " user", " wrote", f" {len(text)}", " characters."]

    def _answer(
        self, endpoint: str, body: dict[str, Any]
    ) -> tuple[list[str], list[str], str, dict[str, Any]]:
        """The answer's tokens (one word each), its reasoning's, its finish reason, its usage."""
        text = _last_user_text(endpoint, body)
        booked = self.answers.get(text, self.answers.get("*"))
        if booked is not None or text.startswith("echo:"):  # in small pieces (masking tests)
            rest = booked if booked is not None else text[5:]
            words = [rest[i : i + 3] for i in range(0, len(rest), 3)] or [""]
        else:
            words = ["Fake", " answer", " to", " a", f" {len(text)}-character", " message."]
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        finish = "stop"
        if isinstance(limit, int) and 0 < limit < len(words):
            words, finish = words[:limit], "length"
        reasoning = self._reasoning(endpoint, body)
        usage = self._usage(_prompt_parts(endpoint, body), len(reasoning) + len(words))
        if self.v4:
            usage["completion_tokens_details"] = {"reasoning_tokens": len(reasoning)}
        return words, reasoning, finish, usage

    @staticmethod
    def _tool_call(endpoint: str, body: dict[str, Any]) -> tuple[str, str] | None:
        """(name, arguments) when the last user message is "call:TEXT" and tools are offered:
        the answer calls the first tool with {"text": TEXT} (masking tests)."""
        text = _last_user_text(endpoint, body)
        tools = body.get("tools")
        if endpoint != "chat" or not text.startswith("call:") or not isinstance(tools, list):
            return None
        name = ((tools[0] or {}).get("function") or {}).get("name") or "tool" if tools else "tool"
        return str(name), json.dumps({"text": text[5:]}, ensure_ascii=False)

    def _usage(self, parts: list[str], completion_tokens: int) -> dict[str, Any]:
        """Usage in DeepSeek's shape: the longest message prefix seen before counts as hits."""
        sizes = [estimate_tokens(p) + 4 for p in parts]  # +4: the chat template's wrapping
        prompt = sum(sizes)
        keys = [hash(tuple(parts[: k + 1])) for k in range(len(parts))]
        hit = 0
        for k in range(len(keys) - 1, -1, -1):
            if keys[k] in self._prefixes:
                hit = sum(sizes[: k + 1])
                break
        if len(self._prefixes) > _MAX_REMEMBERED_PREFIXES:
            self._prefixes.clear()
        self._prefixes.update(keys)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens,
            "prompt_cache_hit_tokens": hit,
            "prompt_cache_miss_tokens": prompt - hit,
            "prompt_tokens_details": {"cached_tokens": hit},
        }

    def _head(self, body: dict[str, Any], obj: str) -> dict[str, Any]:
        return {
            "id": f"fake-{self.requests}",
            "object": obj,
            "created": int(time.time()),
            "model": body.get("model") or self.model_name,
            "system_fingerprint": "fake",
        }

    async def _whole(
        self,
        endpoint: str,
        body: dict[str, Any],
        mode: str,
        receive: Receive,
        send: Send,
        delay_s: float = 0.0,
    ) -> None:
        words, reasoning, finish, usage = self._answer(endpoint, body)
        text = "".join(words)
        if endpoint == "chat":
            message = {"role": "assistant", "content": text}
            if reasoning:
                message["reasoning_content"] = "".join(reasoning)
            choice: dict[str, Any] = {"index": 0, "message": message}
            payload = self._head(body, "chat.completion")
        else:
            choice = {"index": 0, "text": text}
            payload = self._head(body, "text_completion")
        call = self._tool_call(endpoint, body)
        if call is not None:
            function = {"name": call[0], "arguments": call[1]}
            choice["message"] = {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "call_1", "type": "function", "function": function}],
            }
            finish = "tool_calls"
        choice.update(logprobs=None, finish_reason=finish)
        payload.update(choices=[choice], usage=usage)
        data = self.dumps(payload)
        if mode == "null_choice":
            data = b'{"id":"x","object":"chat.completion","choices":[null]}'
        if mode == "malformed":
            await _respond(send, 200, data[: len(data) // 2])  # truncated JSON, whole response
        elif mode == "drip":
            start = {"type": "http.response.start", "status": 200}
            start["headers"] = [(b"content-type", _JSON), (b"content-length", b"%d" % len(data))]
            await send(start)
            for i in range(0, len(data), 8):
                await send(
                    {"type": "http.response.body", "body": data[i : i + 8], "more_body": True}
                )
                await asyncio.sleep(delay_s)
            await send({"type": "http.response.body", "body": b""})
        elif mode == "cut":
            start = {"type": "http.response.start", "status": 200}
            start["headers"] = [(b"content-type", _JSON), (b"content-length", b"%d" % len(data))]
            await send(start)
            await send(
                {"type": "http.response.body", "body": data[: len(data) // 2], "more_body": True}
            )
            await _drop(send, receive)
        else:
            await _respond(send, 200, data)

    async def _stream(
        self,
        endpoint: str,
        body: dict[str, Any],
        mode: str,
        receive: Receive,
        send: Send,
        delay_s: float = 0.0,
    ) -> None:
        words, reasoning, finish, usage = self._answer(endpoint, body)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )
        chat = endpoint == "chat"
        head = self._head(body, "chat.completion.chunk" if chat else "text_completion")
        events: list[bytes] = []
        # DeepSeek streams the reasoning first, with "content": null, then the content with
        # "reasoning_content": null; only a thinking answer's deltas carry the second key
        thinking = bool(reasoning)
        pieces = [("reasoning_content", r) for r in reasoning] + [("content", w) for w in words]
        for i, (key, piece) in enumerate(pieces):
            if chat:
                delta: dict[str, Any] = {"role": "assistant"} if i == 0 else {}
                if thinking:
                    delta.update(content=None, reasoning_content=None)
                delta[key] = piece
                choice: dict[str, Any] = {"index": 0, "delta": delta}
            else:
                choice = {"index": 0, "text": piece}
            choice.update(logprobs=None, finish_reason=None)
            events.append(self.dumps({**head, "choices": [choice]}))
        call = self._tool_call(endpoint, body)
        if call is not None:  # the call instead of text: its arguments in small pieces
            name, arguments = call
            events.clear()
            first = {"index": 0, "id": "call_1", "type": "function"}
            first["function"] = {"name": name, "arguments": ""}
            deltas: list[dict[str, Any]] = [{"role": "assistant", "tool_calls": [first]}]
            for i in range(0, len(arguments), 3):
                piece = {"index": 0, "function": {"arguments": arguments[i : i + 3]}}
                deltas.append({"tool_calls": [piece]})
            for delta in deltas:
                choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
                events.append(self.dumps({**head, "choices": [choice]}))
            finish = "tool_calls"
        last: dict[str, Any] = {"index": 0, "delta": {}} if chat else {"index": 0, "text": ""}
        last.update(logprobs=None, finish_reason=finish)
        events.append(self.dumps({**head, "choices": [last]}))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(self.dumps({**head, "choices": [], "usage": usage}))
        if mode == "malformed":
            events[0] = events[0][: len(events[0]) // 2]
        if mode == "null_choice":
            events[0] = b'{"id":"x","object":"chat.completion.chunk","choices":[null]}'
        for n, event in enumerate(events):
            if mode == "cut" and n == 2:
                await _drop(send, receive)
                return
            if mode == "drip" and n:
                await asyncio.sleep(delay_s)
            await send({"type": "http.response.body", "body": self.frame(event), "more_body": True})
        await send({"type": "http.response.body", "body": self.frame(b"[DONE]")})


def _frame(data: bytes) -> bytes:
    return b"data: " + data + b"\n\n"


def _loose_frame(data: bytes) -> bytes:
    """An event as a Python server may well write it: a comment first, CRLF line ends, and a JSON
    object spread over several `data:` lines (the reader joins them with newlines)."""
    if data.startswith(b"{"):
        data = json.dumps(json.loads(data), indent=1).encode()
    lines = b"".join(b"data:" + line + b"\r\n" for line in data.split(b"\n"))
    return b": keep-alive\r\n" + lines + b"\r\n"


# -- running it: as a process of its own -----------------------------------------------------------


def serve(
    port: int,
    mode: str = "ok",
    model_name: str = DEFAULT_MODEL,
    host: str = "127.0.0.1",
    flavor: str = "plain",
) -> None:
    """Serve until SIGINT/SIGTERM; print `ready` once listening."""
    import importlib.util

    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                print("ready", flush=True)

    def has(module: str) -> bool:
        return importlib.util.find_spec(module) is not None

    config = uvicorn.Config(
        FakeUpstreamApp(mode, model_name, flavor),
        host=host,
        port=port,
        loop="uvloop" if has("uvloop") else "asyncio",
        http="httptools" if has("httptools") else "h11",
        lifespan="off",
        proxy_headers=False,  # its middleware costs time on every request and is of no use here
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=1,  # `hang` requests would otherwise hold shutdown forever
    )
    Server(config).run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--mode", default="ok", choices=list(MODES))
    parser.add_argument("--model-name", default=DEFAULT_MODEL, help="the model /v1/models lists")
    parser.add_argument("--flavor", default="plain", choices=FLAVORS, help="whose API to mimic")
    args = parser.parse_args(argv)
    serve(args.port, args.mode, args.model_name, args.host, args.flavor)


# -- running it: from a test or a benchmark ------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeUpstream:
    """A running fake upstream subprocess, and its control endpoints as methods."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.proc = proc
        self.port = port
        self.log_path = log_path
        self.root = f"http://127.0.0.1:{port}"
        self.url = self.root + "/v1"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else orjson.dumps(payload)
        request = urllib.request.Request(self.root + path, data, method=method)
        request.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return orjson.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise ValueError(exc.read().decode("utf-8", "replace")) from None

    def set_mode(self, mode: str = "ok", **params: Any) -> dict[str, Any]:
        """Switch behaviour: `delay_s`, `retry_after`, `times` as in `POST /_fault`."""
        result: dict[str, Any] = self._call("POST", "/_fault", {"mode": mode, **params})
        return result

    def stats(self) -> dict[str, Any]:
        """`{"requests": n, "bodies": [last 50 bodies], "fault": {...}}`."""
        result: dict[str, Any] = self._call("GET", "/_stats")
        return result

    def set_answers(self, book: dict[str, str]) -> None:
        """Answer these questions (last user messages) with these texts; {} clears the book."""
        self._call("POST", "/_answers", book)

    def reset(self) -> None:
        """Clear the stats (and the prompt cache); the fault stays as it is."""
        self._call("POST", "/_reset")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with contextlib.suppress(OSError):
            self.log_path.unlink()

    def __enter__(self) -> FakeUpstream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_upstream(
    port: int | None = None,
    mode: str = "ok",
    *,
    model_name: str = DEFAULT_MODEL,
    flavor: str = "plain",
    timeout_s: float = 15.0,
) -> FakeUpstream:
    """Start the fake upstream on 127.0.0.1 (a free port when None) and wait until it answers."""
    port = port or free_port()
    fd, log_name = tempfile.mkstemp(prefix="fake-upstream-", suffix=".log")
    with os.fdopen(fd, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--port",
                str(port),
                "--mode",
                mode,
                "--model-name",
                model_name,
                "--flavor",
                flavor,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    upstream = FakeUpstream(proc, port, Path(log_name))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log_text = upstream.log()
            upstream.stop()
            raise RuntimeError(f"the fake upstream exited with code {proc.returncode}:\n{log_text}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(upstream.root + "/health", timeout=1) as response,
        ):
            if response.status == 200:
                return upstream
        time.sleep(0.02)
    upstream.stop()
    raise TimeoutError(f"the fake upstream did not answer within {timeout_s:.0f}s")


if __name__ == "__main__":
    main()

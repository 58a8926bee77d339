"""What the gateway changes on its way to llama-server and back, so the local model speaks OpenAI.

llama-server is close to OpenAI's API but not quite: it ignores `tools` for templates without tool
support (SmolLM2's, the Q/A layout), answers `logprobs: true` with 20 alternatives unasked and
drops them for `top_logprobs: 0`, leaves `delta.role` out of the first stream chunk, adds
`timings` and a build-id `system_fingerprint` to every answer, and, without `max_tokens`,
generates until the context is full. `LocalCall` holds one request's adjustments: the body to
send, and how to fix its answer (whole, or chunk by chunk).

Tools take thrifty's grammar path (`backends/tools.py`) whatever the template: with a template
that does declare tool support (Qwen2.5's, served with SmolLM2), llama-server's own path answered
`tool_choice: required` with plain text, the very failure this module exists to prevent; and
with SmolLM2's own template (no tool support) llama-server leaves the tools out of the prompt:
0/50 valid calls in benchmarks/tool_calls.py, against 41/50 through the grammar.
`response_format` (json_object, json_schema) takes a grammar of thrifty's too: llama-server's
own allows free whitespace, which Gemma 3 270M filled with newlines until max_tokens.
An embedding model (`--embedding`) gets `/v1/embeddings` as it is, and `dimensions` checked.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from thrifty.backends.base import Endpoint, Reply
from thrifty.backends.tools import (
    ToolPlan,
    ToolStream,
    apply_to_reply,
    format_grammar,
    messages_as_text,
    plan_tools,
    tool_grammar,
)
from thrifty.errors import InvalidRequest

_LLAMA_ONLY = ("timings", "system_fingerprint")


@dataclass(slots=True)
class LocalCall:
    """One request's adjustments: the body llama-server gets, and how its answer is fixed."""

    endpoint: Endpoint
    body: dict[str, Any]
    tools: ToolPlan | None = None
    top_logprobs: int | None = None  # what the client asked for; None: no logprobs at all
    _roles_sent: set[int] = field(default_factory=set)
    _tool_stream: ToolStream | None = None

    # -- the answer, whole ---------------------------------------------------------------------

    def reply(self, reply: Reply) -> Reply:
        payload = reply.payload
        for key in _LLAMA_ONLY:
            payload.pop(key, None)
        if self.endpoint == "embeddings":
            _check_dimensions(payload, self.body.get("dimensions"))
        elif self.endpoint == "chat":
            for choice in payload.get("choices") or []:
                self._trim_logprobs(choice)
        if self.tools is not None:
            apply_to_reply(payload, self.tools)
        return reply

    def _trim_logprobs(self, choice: dict[str, Any]) -> None:
        logprobs = choice.get("logprobs")
        if not isinstance(logprobs, dict):
            return
        if self.top_logprobs is None:
            choice["logprobs"] = None
            return
        for token in logprobs.get("content") or []:
            if isinstance(token, dict) and isinstance(token.get("top_logprobs"), list):
                token["top_logprobs"] = token["top_logprobs"][: self.top_logprobs]

    # -- the answer, chunk by chunk ------------------------------------------------------------

    def chunk(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        for key in _LLAMA_ONLY:
            chunk.pop(key, None)
        if self.endpoint != "chat":
            return [chunk]
        for choice in chunk.get("choices") or []:
            self._trim_logprobs(choice)
            index = choice.get("index", 0)
            delta = choice.get("delta")
            if index not in self._roles_sent and isinstance(delta, dict):
                self._roles_sent.add(index)
                choice["delta"] = {"role": "assistant", **delta}
        if self._tool_stream is None and self.tools is not None:
            self._tool_stream = ToolStream(self.tools)
        return [chunk] if self._tool_stream is None else self._tool_stream.chunk(chunk)

    async def stream(self, batches: AsyncIterator[list[bytes]]) -> AsyncIterator[list[bytes]]:
        """llama-server's SSE payloads, each fixed; batches stay batches (one write each)."""
        try:
            async for batch in batches:
                out: list[bytes] = []
                for payload in batch:
                    out.extend(orjson.dumps(c) for c in self.chunk(orjson.loads(payload)))
                if out:
                    yield out
        finally:
            aclose = getattr(batches, "aclose", None)
            if aclose is not None:
                await aclose()


def _check_dimensions(payload: dict[str, Any], asked: Any) -> None:
    """llama-server ignores `dimensions`: a size other than the model's own is a 400."""
    data = payload.get("data")
    if asked is None or not isinstance(data, list) or not data:
        return
    vector = data[0].get("embedding") if isinstance(data[0], dict) else None
    native = len(vector) if isinstance(vector, list) else len(base64.b64decode(vector or "")) // 4
    if asked != native:
        raise InvalidRequest(
            f"dimensions: the local model {payload.get('model')} makes {native}-d vectors only",
            param="dimensions",
        )


def prepare(
    endpoint: Endpoint, body: dict[str, Any], *, default_max_tokens: int | None, slots: int
) -> LocalCall:
    """The adjusted request for llama-server (a copy; the client's body is left as it was)."""
    body = dict(body)
    if endpoint == "embeddings":
        return LocalCall(endpoint, body)
    if default_max_tokens and body.get("max_tokens") is None:
        # OpenAI's newer name wins where both are set; llama-server reads only max_tokens
        body["max_tokens"] = body.pop("max_completion_tokens", None) or default_max_tokens
    n = body.get("n")
    if isinstance(n, int) and n > slots:
        raise InvalidRequest(
            f"n={n}: the local model answers at most {slots} choices at once (local.parallel)",
            param="n",
        )
    call = LocalCall(endpoint, body)
    if endpoint != "chat":
        return call
    if body.get("logprobs"):
        top = body.get("top_logprobs")
        call.top_logprobs = int(top) if isinstance(top, int) else 0
        # llama-server drops logprobs altogether for 0 alternatives: ask for 1, trim after
        body["top_logprobs"] = max(call.top_logprobs, 1)
    plan = plan_tools(body)
    for key in ("tools", "tool_choice", "parallel_tool_calls"):
        body.pop(key, None)
    messages = body.get("messages") or []
    has_history = any(m.get("role") == "tool" or m.get("tool_calls") for m in messages)
    if plan is not None or has_history:
        body["messages"] = messages_as_text(messages, plan)
    if plan is not None and plan.choice != "none":
        if (body.get("response_format") or {}).get("type") in ("json_object", "json_schema"):
            raise InvalidRequest(
                "the local model cannot combine tools with response_format; send one of them",
                param="response_format",
            )
        if body.get("logprobs") and body.get("stream"):
            raise InvalidRequest(
                "the local model cannot stream logprobs with tools", param="logprobs"
            )
        body["grammar"] = tool_grammar(plan)
        call.tools = plan
    elif (grammar := format_grammar(body.get("response_format"))) is not None:
        # thrifty's whitespace-tight grammar in place of llama-server's (see format_grammar)
        body.pop("response_format")
        body["grammar"] = grammar
    return call

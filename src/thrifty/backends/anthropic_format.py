"""Anthropic's Messages API <-> OpenAI chat completions, as pure functions.

`/v1/messages` turns the request into an OpenAI chat request, sends it through the same gateway
as `/v1/chat/completions` (routing, privacy, cache and metering apply unchanged), and turns the
answer back: whole (`to_message`) or as Anthropic's stream events (`EventStream`). The same
functions, run the other way round, let `backends/anthropic.py` speak to an upstream whose API
is Anthropic's.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from thrifty.errors import InvalidRequest

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def message_id() -> str:
    return f"msg_{secrets.token_hex(12)}"


def error_body(status: int, message: str) -> dict[str, Any]:
    """Anthropic's error envelope."""
    kind = ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


# -- request: Anthropic -> OpenAI ---------------------------------------------------------------


def _text_of(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if not isinstance(block, dict) or block.get("type") != "text":
                raise InvalidRequest(f"{where} may hold only text blocks", param=where)
            parts.append(str(block.get("text", "")))
        return "".join(parts)
    if content is None:
        return ""
    raise InvalidRequest(f"{where} must be a string or a list of text blocks", param=where)


def _image_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    source: dict[str, Any] = block["source"] if isinstance(block.get("source"), dict) else {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    elif source.get("type") == "url":
        url = str(source.get("url", ""))
    else:
        raise InvalidRequest("an image block needs a base64 or url source", param=where)
    return {"type": "image_url", "image_url": {"url": url}}


def _user_messages(content: Any, where: str) -> list[dict[str, Any]]:
    """One Anthropic user turn: tool results become `tool` messages, the rest one user message."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise InvalidRequest(f"{where} must be a string or a list of blocks", param=where)
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for i, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        at = f"{where}.{i}"
        if kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image":
            parts.append(_image_part(block, at))
        elif kind == "tool_result":
            text = _text_of(block.get("content"), f"{at}.content")
            if block.get("is_error"):
                text = f"Error: {text}"
            results.append(
                {"role": "tool", "tool_call_id": str(block.get("tool_use_id")), "content": text}
            )
        elif kind == "document":
            raise InvalidRequest("document blocks are not supported", param=at)
        else:
            raise InvalidRequest(f"unsupported content block type {kind!r}", param=at)
    out = list(results)
    if parts:
        only_text = all(p["type"] == "text" for p in parts)
        joined = "".join(p["text"] for p in parts) if only_text else parts
        out.append({"role": "user", "content": joined})
    return out


def _assistant_message(content: Any, where: str) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        raise InvalidRequest(f"{where} must be a string or a list of blocks", param=where)
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for i, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            text.append(str(block.get("text", "")))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                {
                    "id": str(block.get("id")),
                    "type": "function",
                    "function": {"name": str(block.get("name")), "arguments": arguments},
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            continue  # the model's own reasoning is not sent back as part of the conversation
        else:
            raise InvalidRequest(f"unsupported content block type {kind!r}", param=f"{where}.{i}")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return message


def _tool_choice(choice: Any) -> tuple[Any, bool | None]:
    if choice is None:
        return None, None
    if not isinstance(choice, dict):
        raise InvalidRequest("tool_choice must be an object", param="tool_choice")
    kind = choice.get("type")
    parallel = False if choice.get("disable_parallel_tool_use") else None
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", None
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}, parallel
    raise InvalidRequest("tool_choice.type must be auto, any, tool or none", param="tool_choice")


def to_openai(body: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat request for an Anthropic Messages request (400s name the bad field)."""
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise InvalidRequest("max_tokens: a positive integer is required", param="max_tokens")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("messages: at least one message is required", param="messages")
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": _text_of(system, "system")})
    for i, m in enumerate(raw):
        role = m.get("role") if isinstance(m, dict) else None
        where = f"messages.{i}.content"
        if role == "user":
            messages.extend(_user_messages(m.get("content"), where))
        elif role == "assistant":
            messages.append(_assistant_message(m.get("content"), where))
        else:
            raise InvalidRequest("role must be user or assistant", param=f"messages.{i}.role")
    out: dict[str, Any] = {"messages": messages, "max_tokens": max_tokens}
    if "model" in body:
        out["model"] = body["model"]
    for key in ("temperature", "top_p", "stream"):
        if body.get(key) is not None:
            out[key] = body[key]
    if body.get("stop_sequences"):
        out["stop"] = body["stop_sequences"]
    metadata, tools = body.get("metadata") or {}, body.get("tools") or []
    if not isinstance(metadata, dict):
        raise InvalidRequest("metadata must be an object", param="metadata")
    if not isinstance(tools, list):
        raise InvalidRequest("tools must be a list of tools", param="tools")
    if metadata.get("user_id"):
        out["user"] = str(metadata["user_id"])
    if tools:
        converted = []
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                raise InvalidRequest("a tool needs a name", param=f"tools.{i}.name")
            if tool.get("type") not in (None, "custom"):
                raise InvalidRequest(
                    f"server tool {tool.get('type')!r} is not supported", param=f"tools.{i}"
                )
            function = {
                "name": tool["name"],
                "description": tool.get("description") or "",
                "parameters": tool.get("input_schema") or {"type": "object"},
            }
            converted.append({"type": "function", "function": function})
        out["tools"] = converted
    choice, parallel = _tool_choice(body.get("tool_choice"))
    if choice is not None:
        out["tool_choice"] = choice
    if parallel is not None:
        out["parallel_tool_calls"] = parallel
    return out


# -- answer: OpenAI -> Anthropic ----------------------------------------------------------------


def usage_of(usage: dict[str, Any] | None) -> dict[str, Any]:
    usage = usage or {}
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return {
        "input_tokens": int(usage.get("prompt_tokens") or 0) - int(cached),
        "output_tokens": int(usage.get("completion_tokens") or 0),
        "cache_read_input_tokens": int(cached),
        "cache_creation_input_tokens": 0,
    }


def _input_of(arguments: Any) -> Any:
    if isinstance(arguments, dict):
        return arguments
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"value": value}


def to_message(payload: dict[str, Any], model: str) -> dict[str, Any]:
    """An Anthropic message for a whole OpenAI chat completion (its first choice)."""
    choices = payload.get("choices") or [{}]
    choice = choices[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{secrets.token_hex(12)}",
                "name": fn.get("name"),
                "input": _input_of(fn.get("arguments")),
            }
        )
    finish = choice.get("finish_reason") or "stop"
    return {
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASONS.get(finish, "end_turn"),
        "stop_sequence": None,
        "usage": usage_of(payload.get("usage")),
    }


def sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class EventStream:
    """OpenAI chat chunks in, Anthropic stream events (already SSE-framed) out."""

    def __init__(self, model: str, input_tokens: int = 0) -> None:
        self.model = model
        self.input_tokens = input_tokens
        self.started = False
        self.block: int = -1  # index of the open content block; -1: none
        self.block_kind: str | None = None
        self.tool_blocks: dict[int, int] = {}  # OpenAI tool-call index -> block index
        self.stop_reason: str | None = None
        self.usage: dict[str, Any] | None = None

    def start(self) -> list[bytes]:
        if self.started:
            return []
        self.started = True
        message: dict[str, Any] = {
            "id": message_id(),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 0},
        }
        return [sse("message_start", {"type": "message_start", "message": message})]

    def _close_block(self) -> list[bytes]:
        if self.block_kind is None:
            return []
        self.block_kind = None
        return [sse("content_block_stop", {"type": "content_block_stop", "index": self.block})]

    def _open_block(self, kind: str, block: dict[str, Any]) -> list[bytes]:
        out = self._close_block()
        self.block += 1
        self.block_kind = kind
        start = {"type": "content_block_start", "index": self.block, "content_block": block}
        out.append(sse("content_block_start", start))
        return out

    def chunk(self, chunk: dict[str, Any]) -> list[bytes]:
        out = self.start()
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                if self.block_kind != "text":
                    out += self._open_block("text", {"type": "text", "text": ""})
                body = {"type": "text_delta", "text": text}
                event = {"type": "content_block_delta", "index": self.block, "delta": body}
                out.append(sse("content_block_delta", event))
            for call in delta.get("tool_calls") or []:
                out += self._tool_delta(call)
            if choice.get("finish_reason"):
                self.stop_reason = STOP_REASONS.get(choice["finish_reason"], "end_turn")
        return out

    def _tool_delta(self, call: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        index = call.get("index", 0)
        fn = call.get("function") or {}
        if index not in self.tool_blocks:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{secrets.token_hex(12)}",
                "name": fn.get("name"),
                "input": {},
            }
            out += self._open_block("tool_use", block)
            self.tool_blocks[index] = self.block
        if fn.get("arguments"):
            body = {"type": "input_json_delta", "partial_json": fn["arguments"]}
            event = {"type": "content_block_delta", "index": self.tool_blocks[index], "delta": body}
            out.append(sse("content_block_delta", event))
        return out

    def finish(self, usage: dict[str, Any] | None = None) -> list[bytes]:
        """The closing events: the open block's stop, message_delta with usage, message_stop."""
        out = self.start() + self._close_block()
        counted = usage_of(usage or self.usage)
        delta = {"stop_reason": self.stop_reason or "end_turn", "stop_sequence": None}
        out.append(
            sse(
                "message_delta",
                {"type": "message_delta", "delta": delta, "usage": counted},
            )
        )
        out.append(sse("message_stop", {"type": "message_stop"}))
        return out

    def error(self, status: int, message: str) -> bytes:
        return sse("error", error_body(status, message))


# -- the other way: OpenAI request -> Anthropic, Anthropic answer -> OpenAI (for an upstream) ----


def from_openai(body: dict[str, Any], model: str, default_max_tokens: int) -> dict[str, Any]:
    """An Anthropic Messages request for an OpenAI chat request (an `api: anthropic` upstream)."""
    system: list[str] = []
    messages: list[dict[str, Any]] = []

    def push(role: str, blocks: list[dict[str, Any]]) -> None:
        if messages and messages[-1]["role"] == role:  # Anthropic wants turns to alternate
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})

    for m in body.get("messages") or []:
        role = m.get("role")
        content = m.get("content")
        if role in ("system", "developer"):
            system.append(_plain(content))
        elif role == "user":
            push("user", _blocks(content))
        elif role == "assistant":
            blocks = [b for b in _blocks(content) if b.get("text")]
            for call in m.get("tool_calls") or []:
                fn = call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id"),
                        "name": fn.get("name"),
                        "input": _input_of(fn.get("arguments")),
                    }
                )
            push("assistant", blocks or [{"type": "text", "text": ""}])
        elif role in ("tool", "function"):
            result = {
                "type": "tool_result",
                "tool_use_id": m.get("tool_call_id"),
                "content": _plain(content),
            }
            push("user", [result])
    out: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": body.get("max_completion_tokens")
        or body.get("max_tokens")
        or default_max_tokens,
    }
    if system:
        out["system"] = "\n\n".join(system)
    for key in ("temperature", "top_p", "stream"):
        if body.get(key) is not None:
            out[key] = body[key]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    tools = body.get("tools")
    if tools:
        out["tools"] = [
            {
                "name": (t.get("function") or {}).get("name"),
                "description": (t.get("function") or {}).get("description") or "",
                "input_schema": (t.get("function") or {}).get("parameters") or {"type": "object"},
            }
            for t in tools
        ]
        choice = body.get("tool_choice")
        if choice == "required":
            out["tool_choice"] = {"type": "any"}
        elif choice == "none":
            out["tool_choice"] = {"type": "none"}
        elif isinstance(choice, dict):
            name = (choice.get("function") or {}).get("name")
            out["tool_choice"] = {"type": "tool", "name": name}
        if body.get("parallel_tool_calls") is False:
            out.setdefault("tool_choice", {"type": "auto"})["disable_parallel_tool_use"] = True
    return out


def _plain(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _blocks(content: Any) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        return [{"type": "text", "text": _plain(content)}]
    blocks: list[dict[str, Any]] = []
    for part in content:
        if part.get("type") == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif part.get("type") == "image_url":
            url = str((part.get("image_url") or {}).get("url", ""))
            if url.startswith("data:") and ";base64," in url:
                media, data = url[5:].split(";base64,", 1)
                source = {"type": "base64", "media_type": media, "data": data}
            else:
                source = {"type": "url", "url": url}
            blocks.append({"type": "image", "source": source})
    return blocks


def to_completion(message: dict[str, Any], model: str) -> dict[str, Any]:
    """An OpenAI chat completion for a whole Anthropic message."""
    text = "".join(b.get("text", "") for b in message.get("content") or [] if b["type"] == "text")
    calls = [
        {
            "id": b.get("id"),
            "type": "function",
            "function": {"name": b.get("name"), "arguments": orjson.dumps(b.get("input")).decode()},
        }
        for b in message.get("content") or []
        if b.get("type") == "tool_use"
    ]
    out_message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        out_message["tool_calls"] = calls
    elif not text:
        out_message["content"] = ""
    usage = message.get("usage") or {}
    prompt = int(usage.get("input_tokens") or 0) + int(usage.get("cache_read_input_tokens") or 0)
    completion = int(usage.get("output_tokens") or 0)
    return {
        "id": f"chatcmpl-{message.get('id', message_id())}",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": out_message,
                "finish_reason": FINISH_REASONS.get(message.get("stop_reason") or "", "stop"),
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {
                "cached_tokens": int(usage.get("cache_read_input_tokens") or 0)
            },
        },
    }


class ChunkStream:
    """Anthropic stream events in (parsed `data:` objects), OpenAI chat chunks out."""

    def __init__(self, model: str, created: int) -> None:
        self.base = {
            "id": "",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
        self.tool_index: dict[int, int] = {}  # block index -> OpenAI tool-call index
        self.usage: dict[str, int] = {"input_tokens": 0, "output_tokens": 0, "cached": 0}

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**self.base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def event(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        kind = data.get("type")
        if kind == "message_start":
            message = data.get("message") or {}
            self.base["id"] = f"chatcmpl-{message.get('id', '')}"
            usage = message.get("usage") or {}
            self.usage["input_tokens"] = int(usage.get("input_tokens") or 0)
            self.usage["cached"] = int(usage.get("cache_read_input_tokens") or 0)
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = len(self.tool_index)
                self.tool_index[int(data.get("index", 0))] = index
                call = {
                    "index": index,
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""},
                }
                return [self._chunk({"tool_calls": [call]})]
            return []
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if delta.get("type") == "input_json_delta":
                index = self.tool_index.get(int(data.get("index", 0)), 0)
                args = {"index": index, "function": {"arguments": delta.get("partial_json", "")}}
                return [self._chunk({"tool_calls": [args]})]
            return []
        if kind == "message_delta":
            usage = data.get("usage") or {}
            self.usage["output_tokens"] = int(usage.get("output_tokens") or 0)
            reason = (data.get("delta") or {}).get("stop_reason") or ""
            finish = FINISH_REASONS.get(reason, "stop")
            prompt = self.usage["input_tokens"] + self.usage["cached"]
            completion = self.usage["output_tokens"]
            usage_chunk = {
                **self.base,
                "choices": [],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                    "prompt_tokens_details": {"cached_tokens": self.usage["cached"]},
                },
            }
            return [self._chunk({}, finish), usage_chunk]
        return []

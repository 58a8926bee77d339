"""Whole answers and streamed ones, each made from the other.

`Reassembler` turns a stream's chunks back into the whole answer (for the cache, capture and
anything else that keeps `ctx.reply`); `replay` turns a whole answer (a cache hit) into the chunks
a streaming client expects. Both keep `content`, `reasoning_content` and `tool_calls` apart.
"""

from __future__ import annotations

from typing import Any

_TEXT_FIELDS = ("content", "reasoning_content", "refusal")


class _Choice:
    __slots__ = ("finish", "parts", "role", "tool_calls")

    def __init__(self) -> None:
        self.role = "assistant"
        self.parts: dict[str, list[str]] = {}
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.finish: str | None = None


class Reassembler:
    """The whole-answer shape of a streamed answer, chat or completions."""

    def __init__(self) -> None:
        self.head: dict[str, Any] = {}
        self.choices: dict[int, _Choice] = {}
        self.chat = True

    def add(self, chunk: dict[str, Any]) -> None:
        if not self.head:
            self.head = {k: chunk[k] for k in ("id", "created", "model") if k in chunk}
        choices = chunk.get("choices")
        if type(choices) is list and len(choices) == 1:  # most chunks: one choice's next text
            choice = choices[0]
            delta = choice.get("delta") if type(choice) is dict else None
            if type(delta) is dict and len(delta) == 1 and choice.get("finish_reason") is None:
                text = delta.get("content")
                state = self.choices.get(choice.get("index", 0))
                if type(text) is str and state is not None and "content" in state.parts:
                    if text:
                        state.parts["content"].append(text)
                    return
        for choice in choices or ():
            if not isinstance(choice, dict):
                continue
            state = self.choices.setdefault(choice.get("index", 0), _Choice())
            delta = choice.get("delta")
            if isinstance(delta, dict):
                self._delta(state, delta)
            elif isinstance(choice.get("text"), str):
                self.chat = False
                state.parts.setdefault("text", []).append(choice["text"])
            if choice.get("finish_reason") is not None:
                state.finish = choice["finish_reason"]

    @staticmethod
    def _delta(state: _Choice, delta: dict[str, Any]) -> None:
        if isinstance(delta.get("role"), str):
            state.role = delta["role"]
        for name in _TEXT_FIELDS:
            text = delta.get(name)
            if isinstance(text, str) and text:
                state.parts.setdefault(name, []).append(text)
        for call in delta.get("tool_calls") or ():
            if not isinstance(call, dict):
                continue
            whole = state.tool_calls.setdefault(
                call.get("index", len(state.tool_calls)),
                {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
            )
            if call.get("id"):
                whole["id"] = call["id"]
            function = call.get("function") or {}
            if function.get("name"):
                whole["function"]["name"] += function["name"]
            if function.get("arguments"):
                whole["function"]["arguments"] += function["arguments"]

    def payload(self, usage: dict[str, Any] | None) -> dict[str, Any]:
        choices = []
        for index in sorted(self.choices):
            state = self.choices[index]
            texts = {name: "".join(parts) for name, parts in state.parts.items()}
            if self.chat:
                message: dict[str, Any] = {"role": state.role, "content": texts.get("content")}
                for name in ("reasoning_content", "refusal"):
                    if name in texts:
                        message[name] = texts[name]
                if state.tool_calls:
                    message["tool_calls"] = [state.tool_calls[i] for i in sorted(state.tool_calls)]
                elif message["content"] is None:
                    message["content"] = ""
                choices.append({"index": index, "message": message, "finish_reason": state.finish})
            else:
                text = texts.get("text", "")
                choices.append({"index": index, "text": text, "finish_reason": state.finish})
        kind = "chat.completion" if self.chat else "text_completion"
        return {**self.head, "object": kind, "choices": choices, "usage": usage}


def replay(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """A whole answer as stream chunks: per choice its text, then its finish; then the usage."""
    chat = payload.get("object") != "text_completion"
    base = {k: payload.get(k) for k in ("id", "created", "model", "system_fingerprint")}
    base["object"] = "chat.completion.chunk" if chat else "text_completion"
    chunks: list[dict[str, Any]] = []
    for i, choice in enumerate(payload.get("choices") or []):
        finish = choice.get("finish_reason")
        if chat:
            message = choice.get("message") or {}
            delta: dict[str, Any] = {"role": "assistant"}
            for name in _TEXT_FIELDS:
                if message.get(name) is not None:
                    delta[name] = message[name]
            if message.get("tool_calls"):
                delta["tool_calls"] = [
                    {"index": n, **call} for n, call in enumerate(message["tool_calls"])
                ]
            delta.setdefault("content", "")
            first = {"index": i, "delta": delta, "finish_reason": None}
            last = {"index": i, "delta": {}, "finish_reason": finish}
        else:
            first = {"index": i, "text": choice.get("text", ""), "finish_reason": None}
            last = {"index": i, "text": "", "finish_reason": finish}
        chunks.append({**base, "choices": [first]})
        chunks.append({**base, "choices": [last]})
    if payload.get("usage"):
        chunks.append({**base, "choices": [], "usage": payload["usage"]})
    return chunks

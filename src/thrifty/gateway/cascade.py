"""A verified cascade: answer with the cheap target, check the answer, escalate when a check fails.

A rule target ``{cascade: [local, deepseek-chat], checks: [logprob, schema, labels, code]}`` makes
the call stage ask the first target, run the checks on its whole answer, and ask the next target
only when one fails. The checks, each cheap and each skipped when it has nothing to check:

- ``logprob``: the mean token log-probability of the answer (llama-server returns them; the
  cascade asks for them) is at least ``min_logprob``;
- ``schema``: with ``response_format`` ``json_object`` the answer parses as a JSON object, with
  ``json_schema`` it also validates against the schema;
- ``labels``: with ``labels`` configured, the answer (trimmed, case and a final full stop
  ignored) is one of them;
- ``code``: every fenced Python block of the answer parses.

An escalated request is logged with route ``cascade``-style facts: the reason names the failed
check (``cascade: local failed labels -> deepseek-chat``) and its cost includes both attempts.
A stream is answered from the buffered, verified local answer (so its time to first token is the
local model's whole generation time), or streamed from the next target after an escalation;
``buffer_stream: false`` streams the local answer unchecked instead.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from thrifty.config import CascadeTarget

_PY_BLOCK = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def answer_of(payload: Mapping[str, Any]) -> str:
    try:
        choice = payload["choices"][0]
        text = choice["message"].get("content") if "message" in choice else choice.get("text")
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""
    return text if isinstance(text, str) else ""


def mean_logprob(payload: Mapping[str, Any]) -> float | None:
    try:
        tokens = payload["choices"][0]["logprobs"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    values = [t["logprob"] for t in tokens or [] if isinstance(t.get("logprob"), int | float)]
    return sum(values) / len(values) if values else None


def check_logprob(payload: Mapping[str, Any], minimum: float) -> bool:
    mean = mean_logprob(payload)
    return mean is None or mean >= minimum


def check_schema(text: str, response_format: Any) -> bool:
    if not isinstance(response_format, Mapping):
        return True
    kind = response_format.get("type")
    if kind not in ("json_object", "json_schema"):
        return True
    try:
        value = json.loads(text.strip().removeprefix("```json").removesuffix("```").strip())
    except ValueError:
        return False
    if kind == "json_object":
        return isinstance(value, dict)
    spec = response_format.get("json_schema") or {}
    schema = spec.get("schema") if isinstance(spec, Mapping) else None
    if not isinstance(schema, Mapping):
        return True
    try:
        import jsonschema
    except ModuleNotFoundError:  # without the validator, parsing is the check
        return True
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError:
        return False
    except jsonschema.SchemaError:
        return True  # the client's schema is broken, not the answer
    return True


def normalize_label(text: str) -> str:
    return text.strip().strip("。.!！").strip().casefold()


def check_labels(text: str, labels: Sequence[str] | None) -> bool:
    if not labels:
        return True
    return normalize_label(text) in {normalize_label(label) for label in labels}


def check_code(text: str) -> bool:
    for block in _PY_BLOCK.findall(text):
        try:
            ast.parse(block)
        except SyntaxError:
            return False
    return True


def failed_check(
    rule: CascadeTarget, payload: Mapping[str, Any], body: Mapping[str, Any]
) -> str | None:
    """The first check (in the rule's order) the answer fails, or None when it passes them all."""
    text = answer_of(payload)
    for check in rule.checks:
        if check == "logprob" and not check_logprob(payload, rule.min_logprob):
            return "logprob"
        if check == "schema" and not check_schema(text, body.get("response_format")):
            return "schema"
        if check == "labels" and not check_labels(text, rule.labels):
            return "labels"
        if check == "code" and not check_code(text):
            return "code"
    return None


def first_body(rule: CascadeTarget, body: dict[str, Any]) -> dict[str, Any]:
    """The first attempt's body: non-streamed, with log-probabilities when they are checked."""
    first = dict(body)
    first.pop("stream", None)
    first.pop("stream_options", None)
    if "logprob" in rule.checks and not first.get("logprobs"):
        first["logprobs"] = True
    return first


def strip_logprobs(payload: dict[str, Any], asked: bool) -> dict[str, Any]:
    """The answer as the client asked for it: without the log-probabilities it did not ask for."""
    if asked:
        return payload
    for choice in payload.get("choices") or []:
        if isinstance(choice, dict):
            choice.pop("logprobs", None)
    return payload


def as_chunks(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A whole chat answer as the stream payloads a client would have read."""
    head = {
        "id": payload.get("id", "chatcmpl-cascade"),
        "object": "chat.completion.chunk",
        "created": payload.get("created", 0),
        "model": payload.get("model", ""),
    }
    choice = (payload.get("choices") or [{}])[0]
    text = answer_of(payload)
    finish = choice.get("finish_reason") or "stop"
    chunks = [
        {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}}]},
        {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]},
    ]
    if payload.get("usage") is not None:
        chunks.append({**head, "choices": [], "usage": payload["usage"]})
    return chunks

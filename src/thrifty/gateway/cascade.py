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

An escalated request's reason names the failed check (``rule:NAME; cascade: local failed labels
-> deepseek-chat``; a first target that errors counts as ``error``), its route is the target that
answered, and its cost includes both attempts (the meter charges the discarded local answer's
engine time). Targets the privacy guard or the key's scope removed are not escalated to: a PII
request under a cascade rule is answered locally, checked or not.
A stream is answered from the buffered, verified local answer (so its time to first token is the
local model's whole generation time), or streamed from the next target after an escalation;
``buffer_stream: false`` streams the local answer unchecked instead.
"""

from __future__ import annotations

import ast
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from thrifty.backends import Reply, StreamStats
from thrifty.config import CascadeTarget
from thrifty.context import Attempt, RequestContext
from thrifty.errors import Overloaded, UpstreamError
from thrifty.gateway.answer import replay

if TYPE_CHECKING:
    from thrifty.gateway.call import Caller

logger = logging.getLogger(__name__)

# a fenced block, closed or cut off by max_tokens (an unclosed block is code that stopped)
_PY_BLOCK = re.compile(
    r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE
)


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


# -- the call: the first target, its checks, then the rest in order ------------------------------


async def _first(ctx: RequestContext) -> tuple[Reply | None, str | None]:
    """The first target's whole answer and the check it failed (None: passed; "error": it
    could not answer)."""

    rule: CascadeTarget = ctx.cascade
    first = ctx.targets[0]
    body = first_body(rule, first.request_body(ctx.body, ctx.stream))
    began = time.perf_counter()
    try:
        reply = await first.backend.complete(ctx.endpoint, body)
    except (UpstreamError, Overloaded) as exc:
        elapsed = time.perf_counter() - began
        ctx.attempts.append(Attempt(first.route, first.upstream, exc.status, exc.code, elapsed))
        return None, "error"
    ctx.attempts.append(
        Attempt(first.route, first.upstream, 200, None, time.perf_counter() - began)
    )
    return reply, failed_check(rule, reply.payload, ctx.body)


def _escalate(ctx: RequestContext, check: str) -> None:
    first, rest = ctx.targets[0], ctx.targets[1:]
    ctx.notes.append(f"cascade: {first.route} failed {check} -> {rest[0].route}")
    logger.info("request %s: %s failed the %s check; escalating", ctx.id, first.route, check)
    ctx.targets = rest


def _accept(ctx: RequestContext, reply: Reply) -> Reply:
    ctx.answered_by = ctx.targets[0]
    strip_logprobs(reply.payload, asked=bool(ctx.body.get("logprobs")))
    return reply


async def complete(caller: Caller, ctx: RequestContext) -> Reply:
    reply, check = await _first(ctx)
    if reply is not None and check is None:
        return _accept(ctx, reply)
    _escalate(ctx, check or "error")
    return await caller.complete_in_order(ctx)


async def stream(
    caller: Caller, ctx: RequestContext, stats: StreamStats
) -> tuple[list[bytes] | None, AsyncIterator[list[bytes]]]:
    """The verified local answer replayed as one batch of events, or the next target's stream."""
    reply, check = await _first(ctx)
    if reply is not None and check is None:
        payload = _accept(ctx, reply).payload
        stats.first_chunk_at = time.perf_counter()  # the whole local generation came first
        events = [orjson.dumps(chunk) for chunk in replay(payload)]
        stats.chunks += len(events)
        return events, _nothing()
    _escalate(ctx, check or "error")
    return await caller.stream_in_order(ctx, stats)


async def _nothing() -> AsyncIterator[list[bytes]]:
    return
    yield  # an empty async generator

"""What names a cached answer, and what a request asks of the cache.

The exact key hashes everything that changes the answer, within the caller's tenant: the
endpoint, the resolved target (route and the model name it is called with, so `auto` and an
explicit alias share entries when they land on the same model), the messages or prompt, and
every other body field except the few that only change how the answer is delivered. Unknown
fields are kept: a provider extension we do not know might change the answer, and caching too
little is cheap where caching too much is wrong.

So the key covers the system prompt, earlier turns (tool calls and results included), tools and
tool_choice, response_format, every sampling parameter (temperature, top_p, seed, stop,
max_tokens, penalties, logit_bias, n), the target model and the tenant.

The semantic partition is the same hash without the last user turn's words: a semantic hit needs
the same tenant, target, parameters, system prompt, earlier turns and last-turn fields (its
`name`), and only the last question may be phrased differently.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import orjson

from thrifty.context import RequestContext
from thrifty.errors import InvalidRequest

_VERSION = 2  # bump when the key material changes: old entries then simply stop matching
# Body fields that change how an answer is delivered or billed, not what it says.
_DELIVERY = frozenset({"model", "stream", "stream_options", "user", "thrifty"})
_FLOATS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
_TENANT = re.compile(r"[A-Za-z0-9_.-]{1,64}")
HEADER = "x-thrifty-cache"


@dataclass(frozen=True, slots=True)
class Directives:
    """A request's cache directives: `no-cache` skips the lookup, `no-store` the write.

    `invalidate`: the answer the cache would give this request is wrong. The entry it would
    come from is dropped (an exact hit) or never again served to questions this far from it (a
    semantic hit: evidence for the learned thresholds); the request then goes to the model.
    """

    lookup: bool = True
    store: bool = True
    ttl_s: float | None = None
    invalidate: bool = False


@dataclass(frozen=True, slots=True)
class RequestKeys:
    exact: str  # "<tenant>:<digest>"; the backend adds its prefix
    route: str  # the first target, which the key names
    model: str
    partition: str | None = None  # semantic partition; None: no semantic lookup for this request
    text: str | None = None  # the last user turn, to embed


def directives(ctx: RequestContext) -> Directives:
    """Directives from the `x-thrifty-cache` header and the body's `thrifty` extension.

    Both take `no-store`, `no-cache`, `invalidate` and `ttl=<seconds>`, comma-separated (the
    body also a list, and `cache_ttl_s`); an unknown directive is a 400, since a typo in
    `no-store` must not silently store an answer its client meant to keep out of the cache.
    """
    words: list[str] = []
    header = ctx.request_headers.get(HEADER)
    if header:
        words += header.split(",")
    ttl: float | None = None
    ext = ctx.body.get("thrifty")
    if isinstance(ext, dict):
        asked = ext.get("cache")
        if isinstance(asked, str):
            words += asked.split(",")
        elif isinstance(asked, list):
            words += [str(w) for w in asked]
        elif asked is not None:
            raise InvalidRequest("thrifty.cache: a string or a list", param="thrifty.cache")
        if ext.get("cache_ttl_s") is not None:
            ttl = _seconds(ext["cache_ttl_s"], "thrifty.cache_ttl_s")
    lookup = store = True
    invalidate = False
    for raw in words:
        word = raw.strip().lower()
        if word == "no-store":
            store = False
        elif word == "no-cache":
            lookup = False
        elif word == "invalidate":
            invalidate = True
        elif word.startswith("ttl="):
            ttl = _seconds(word[4:], "thrifty.cache")
        elif word:
            raise InvalidRequest(
                f"unknown cache directive {raw.strip()!r} "
                "(no-store, no-cache, invalidate, ttl=<seconds>)",
                param="thrifty.cache",
            )
    return Directives(lookup, store, ttl, invalidate)


def deterministic(body: dict[str, Any]) -> bool:
    """Whether the answer is reproducible: greedy decoding, or a fixed seed."""
    return body.get("temperature") == 0 or body.get("seed") is not None


def request_keys(ctx: RequestContext, *, semantic: bool) -> RequestKeys:
    """The exact key of a request (first target) and, if asked, its semantic partition."""
    target = ctx.targets[0]
    params = {k: v for k, v in ctx.body.items() if k not in _DELIVERY and v is not None}
    for name in _FLOATS:  # 0 and 0.0 ask for the same thing
        if type(params.get(name)) is int:
            params[name] = float(params[name])
    head = [_VERSION, ctx.tenant, ctx.endpoint, target.route, target.model]
    tag = tenant_tag(ctx.tenant)
    exact = f"{tag}:{_digest([*head, params])}"
    if not semantic or ctx.endpoint != "chat":
        return RequestKeys(exact, target.route, target.model)
    messages = params.get("messages")
    text = last_user_text(messages) if isinstance(messages, list) else None
    if text is None or not isinstance(messages, list):
        return RequestKeys(exact, target.route, target.model)
    # everything but the last turn's words: its role, name and any other field stay in the key
    last = {k: v for k, v in messages[-1].items() if k != "content"}
    context = {**params, "messages": messages[:-1], "last": last}
    partition = f"{tag}:{_digest([*head, 's', context])}"
    return RequestKeys(exact, target.route, target.model, partition, text)


def last_user_text(messages: list[Any]) -> str | None:
    """The last message's text when a user wrote it and it is text only; else None."""
    if not messages or not isinstance(messages[-1], dict):
        return None
    last = messages[-1]
    if last.get("role") != "user":
        return None
    content = last.get("content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    texts = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") != "text":
            return None  # an image or a file: the words alone do not say what is asked
        texts.append(str(part.get("text", "")))
    return "\n".join(texts)


def tenant_tag(tenant: str) -> str:
    """The tenant as it appears in keys: itself when it is a plain name, else a hash of it."""
    if _TENANT.fullmatch(tenant):
        return tenant
    return "~" + hashlib.blake2b(tenant.encode(), digest_size=8).hexdigest()


def _digest(material: list[Any]) -> str:
    data = orjson.dumps(material, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _seconds(value: Any, param: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds > 0:
        raise InvalidRequest(f"{param}: the TTL must be a positive number of seconds", param=param)
    return seconds

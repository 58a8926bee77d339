"""A property-based robustness sweep of every HTTP endpoint of a real `thrifty serve`.

Hypothesis mutates valid requests (wrong types for every known field, huge and negative numbers,
NaN tokens, lone surrogates, invalid UTF-8, null bytes, duplicate keys, deep nesting, truncated
and non-object bodies, wrong content types, bad Authorization headers, odd path segments and
query strings) and sends them to a server with keys, the local model off and the fake upstream
as its cloud. Every answer must be under 500, in the endpoint's error shape when it is an error
(OpenAI's; Anthropic's on /v1/messages), without a traceback or a secret. After the sweep the
server is healthy, the rows of earlier valid requests are in the request log, and the server's
log holds no traceback and no secret.

The examples are derandomized and bounded: the same requests on every run.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from fakes.upstream import FakeUpstream
from support import ThriftyServer, dump

pytestmark = pytest.mark.slow

UPSTREAM_SECRET = "sk-fuzz-upstream-5e1c2b7d9a"
WRONG_KEY = "sk-someone-elses-key-3c8e1f"  # presented and refused: a secret all the same
BODY_LIMIT = 256 * 1024
CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"

CHAT_BODY: dict[str, Any] = {
    "model": "auto",
    "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ],
    "max_tokens": 8,
    "max_completion_tokens": 8,
    "temperature": 0.5,
    "top_p": 1,
    "n": 1,
    "seed": 1,
    "stop": ["\n"],
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "logit_bias": {"42": 1.0},
    "tools": [{"type": "function", "function": {
        "name": "f", "description": "d", "parameters": {"type": "object"}}}],
    "tool_choice": {"type": "function", "function": {"name": "f"}},
    "parallel_tool_calls": True,
    "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {}}},
    "logprobs": True,
    "top_logprobs": 2,
    "stream": False,
    "stream_options": {"include_usage": True},
    "metadata": {"k": "v"},
    "user": "u",
    "thrifty": {"cache": "no-cache", "cache_ttl_s": 60, "reference": "x", "scorer": "contains"},
}  # fmt: skip
COMPLETION_BODY: dict[str, Any] = {
    "model": "fake-chat", "prompt": ["hi", "there"], "max_tokens": 8, "temperature": 0.5,
    "top_p": 1, "n": 1, "stop": "x", "echo": False, "suffix": "s", "seed": 3, "stream": False,
    "stream_options": {"include_usage": True}, "logit_bias": {"1": 0.5}, "user": "u",
}  # fmt: skip
EMBEDDING_BODY: dict[str, Any] = {
    "model": "fake-chat", "input": ["hi", "there"], "encoding_format": "float", "dimensions": 4,
    "user": "u",
}  # fmt: skip
ANTHROPIC_BODY: dict[str, Any] = {
    "model": "fake-chat",
    "max_tokens": 8,
    "system": [{"type": "text", "text": "be brief"}],
    "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "hi"},
            {"type": "image", "source": {"type": "url", "url": "http://127.0.0.1/a.png"}},
        ]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "calling"},
            {"type": "tool_use", "id": "t1", "name": "f", "input": {"q": 1}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "r"}],
             "is_error": False},
        ]},
    ],
    "temperature": 0.5,
    "top_p": 1,
    "stop_sequences": ["x"],
    "stream": False,
    "metadata": {"user_id": "u"},
    "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
    "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
}  # fmt: skip
KEY_BODY: dict[str, Any] = {
    "tenant": "fuzz-made", "role": "user", "models": ["fake-chat"], "rpm": 10, "tpm": 1000,
    "daily_tokens": 1000, "daily_usd": 1.5, "expires": "30d", "tags": ["a"],
}  # fmt: skip

# values that are wrong somewhere: every JSON type, numbers past 64 bits, NaN and Infinity
# (written as the bare tokens), lone surrogates, null bytes, long strings, nesting
ODD: list[Any] = [
    None, True, False, 0, -1, 1, 2**63, 2**70, -(2**70), 1.5, -2.5, 1e308, -1e-320,
    float("nan"), float("inf"), float("-inf"),
    "", "x", "8", "true", "null", "\x00", "a\x00b", "\ud800", "x\udfffy", "\u202e\ufeff", "𝕏" * 3,
    "x" * 100_000, "y" * (BODY_LIMIT + 1), [], [None], [[[]]], [1, "a", {}], {}, {"": None},
    {"type": 1}, {"type": "text"}, {"role": "user"}, {"a": {"b": {"c": [1, 2, {"d": None}]}}},
]  # fmt: skip
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text(max_size=12)
)
JSON = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
BAD = st.one_of(st.sampled_from(ODD), JSON)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into a JSON value (keys and list indexes)."""
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, child in items:
        yield (*prefix, key)
        yield from paths(child, (*prefix, key))


def mutate(body: Any, path: tuple[Any, ...], op: str, value: Any) -> Any:
    """`body` with the value at `path` replaced (set), removed (delete) or wrapped in a list."""
    body = json.loads(json.dumps(body))
    if not path:
        return value
    parent = body
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if op == "delete":
        del parent[last]
    elif op == "wrap":
        parent[last] = [parent[last]]
    else:
        parent[last] = value
    return body


def serialize(body: Any, ascii_only: bool) -> bytes:
    text = json.dumps(body, ensure_ascii=ascii_only, allow_nan=True)
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate: invalid UTF-8 bytes


def _raw_edits() -> st.SearchStrategy[Callable[[bytes], bytes]]:
    """Edits of the serialized body: what a broken client or a hand-written curl sends."""
    cut = st.integers(min_value=0, max_value=400).map(lambda n: lambda raw: raw[:n])
    insert = st.tuples(
        st.integers(min_value=0, max_value=400),
        st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\xed\xa0\x80", b",", b"}", b'"', b"\\"]),
    ).map(lambda t: lambda raw: raw[: t[0]] + t[1] + raw[t[0] :])
    fixed: list[Callable[[bytes], bytes]] = [
        lambda raw: raw,
        lambda raw: b"",
        lambda raw: b"   ",
        lambda raw: b"null",
        lambda raw: b"[" + raw + b"]",
        lambda raw: b'"' + raw.replace(b'"', b'\\"') + b'"',
        lambda raw: b"42",
        lambda raw: b'{"model": 7, ' + raw[1:],  # a duplicate key, the first one bad
        lambda raw: raw[:-1] + b', "model": ["x"]}',  # a duplicate key, the last one bad
        lambda raw: b'{"temperature": NaN, ' + raw[1:],
        lambda raw: b'{"max_tokens": Infinity, ' + raw[1:],
        lambda raw: b'{"n": 1e999, ' + raw[1:],
        lambda raw: b'{"seed": 123456789012345678901234567890, ' + raw[1:],
        lambda raw: b'{"metadata": ' + b"[" * 10_000 + b"]" * 10_000 + b", " + raw[1:],
        lambda raw: b'{"metadata": ' + b'{"a":' * 300 + b"1" + b"}" * 300 + b", " + raw[1:],
        lambda raw: b"\xef\xbb\xbf" + raw,  # a byte-order mark
        lambda raw: raw.decode("utf-8", "surrogatepass").encode("utf-16"),
        lambda raw: b'{"\xff": 1, ' + raw[1:],
    ]
    return st.one_of(st.sampled_from(fixed), cut, insert)


RAW_EDITS = _raw_edits()
# request headers the gateway reads, and a few that a server might act on
HEADER_NAMES = [
    "x-thrifty-cache", "x-thrifty-user", "traceparent", "x-thrifty-tenant", "accept",
    "content-encoding", "expect", "x-forwarded-for", "cookie", "origin",
]  # fmt: skip
HEADER_VALUES = [
    b"no-store", b"ttl=inf", b"ttl=1e999", b"ttl=-1", b"ttl=nan", b"ttl=", b"no-cache,,bogus",
    b"\xff\xfe", b"\xe9t\xe9", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01",
    b"00-" + b"g" * 32 + b"-" + b"2" * 16 + b"-zz", b"gzip", b"x" * 5000, b"100-continue", b"",
]  # fmt: skip
EXTRA_HEADERS = st.dictionaries(
    st.sampled_from(HEADER_NAMES), st.sampled_from(HEADER_VALUES), max_size=3
)
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json",
        "application/json; charset=latin-1",
        "text/plain",
        None,
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=zz",
    ]
)


class Sweep:
    """Sends requests to the server and keeps every answer that breaks the rules."""

    def __init__(self, server: ThriftyServer, secret: str) -> None:
        self.server = server
        self.secret = secret
        self.http = httpx.Client(base_url=server.url, timeout=30)
        self.problems: dict[str, str] = {}
        self.statuses: dict[int, int] = {}
        self.sent = 0

    def auth(self, variant: str) -> dict[str, Any]:
        good = f"Bearer {self.secret}"
        headers: dict[str, bytes] = {
            "good": {"authorization": good.encode()},
            "none": {},
            "empty": {"authorization": b""},
            "scheme": {"authorization": b"Bearer"},
            "spaces": {"authorization": b"Bearer  \t  sk-x"},
            "basic": {"authorization": b"Basic dXNlcjpwYXNz"},
            "lower": {"authorization": f"bearer {self.secret}".encode()},
            "wrong": {"authorization": f"Bearer {WRONG_KEY}".encode()},
            "latin1": {"authorization": b"Bearer \xff\xfe\xe9t\xe9"},
            "utf8": {"authorization": "Bearer clé-🔑".encode()},
            "long": {"authorization": b"Bearer " + b"k" * 20_000},
            "api-key": {"api-key": self.secret.encode()},
            "x-api-key": {"x-api-key": b"\xe9\xe9"},
            "two": {"authorization": good.encode(), "x-api-key": b"other"},
        }[variant]
        return headers

    def send(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        headers: dict[str, Any] | None = None,
        shape: str = "openai",
        label: str = "",
        kind: str = "",
        files: Any = None,
        data: Any = None,
    ) -> httpx.Response | None:
        self.sent += 1
        try:
            response = self.http.request(
                method, path, content=content, headers=headers, files=files, data=data
            )
        except httpx.HTTPError as exc:
            self.problems.setdefault(f"{method} {path}: no answer", f"{label}: {exc!r}")
            return None
        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
        problem = self.check(response, shape)
        if problem is not None:
            where = path.split("?")[0][:40]
            status = response.status_code
            self.problems.setdefault(
                f"{method} {where} {kind} {status}: {problem[:80]}",
                f"{label[:600]} -> {response.text[:400]}",
            )
        return response

    def names(self, response: httpx.Response | None, field: str, where: str, label: str) -> None:
        """A 400 caused by one field must name it."""
        if response is not None and response.status_code == 400 and field not in response.text:
            problem = f"{where}: the error does not name {field}"
            self.problems.setdefault(problem, f"{label} -> {response.text[:300]}")

    def check(self, response: httpx.Response, shape: str) -> str | None:
        """What is wrong with an answer, or None."""
        status = response.status_code
        text = response.text
        if status >= 500:
            return "server error"
        for secret in (UPSTREAM_SECRET, self.secret, WRONG_KEY):
            if secret in text or any(secret in v for v in response.headers.values()):
                return "a secret in the answer"
        if "Traceback" in text or 'File "/' in text:
            return "a traceback in the answer"
        if status < 400 or shape == "any":
            return None
        try:
            body = response.json()
        except ValueError:
            return "an error that is not JSON"
        if shape == "anthropic":
            ok = (
                isinstance(body, dict)
                and body.get("type") == "error"
                and isinstance(body.get("error"), dict)
                and set(body["error"]) == {"type", "message"}
                and isinstance(body["error"]["type"], str)
            )
            message = body["error"].get("message") if ok else None
        else:
            error = body.get("error") if isinstance(body, dict) else None
            ok = (
                isinstance(error, dict)
                and set(error) == {"message", "type", "param", "code"}
                and isinstance(error["type"], str)
                and (error["param"] is None or isinstance(error["param"], str))
                and (error["code"] is None or isinstance(error["code"], str))
            )
            message = error.get("message") if ok and isinstance(error, dict) else None
            if ok and isinstance(error, dict) and error["type"] == "server_error":
                return "a client's error typed server_error"
        if not ok:
            return f"not the {shape} error shape"
        if not isinstance(message, str) or len(message) < 8:
            return "an error message that says nothing"
        return None


FAST = settings(
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # every failure is collected, none shrunk
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def server(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from thrifty.store.keys import KeySpec, KeyStore

    home = tmp_path_factory.mktemp("fuzz")
    config = {
        "local": {"enabled": False},
        "default_model": "fake-chat",
        "limits": {"max_body_bytes": BODY_LIMIT, "body_timeout_s": 2},
        "batches": {"clock": "now", "poll_s": 0.2},
        "privacy": {"unscannable": "allow"},  # the image blocks of /v1/messages go to the cloud
        "upstreams": [
            {"name": "fake", "base_url": fake.url, "models": {"fake-chat": "fake-chat"},
             "api_key_env": "FUZZ_UPSTREAM_KEY", "timeout_s": 10, "max_retries": 0},
        ],
    }  # fmt: skip
    running = ThriftyServer(config=config, env={"FUZZ_UPSTREAM_KEY": UPSTREAM_SECRET}, home=home)
    with KeyStore(running.database_url) as store:  # an admin key, made as the CLI makes it
        _, secret = store.create(KeySpec("fuzz", role="admin"), "cli:test")
    with running:
        yield running, secret


def _valid(sweep: Sweep) -> list[str]:
    """Three answered chat requests: their request-log rows must survive the sweep."""
    ids = []
    for i in range(3):
        body = {"model": "fake-chat", "messages": [{"role": "user", "content": f"hello {i}"}]}
        response = sweep.http.post(CHAT, json=body, headers=sweep.auth("good"))
        assert response.status_code == 200, response.text
        ids.append(response.headers["x-thrifty-request-id"])
    return ids


# one of each kind, for the grid: every path of a valid body set to each (or deleted)
KINDS: list[Any] = [
    None, True, -1, 2**70, 1.5, "x", "", "\x00", "999999999999d", [], [None], {}, {"type": ["a"]},
]  # fmt: skip


def _body_sweep(
    sweep: Sweep,
    path: str,
    base: dict[str, Any],
    shape: str,
    examples: int,
    extra: list[str],
    grid: bool = True,
) -> None:
    """Every known field set to each kind of value (a grid), then random mutations (Hypothesis):
    several fields at once, or the bytes edited, or the headers changed."""
    known = [*paths(base), *((name,) for name in extra)]
    good = sweep.auth("good") | {"content-type": b"application/json"}
    for where in known if grid else []:
        for op, value in [("delete", None), *(("set", kind) for kind in KINDS)]:
            with contextlib.suppress(KeyError, IndexError, TypeError):
                raw = serialize(mutate(base, where, op, value), True)
                label = f"{op} {where}={value!r} body={raw[:300]!r}"
                kind = f"{op} {'.'.join(map(str, where))}"
                response = sweep.send(
                    "POST", path, content=raw, headers=good, shape=shape, label=label, kind=kind
                )
                # a 400 for one changed field names it (the model picks the backend: not always)
                if where[0] != "model":
                    sweep.names(response, str(where[0]), f"{path} {kind}", label)

    ops = st.sampled_from(["set", "set", "set", "delete", "wrap"])
    mutations = st.lists(st.tuples(st.sampled_from(known), ops, BAD), min_size=1, max_size=3)
    identity: Callable[[bytes], bytes] = lambda raw: raw  # noqa: E731
    variants = st.one_of(
        st.tuples(mutations, st.just(identity), st.just("application/json"), st.just("good")),
        st.tuples(st.just([]), RAW_EDITS, st.just("application/json"), st.just("good")),
        st.tuples(mutations, RAW_EDITS, CONTENT_TYPES, st.sampled_from(_AUTH_VARIANTS)),
    )

    @given(variant=variants, extra_headers=EXTRA_HEADERS, ascii_only=st.booleans())
    @settings(FAST, max_examples=examples)
    def run(
        variant: tuple[
            list[tuple[tuple[Any, ...], str, Any]], Callable[[bytes], bytes], str | None, str
        ],
        extra_headers: dict[str, bytes],
        ascii_only: bool,
    ) -> None:
        changes, raw_edit, content_type, auth = variant
        body: Any = base
        applied = []
        for where, op, value in changes:
            with contextlib.suppress(KeyError, IndexError, TypeError):
                body = mutate(body, where, op, value)
                applied.append((where, op, repr(value)[:60]))
        raw = raw_edit(serialize(body, ascii_only))
        headers = extra_headers | sweep.auth(auth)
        if content_type is not None:
            headers["content-type"] = content_type.encode()
        label = f"{auth} {content_type} {extra_headers} {applied} body={raw[:300]!r}"
        kind = " ".join(".".join(map(str, where)) for where, _, _ in applied)
        sweep.send("POST", path, content=raw, headers=headers, shape=shape, label=label, kind=kind)

    run()


_AUTH_VARIANTS = (
    "none", "empty", "scheme", "spaces", "basic", "lower", "wrong", "latin1", "utf8", "long",
    "api-key", "x-api-key", "two",
)  # fmt: skip

SEGMENT_LIST = [
    "x", "", "..", "%00", "%ff", "%ed%a0%80", "a%2Fb", "9" * 30, "-1", "%20", "🔑", "a" * 5000,
]  # fmt: skip
SEGMENTS = st.one_of(
    st.sampled_from(SEGMENT_LIST),
    st.text(max_size=12).map(lambda s: urllib.parse.quote(s, safe="")),
)
ODD_QUERY = [
    "", "7d", "-1", "0", "1e999", "99999999999999999999", "nan", "%00", "%ff", "30m", "abc",
    "2026-13-45", "9999-12-31T23:59:59", "0001-01-01", "1d1d", "-5d", "🔑", "x" * 3000,
]  # fmt: skip
QUERY_VALUES = st.one_of(
    st.sampled_from(ODD_QUERY), st.text(max_size=10).map(lambda s: urllib.parse.quote(s, safe=""))
)
# every query parameter an endpoint reads
QUERIES = [
    ("/v1/usage", "since"), ("/v1/usage", "until"), ("/v1/usage", "by"),
    ("/v1/usage", "currency"), ("/v1/batches", "limit"), ("/v1/batches", "after"),
    ("/v1/files", "purpose"), ("/v1/usage", "bogus"),
]  # fmt: skip
GETS = [
    "/v1/models", "/v1/models/{s}", "/v1/files", "/v1/files/{s}", "/v1/files/{s}/content",
    "/v1/batches", "/v1/batches/{s}", "/v1/usage", "/admin/keys", "/metrics", "/readyz",
    "/healthz", "/openapi.json", "/console", "/console/routing", "/console/models",
    "/console/tenants", "/console/evals", "/console/privacy", "/console/autopilot",
    "/console/login", "/console/static/console.js", "/{s}", "/v1/{s}",
]  # fmt: skip
OTHER_METHODS = [
    ("POST", "/v1/batches/{s}/cancel"), ("DELETE", "/v1/files/{s}"), ("DELETE", "/admin/keys/{s}"),
    ("PUT", CHAT), ("GET", CHAT), ("DELETE", "/v1/models"), ("PATCH", "/v1/batches"),
    ("POST", "/console/review/{n}"), ("POST", "/console/logout"), ("OPTIONS", "/v1/models"),
]  # fmt: skip
QUERY_NAMES = st.sampled_from(
    ["since", "until", "by", "currency", "limit", "after", "purpose", "lang", "x", "since", "limit"]
)


_PART = b'--zz\r\nContent-Disposition: form-data; name="%s"%s\r\n\r\n%s\r\n'
RAW_UPLOADS = [
    (b"multipart/form-data; boundary=zz", b"garbage"),
    (b"multipart/form-data", b"--zz\r\n"),
    (b"multipart/form-data; boundary=zz", b"--zz\r\nContent-Disposition: form-data\r\n\r\nx"),
    (b"multipart/form-data; boundary=zz", _PART % (b"purpose", b"", b"batch")),  # no end
    (b"multipart/form-data; boundary=zz",
     _PART % (b"purpose", b"", b"batch") + _PART % (b"file", b'; filename="\xff"', b"\xff\xfe")
     + b"--zz--\r\n"),
    (b"multipart/form-data; boundary=zz",
     _PART % (b"purpose", b"", b"\xff") + _PART % (b"file", b"", b"{}") + b"--zz--\r\n"),
    (b"multipart/form-data; boundary=" + b"z" * 300, b"x"),
    (b"application/x-www-form-urlencoded", b"purpose=batch&file=abc"),
    (b"application/json", b'{"purpose": "batch", "file": "x"}'),
]  # fmt: skip


def _grids(sweep: Sweep) -> None:
    """Every header the gateway reads with each odd value on a valid request; every query
    parameter with each odd value; every path with a parameter with odd segments."""
    good = sweep.auth("good") | {"content-type": b"application/json"}
    for path, body, shape in [(CHAT, CHAT_BODY, "openai"), (MESSAGES, ANTHROPIC_BODY, "anthropic")]:
        raw = serialize(body, True)
        for name in HEADER_NAMES:
            for value in HEADER_VALUES:
                headers = good | {name: value}
                label = f"{name}: {value[:60]!r}"
                sweep.send("POST", path, content=raw, headers=headers, shape=shape, label=label)
    for path, name in QUERIES:
        for value in ODD_QUERY:
            url = f"{path}?{name}={value}"
            sweep.send("GET", url, headers=good, label=url, kind=name)
            if name != "bogus":
                sweep.names(sweep.send("GET", url, headers=good, label=url), name, url, url)
    hi = {"role": "user", "content": "hi"}
    big = [  # large in one dimension each, all inside the body limit
        CHAT_BODY | {"messages": [hi] * 1100},
        CHAT_BODY | {"messages": [{"role": "user", "content": [TEXT_PART] * 5000}]},
        CHAT_BODY | {"tools": [CHAT_BODY["tools"][0]] * 1000},
        CHAT_BODY | {"model": "m" * 100_000},
        CHAT_BODY | {"max_tokens": 2**62, "max_completion_tokens": 2**31, "n": 10**6},
        CHAT_BODY | {"stop": ["x" * 50_000] * 4, "seed": 2**62, "logit_bias": {"x" * 1000: 1.0}},
        CHAT_BODY | {"metadata": {str(i): "v" for i in range(5000)}},
        CHAT_BODY | {"\u00e9\U0001f511" * 1000: 1, "": None},
    ]  # fmt: skip
    for body in big:
        label = f"big {serialize(body, True)[:200]!r}"
        sweep.send("POST", CHAT, content=serialize(body, True), headers=good, label=label)
    for content_type, body in RAW_UPLOADS:
        headers = sweep.auth("good") | {"content-type": content_type}
        label = f"{content_type!r} {body[:200]!r}"
        sweep.send("POST", "/v1/files", content=body, headers=headers, label=label)
    for template in [p for p in GETS if "{s}" in p]:
        for segment in SEGMENT_LIST:
            url = template.replace("{s}", segment)
            sweep.send("GET", url, headers=good, label=url, kind=template)


def _path_sweep(sweep: Sweep, examples: int) -> None:
    @given(
        route=st.sampled_from([("GET", p) for p in GETS] + OTHER_METHODS),
        segment=SEGMENTS,
        number=st.sampled_from(["1", "0", "99999999999999999999999", "18446744073709551616"]),
        query=st.lists(st.tuples(QUERY_NAMES, QUERY_VALUES), max_size=3),
        auth=st.sampled_from(["good"] * 6 + list(_AUTH_VARIANTS)),
        cookie=st.sampled_from(
            [
                None,
                b"thrifty_console=a.b.c",
                b"thrifty_console=k.99999999999.\xe9\xe9",
                b"thrifty_console=\xff",
                b"thrifty_console=" + b"." * 5000,
                b"=;;;==",
            ]
        ),
    )
    @settings(FAST, max_examples=examples)
    def run(
        route: tuple[str, str],
        segment: str,
        number: str,
        query: list[tuple[str, str]],
        auth: str,
        cookie: bytes | None,
    ) -> None:
        method, template = route
        path = template.replace("{s}", segment).replace("{n}", number)
        if query:
            path += "?" + "&".join(f"{name}={value}" for name, value in query)
        headers = sweep.auth(auth)
        if cookie is not None:
            headers["cookie"] = cookie
        shape = "any" if path.startswith("/console") else "openai"
        label = f"{auth} cookie={cookie!r} {method} {path[:300]}"
        sweep.send(method, path, headers=headers, shape=shape, label=label)

    run()


def _form_sweep(sweep: Sweep, examples: int) -> None:
    """The console's login and review forms (HTML answers: under 500, no traceback)."""

    @given(
        path=st.sampled_from(["/console/login", "/console/review/1", "/console/logout"]),
        body=st.one_of(
            st.sampled_from(
                [
                    b"",
                    b"api_key=",
                    b"api_key=%ff%fe",
                    b"api_key=" + b"x" * 10_000,
                    b"api_key=\xff",
                    b"csrf=%C3%A9%C3%A9&verdict=ok",
                    b"csrf=\xe9&verdict=bad",
                    b"&&&==&",
                    b"api_key=%00",
                    b"verdict=maybe",
                ]
            ),
            st.binary(max_size=40),
        ),
        origin=st.sampled_from([None, b"http://evil", b"\xff", b"null"]),
        auth=st.sampled_from(["good", "none", "latin1"]),
    )
    @settings(FAST, max_examples=examples)
    def run(path: str, body: bytes, origin: bytes | None, auth: str) -> None:
        headers = sweep.auth(auth)
        headers["content-type"] = b"application/x-www-form-urlencoded"
        if origin is not None:
            headers["origin"] = origin
        label = f"{auth} origin={origin!r} {body[:200]!r}"
        sweep.send("POST", path, content=body, headers=headers, shape="any", label=label)

    run()


TEXT_PART = {"type": "text", "text": "a"}
CONSOLE_PAGES = ["", "/routing", "/models", "/tenants", "/evals", "/privacy", "/autopilot"]
WINDOWS = ["7d", "", "0d", "-1d", "99999999999d", "1e999", "2026-13-45", "0001-01-01", "%00", "x"]


def _console_sweep(sweep: Sweep) -> None:
    """Logged in: every page with odd windows, and review verdicts on odd item ids."""
    login = sweep.http.post(
        "/console/login", data={"api_key": sweep.secret}, follow_redirects=False
    )
    assert login.status_code == 303, login.text
    cookies = {"thrifty_console": login.cookies["thrifty_console"]}
    page = sweep.http.get("/console/privacy", headers={"cookie": _jar(cookies)})
    assert page.status_code == 200, page.text[:300]
    csrf = re.search(r"name=csrf value='([0-9a-f]+)'", page.text)
    assert csrf is not None
    for path in CONSOLE_PAGES:
        for window in WINDOWS:
            for extra in ("", "&lang=zh&lang=en"):
                url = f"/console{path}?since={window}{extra}"
                sweep.send("GET", url, shape="any", label=url, headers={"cookie": _jar(cookies)})
    for item in ["1", "0", "9223372036854775807", "9223372036854775808", "9" * 40]:
        for verdict in ["ok", "bad", "maybe", ""]:
            form = f"csrf={csrf.group(1)}&verdict={verdict}".encode()
            headers = {"cookie": _jar(cookies), "content-type": "application/x-www-form-urlencoded"}
            url = f"/console/review/{item}"
            sweep.send("POST", url, content=form, headers=headers, shape="any", label=url)


def _jar(cookies: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def _upload_sweep(sweep: Sweep, examples: int) -> None:
    chat = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]}
    line = {"custom_id": "a", "method": "POST", "url": CHAT, "body": chat}
    known = list(paths(line))

    @given(
        mutations=st.lists(
            st.tuples(st.sampled_from(known), st.sampled_from(["set", "delete"]), BAD), max_size=2
        ),
        raw_edit=st.one_of(st.just(lambda raw: raw), RAW_EDITS),
        purpose=st.sampled_from(["batch", "batch", "fine-tune", "", "\udcff"]),
        filename=st.sampled_from(["in.jsonl", "", "../../etc/passwd", "a\x00b", "é" * 300]),
        lines=st.integers(min_value=0, max_value=3),
    )
    @settings(FAST, max_examples=examples)
    def run(
        mutations: list[tuple[tuple[Any, ...], str, Any]],
        raw_edit: Callable[[bytes], bytes],
        purpose: str,
        filename: str,
        lines: int,
    ) -> None:
        item: Any = line
        for where, op, value in mutations:
            with contextlib.suppress(KeyError, IndexError, TypeError):
                item = mutate(item, where, op, value)
        raw = raw_edit(serialize(item, True))
        content = b"\n".join([raw] * lines)
        files = {"file": (filename, content, "application/jsonl")}
        data = {"purpose": purpose.encode("utf-8", "surrogateescape")}
        label = f"purpose={purpose!r} filename={filename!r} {content[:300]!r}"
        made = sweep.send(
            "POST", "/v1/files", files=files, data=data, headers=sweep.auth("good"), label=label
        )
        if made is not None and made.status_code == 200:  # its lines, run as a batch
            batch = {"input_file_id": made.json()["id"], "endpoint": CHAT,
                     "completion_window": "24h", "x_thrifty": {"start": "now"}}  # fmt: skip
            raw = serialize(batch, True)
            sweep.send("POST", "/v1/batches", content=raw, headers=sweep.auth("good"), label=label)

    run()


def _raw_http(server: ThriftyServer, secret: str, payloads: list[bytes]) -> list[bytes]:
    """Send bytes on fresh connections, closing the write side: what comes back on each."""
    answers = []
    for payload in payloads:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            with contextlib.suppress(OSError):  # the server may answer and close first (431)
                conn.sendall(payload.replace(b"SECRET", secret.encode()))
                conn.shutdown(socket.SHUT_WR)
            chunks = []
            with contextlib.suppress(OSError):
                while chunk := conn.recv(65536):
                    chunks.append(chunk)
            answers.append(b"".join(chunks))
    return answers


HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer SECRET\r\n"
RAW_REQUESTS = [
    # a chunked body cut off, and one whose length promises more than comes
    HEAD + b'Transfer-Encoding: chunked\r\n\r\n40\r\n{"model": "fake-chat", "mess',
    HEAD + b'Content-Length: 500\r\n\r\n{"model": "fake-chat"',
    HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",  # a bad chunk size
    HEAD + b"Content-Length: -1\r\n\r\n{}",
    HEAD + b"Content-Length: 99999999999999999999999\r\n\r\n{}",
    HEAD + b"X-Huge: " + b"h" * 200_000 + b"\r\n\r\n",
    HEAD + b"X-Bin: \xff\xfe\x80\r\nContent-Length: 2\r\n\r\n{}",
    b"GET /v1/models HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \xe9\xe9\r\n\r\n",
    b"GET /v1/models\xff HTTP/1.1\r\nHost: t\r\n\r\n",
    b"POST /v1/messages HTTP/1.1\r\nHost: t\r\nx-api-key: SECRET\r\n"
    b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"mod',
]


def test_no_input_breaks_the_server(server: tuple[ThriftyServer, str], fake: FakeUpstream) -> None:
    running, secret = server
    sweep = Sweep(running, secret)
    kept = _valid(sweep)
    started = time.monotonic()

    _body_sweep(sweep, CHAT, CHAT_BODY, "openai", 220, ["messages", "extra", "functions"])
    _body_sweep(sweep, "/v1/completions", COMPLETION_BODY, "openai", 70, ["best_of", "logprobs"])
    _body_sweep(sweep, "/v1/embeddings", EMBEDDING_BODY, "openai", 50, ["stream"])
    _body_sweep(sweep, MESSAGES, ANTHROPIC_BODY, "anthropic", 180, ["thinking", "service_tier"])
    streamed = {"stream": True}  # the same bodies streamed: random mutations only
    _body_sweep(sweep, CHAT, CHAT_BODY | streamed, "openai", 60, [], grid=False)
    _body_sweep(sweep, "/v1/completions", COMPLETION_BODY | streamed, "openai", 30, [], grid=False)
    _body_sweep(sweep, MESSAGES, ANTHROPIC_BODY | streamed, "anthropic", 60, [], grid=False)
    feedback = {"request_id": kept[0], "score": 4, "thumbs": "up", "converted": True,
                "comment": "c"}  # fmt: skip
    _body_sweep(sweep, "/v1/feedback", feedback, "openai", 50, [])
    _body_sweep(sweep, "/admin/keys", KEY_BODY, "openai", 60, [])
    _body_sweep(sweep, "/admin/cache/clear", {"tenant": "fuzz"}, "openai", 20, [])
    made = sweep.http.post(
        "/v1/files",
        files={"file": ("in.jsonl", json.dumps({"custom_id": "a", "method": "POST", "url": CHAT,
               "body": {"model": "fake-chat", "messages": [{"role": "user", "content": "b"}]}}))},
        data={"purpose": "batch"},
        headers=sweep.auth("good"),
    )  # fmt: skip
    assert made.status_code == 200, made.text
    batch = {"input_file_id": made.json()["id"], "endpoint": CHAT, "completion_window": "24h",
             "metadata": {"k": "v"}, "x_thrifty": {"start": "now"}}  # fmt: skip
    _body_sweep(sweep, "/v1/batches", batch, "openai", 50, [])
    _upload_sweep(sweep, 40)
    _grids(sweep)
    _path_sweep(sweep, 120)
    _form_sweep(sweep, 30)
    _console_sweep(sweep)
    answers = _raw_http(running, secret, RAW_REQUESTS)
    swept = time.monotonic() - started

    for payload, answer in zip(RAW_REQUESTS, answers, strict=True):
        status_line = answer.split(b"\r\n", 1)[0]
        assert not status_line.startswith(b"HTTP/1.1 5"), (payload[:120], answer[:300])
        assert secret.encode() not in answer and b"Traceback" not in answer
        if status_line.startswith(b"HTTP/1.1 4"):  # uvicorn's own answers too: OpenAI's shape
            error = json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]
            assert set(error) == {"message", "type", "param", "code"}, answer

    problems = "\n".join(f"{k}\n    {v}" for k, v in sorted(sweep.problems.items()))
    assert not sweep.problems, f"{len(sweep.problems)} kinds of bad answer:\n{problems}"
    assert sweep.statuses.get(200, 0) > 20, sweep.statuses  # valid requests were answered too
    assert 400 in sweep.statuses and 401 in sweep.statuses, sweep.statuses

    # still healthy, and nothing accepted before the sweep is lost
    assert sweep.http.get("/healthz").status_code == 200
    assert sweep.http.get("/readyz").status_code == 200
    again = sweep.http.post(
        CHAT, json={"model": "fake-chat", "messages": [{"role": "user", "content": "after"}]},
        headers=sweep.auth("good"),
    )  # fmt: skip
    assert again.status_code == 200, again.text
    for request_id in [*kept, again.headers["x-thrifty-request-id"]]:
        assert running.row(request_id)["status"] == 200
    log = running.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[log.index("Traceback") - 2000 :][:6000]
    for secret_ in (UPSTREAM_SECRET, secret, WRONG_KEY):
        assert secret_ not in log
        assert secret_ not in dump(running.database_url)
    print(
        f"sweep: {sweep.sent} requests in {swept:.1f} s, statuses {sorted(sweep.statuses.items())}"
    )

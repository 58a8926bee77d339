"""Reading request bodies: size-capped JSON objects, and pydantic errors in OpenAI's words.

Both limits hold before anything recurses into the body: the size while it is read (a chunked
body with no Content-Length included), the nesting depth before it is parsed. Everything after
parsing (validation, the privacy scan, caching, forwarding with orjson, whose own limit is 254
levels) may then walk it safely.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request

from thrifty.errors import InvalidRequest, PayloadTooLarge

MAX_DEPTH = 64  # deeper than any real request (a tool's JSON schema nests a dozen levels)


async def read_json_object(
    request: Request, limit: int, max_depth: int = MAX_DEPTH
) -> dict[str, Any]:
    """The body as a JSON object of at most `limit` bytes and `max_depth` levels of nesting.

    The size is checked against Content-Length before reading, and again while reading.
    """
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"request body is over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        data = orjson.loads(raw)  # no Python recursion; it refuses nesting past 1024 itself
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc) or "recursion" in str(exc):
            raise InvalidRequest(f"the request body nests deeper than {max_depth} levels") from None
        # orjson says what and where (`no low surrogate in string: line 1 column 9`), never
        # the text itself
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object")
    # too few brackets to nest that deep is the common case: the walk is skipped
    if raw.count(b"[") + raw.count(b"{") > max_depth and too_deep(data, max_depth):
        raise InvalidRequest(f"the request body nests deeper than {max_depth} levels")
    return data


def too_deep(value: Any, max_depth: int) -> bool:
    """Whether arrays and objects in `value` nest deeper than `max_depth` (an explicit stack)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > max_depth:
                    return True
                stack.append((child, depth + 1))
    return False


def validation_error(
    exc: ValidationError, rename: Callable[[str], str] | None = None
) -> InvalidRequest:
    """The most specific error as a 400 naming its field (`rename`: the client's name for it).

    A value that fits no member of a union (`stop`: a string or a list) gets an error per
    member: the deepest one says most (the list's third item is not a string), and
    alternatives at the same depth are joined ("a valid string or a valid list").
    """
    errors = [(_field(e["loc"]), e["msg"].removeprefix("Value error, ")) for e in exc.errors()]
    loc = max((loc for loc, _ in errors), key=len)
    said = list(dict.fromkeys(msg for at, msg in errors if at == loc))
    message = said[0]
    if len(said) > 1 and all(m.startswith("Input should be ") for m in said):
        message = "Input should be " + " or ".join(m.removeprefix("Input should be ") for m in said)
    param = ".".join(str(p) for p in loc) or None
    if param and rename is not None:
        param = rename(param)
    return InvalidRequest(f"{param}: {message}" if param else message, param=param)


_TYPE_NAMES = frozenset({"str", "int", "float", "bool", "dict", "list", "none", "bytes"})


def _field(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """A pydantic error location as the client's path: no union members (`str`, `list[str]`),
    no discriminator tag repeating its field (tools.0.function.function.name)."""
    kept: list[int | str] = []
    for part in loc:
        if isinstance(part, str) and (part in _TYPE_NAMES or "[" in part):
            continue
        if not kept or part != kept[-1]:
            kept.append(part)
    return tuple(kept)

"""Reading request bodies: size-capped JSON objects, and pydantic errors in OpenAI's words."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request

from thrifty.errors import InvalidRequest, PayloadTooLarge


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object, at most `limit` bytes (checked before reading when declared)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"request body is over {limit} bytes")
    raw = await request.body()
    if len(raw) > limit:
        raise PayloadTooLarge(f"request body is over {limit} bytes")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return data


def validation_error(exc: ValidationError) -> InvalidRequest:
    first = exc.errors(include_url=False)[0]
    param = ".".join(str(p) for p in first["loc"]) or None
    message = first["msg"].removeprefix("Value error, ")
    return InvalidRequest(f"{param}: {message}" if param else message, param=param)

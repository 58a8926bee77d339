"""A tiny synchronous client for `thrifty chat`: stream one chat completion, print as it comes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from thrifty.sse import DONE, SSEDecoder


def stream_chat(
    base_url: str, body: dict[str, Any], api_key: str | None, emit: Callable[[str], None]
) -> dict[str, Any]:
    """POST a streaming chat request; call `emit` with each text delta; return route info."""
    payload = json.dumps({**body, "stream": True, "stream_options": {"include_usage": True}})
    request = urllib.request.Request(
        base_url.rstrip("/") + "/chat/completions",
        data=payload.encode(),
        headers={"content-type": "application/json", "accept": "text/event-stream"},
    )
    if api_key:
        request.add_header("authorization", f"Bearer {api_key}")
    info: dict[str, Any] = {}
    try:
        response = urllib.request.urlopen(request, timeout=300)
    except urllib.error.HTTPError as exc:
        raise RuntimeError(_error_message(exc.read(), exc.code)) from None
    except urllib.error.URLError as exc:
        raise ConnectionError(f"cannot reach {base_url}: {exc.reason}") from None
    with response:
        info["route"] = response.headers.get("x-thrifty-route")
        info["reason"] = response.headers.get("x-thrifty-reason")
        decoder = SSEDecoder()
        while raw := response.read1(65536):
            for data in decoder.feed(raw):
                if data == DONE:
                    return info
                chunk = json.loads(data)
                if "error" in chunk:
                    raise RuntimeError(_error_message(data, 200))
                for choice in chunk.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        emit(text)
                if "x_thrifty" in chunk:
                    info.update(chunk["x_thrifty"])
    return info


def _error_message(raw: bytes, status: int) -> str:
    try:
        error = json.loads(raw)["error"]
        return f"HTTP {status}: {error.get('message')} ({error.get('code') or error.get('type')})"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {status}: {raw[:200].decode('utf-8', 'replace')}"

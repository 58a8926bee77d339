"""The features a request needs (tools, images, a JSON schema, embeddings) against its targets.

Runs after routing and key scope: targets that cannot honour a feature the request uses are
dropped from the route (the reason says so), and when none is left the client gets a 400 that
names the feature. A feature is never dropped silently from the request instead.
"""

from __future__ import annotations

from typing import Any

from thrifty.backends import Reply
from thrifty.context import RequestContext
from thrifty.errors import InvalidRequest
from thrifty.gateway.stage import Stage

_WHAT = {
    "tools": "tool calls",
    "vision": "image input",
    "json_schema": "structured output (response_format)",
    "embeddings": "embeddings",
    "audio": "audio input",
    "files": "file input",
}
# Content parts that need a capability of their own (a model that cannot take one answers 500).
_PARTS = {
    "image_url": "vision",
    "image": "vision",
    "input_image": "vision",
    "input_audio": "audio",
    "audio": "audio",
    "file": "files",
    "input_file": "files",
}


def _part_needs(content: Any) -> set[str]:
    if not isinstance(content, list):
        return set()
    return {_PARTS[p["type"]] for p in content if isinstance(p, dict) and p.get("type") in _PARTS}


def needed(endpoint: str, body: dict[str, Any]) -> frozenset[str]:
    """The capabilities a request needs from the model that answers it."""
    if endpoint == "embeddings":
        return frozenset({"embeddings"})
    found = set()
    if body.get("tools") and body.get("tool_choice") != "none":
        found.add("tools")
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_schema", "json_object"):
        found.add("json_schema")
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            found |= _part_needs(message.get("content"))
    return frozenset(found)


class Capabilities(Stage):
    """Keep the targets that can do what the request asks; 400 when none can."""

    async def on_request(self, ctx: RequestContext) -> Reply | None:
        if not ctx.targets:
            return None
        wants = needed(ctx.endpoint, ctx.body)
        if not wants:
            return None
        kept = [t for t in ctx.targets if wants <= t.capabilities]
        if kept == ctx.targets:
            return None
        if not kept:
            first = ctx.targets[0]
            lacking = sorted(wants - first.capabilities)
            what = ", ".join(f"{f} ({_WHAT[f]})" for f in lacking)
            raise InvalidRequest(
                f"the model `{first.route}` cannot do {what}; ask a model that can",
                param="model",
                code="unsupported_feature",
            )
        skipped = [t.route for t in ctx.targets if t not in kept]
        lacking = sorted(wants - ctx.targets[0].capabilities)
        ctx.targets = kept
        ctx.notes.append(f"skip {', '.join(skipped)}: no {', '.join(lacking) or 'capability'}")
        return None

"""Guard: limits a request must meet before anything is spent on it."""

from __future__ import annotations

from thrifty.backends import Reply
from thrifty.config import LimitsSettings
from thrifty.context import RequestContext
from thrifty.errors import InvalidRequest
from thrifty.gateway.stage import Stage


class Guard(Stage):
    def __init__(self, limits: LimitsSettings) -> None:
        self.limits = limits

    async def on_request(self, ctx: RequestContext) -> Reply | None:
        body = ctx.body
        messages = body.get("messages")
        if messages is not None and len(messages) > self.limits.max_messages:
            raise InvalidRequest(
                f"too many messages: {len(messages)} > {self.limits.max_messages}",
                param="messages",
            )
        for field in ("max_tokens", "max_completion_tokens"):
            value = body.get(field)
            if value is not None and value > self.limits.max_tokens:
                raise InvalidRequest(
                    f"{field} is {value}; this gateway allows at most {self.limits.max_tokens}",
                    param=field,
                )
        return None

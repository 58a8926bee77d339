"""Answers from the gateway: the candidate, the current model, the judge, by model name.

The loop asks the gateway it serves beside (`autopilot.url`), so a candidate is answered exactly
as live traffic would be: a registered adapter on its base's engine (loaded on demand) or a
merged model. A model just added to the registry reaches the gateway within a second and its
engine may still be loading: 404s and 503s are retried for a while.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from thrifty.evals.endpoint import Endpoint, EndpointError

Message = dict[str, Any]
_PATIENCE_S = 180.0  # an engine restart with a new adapter, on a busy machine


class AskError(RuntimeError):
    """The gateway could not answer; the message says what it said."""


@dataclass(slots=True)
class Asker:
    url: str
    api_key: str | None
    max_tokens: int
    on_cloud_cost: Callable[[int], None]  # nanos a cloud answer cost (budgets count them)
    concurrency: int = 2
    patience_s: float = _PATIENCE_S

    def answers(self, model: str, prompts: Sequence[list[Message]]) -> list[str]:
        """`model`'s answers to every prompt, in order (greedy: temperature 0)."""
        return asyncio.run(self._all(model, prompts))

    async def _all(self, model: str, prompts: Sequence[list[Message]]) -> list[str]:
        import aiohttp

        endpoint = Endpoint(self.url, self.api_key, use_cache=False, timeout_s=300)
        gate = asyncio.Semaphore(self.concurrency)
        deadline = time.monotonic() + self.patience_s  # for the retries of the whole batch
        async with aiohttp.ClientSession() as session:

            async def one(messages: list[Message]) -> str:
                async with gate:
                    return await self._one(endpoint, session, model, messages, deadline)

            return list(await asyncio.gather(*(one(p) for p in prompts)))

    async def _one(
        self,
        endpoint: Endpoint,
        session: Any,
        model: str,
        messages: list[Message],
        deadline: float,
    ) -> str:
        while True:
            try:
                reply = await endpoint.chat(session, model, messages, self.max_tokens, 0.0)
            except EndpointError as exc:
                retry = not exc.permanent or "404" in str(exc)[:8]
                if not retry or time.monotonic() > deadline:
                    raise AskError(f"{model}: {exc}") from None
                await asyncio.sleep(1.0)
                continue
            if reply.route not in (None, "local", "cache") and reply.cost_nanos:
                self.on_cloud_cost(reply.cost_nanos)
            return reply.text

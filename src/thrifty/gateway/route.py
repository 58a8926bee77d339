"""Route by model name: the requested model (or alias) decides the target."""

from __future__ import annotations

from thrifty.backends import Registry, Reply
from thrifty.context import RequestContext
from thrifty.errors import ModelNotFound
from thrifty.gateway.stage import Stage


class ModelRoute(Stage):
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def on_request(self, ctx: RequestContext) -> Reply | None:
        if ctx.targets:  # an earlier stage (the router) decided already
            return None
        target = self.registry.resolve(ctx.model)
        if target is None:
            raise ModelNotFound(
                f"The model `{ctx.model}` does not exist or you do not have access to it. "
                f"Available: {', '.join(self.registry.names())}",
                param="model",
            )
        ctx.targets = [target]
        ctx.reason = f"model:{ctx.model}"
        return None

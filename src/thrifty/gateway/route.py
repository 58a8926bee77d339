"""Route by model name: the requested model (or alias) decides the target."""

from __future__ import annotations

from thrifty.backends import Registry, Reply
from thrifty.context import RequestContext
from thrifty.errors import ModelNotFound
from thrifty.gateway.stage import Stage


class ModelRoute(Stage):
    def __init__(self, registry: Registry, router_models: frozenset[str] = frozenset()) -> None:
        self.registry = registry
        self.router_models = router_models

    async def on_request(self, ctx: RequestContext) -> Reply | None:
        if ctx.targets:  # an earlier stage (the router) decided already
            return None
        target = self.registry.resolve(ctx.model, ctx.endpoint)
        if target is None:
            if ctx.endpoint == "embeddings":
                names = [*self.registry.embedders]
                names += [
                    n for n in self.registry.names() if self.registry.resolve(n, "embeddings")
                ]
            else:
                names = [*sorted(self.router_models), *self.registry.names()]
            raise ModelNotFound(
                f"The model `{ctx.model}` does not exist or you do not have access to it. "
                f"Available: {', '.join(dict.fromkeys(names))}",
                param="model",
            )
        ctx.targets = [target]
        ctx.reason = f"model:{ctx.model}"
        return None

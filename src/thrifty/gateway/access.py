"""Access stages: what an API key allows, applied to a request.

`Admit` runs first (viewers may not call models; a key limited to some models may not ask for
another by name) and `ScopeTargets` runs after routing, narrowing the router's choice and its
fallbacks to the places the key may use (a key limited to `local` asking for `auto` is answered
locally or refused).
"""

from __future__ import annotations

from thrifty.backends import Registry, Reply
from thrifty.context import RequestContext, may
from thrifty.errors import PermissionDenied
from thrifty.gateway.stage import Stage


class Admit(Stage):
    """First stage: a viewer may not call models; a limited key may not name a model it lacks."""

    def __init__(self, registry: Registry, router_models: frozenset[str]) -> None:
        self.registry = registry
        self.router_models = router_models

    async def on_request(self, ctx: RequestContext) -> Reply | None:
        key = ctx.key
        if key is None:
            return None
        if not may(key, "call"):
            raise PermissionDenied(f"a {key.role} key may read usage but not call models")
        allowed = key.models
        if allowed is None or ctx.model in allowed or ctx.model in self.router_models:
            return None
        target = self.registry.resolve(ctx.model)
        if target is not None and target.route not in allowed:  # unknown names get their 404
            raise PermissionDenied(
                f"this API key may not use the model `{ctx.model}`; "
                f"it may use: {', '.join(sorted(allowed))}",
                param="model",
            )
        return None


class ScopeTargets(Stage):
    """After routing: keep only the targets (first choice and fallbacks) the key may use."""

    def __init__(self, router_models: frozenset[str]) -> None:
        self.router_models = router_models

    async def on_request(self, ctx: RequestContext) -> Reply | None:
        key = ctx.key
        if key is None or key.models is None or not ctx.targets:
            return None
        if ctx.model in key.models and ctx.model not in self.router_models:
            return None  # asked for by a name the key lists
        kept = [t for t in ctx.targets if t.route in key.models]
        if not kept:
            raise PermissionDenied(
                f"this API key may not use `{ctx.targets[0].route}`, where this request "
                f"would go; it may use: {', '.join(sorted(key.models))}",
                param="model",
            )
        if len(kept) != len(ctx.targets):
            ctx.targets = kept
        return None

"""Admin endpoints: API keys and the response cache over HTTP. Every one needs a key with the
admin role (else 401/403); `/admin/cache/clear` also answers a keyless gateway on loopback.

    GET    /admin/keys         every key (never a secret, never its hash)
    POST   /admin/keys         make one; the answer carries the secret: the only time it is shown
    DELETE /admin/keys/{id}    revoke one
    POST   /admin/cache/clear  drop cached answers ({"tenant": NAME} for one tenant's), in every
                               worker of this server (in-process) or in the shared Redis cache

Changes apply to this gateway at once (`Authenticator.reload`); other gateways sharing the store
see them within `auth.refresh_s`. Each change is audited in the transaction that makes it, and
refused attempts are audited as `admin.denied`.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from thrifty.api.body import validation_error
from thrifty.api.responses import json_response
from thrifty.context import KeyPolicy, may
from thrifty.errors import InvalidRequest, NotFound, PermissionDenied, ThriftyError
from thrifty.store.audit import AuditEvent
from thrifty.store.keys import KeySpec, Role, parse_expires, parse_list

if TYPE_CHECKING:
    from thrifty.api.app import Runtime


_MAX_COUNT = 2**63 - 1  # the store's integers are 64-bit
_MAX_USD = Decimal(10**9)  # as nano-USD, well inside 64 bits


class KeyRequest(BaseModel):
    """The body of POST /admin/keys (the same options as `thrifty keys create`)."""

    model_config = ConfigDict(extra="forbid")

    tenant: str = Field(min_length=1)
    role: Role = "user"
    models: list[str] | None = Field(None, description="Model names the key may use; all if unset.")
    rpm: int | None = Field(None, ge=0, le=_MAX_COUNT)
    tpm: int | None = Field(None, ge=0, le=_MAX_COUNT)
    daily_tokens: int | None = Field(None, ge=0, le=_MAX_COUNT)
    daily_usd: Decimal | None = Field(None, ge=0, le=_MAX_USD, allow_inf_nan=False)
    expires: str | None = Field(None, description="30d, 12h, … from now, or an ISO date.")
    tags: list[str] = Field(default_factory=list)

    @field_validator("expires")
    @classmethod
    def _expires(cls, value: str | None) -> str | None:
        if value is not None:
            parse_expires(value)  # a bad one is a 400 naming `expires`
        return value

    def spec(self) -> KeySpec:
        return KeySpec(
            tenant=self.tenant,
            role=self.role,
            models=parse_list(self.models),
            rpm=self.rpm,
            tpm=self.tpm,
            daily_tokens=self.daily_tokens,
            daily_usd_nanos=KeySpec.daily_usd(self.daily_usd),
            expires_at=None if self.expires is None else parse_expires(self.expires),
            tags=parse_list(self.tags) or (),
        )


class KeyAdmin:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    def routes(self) -> list[Route]:
        return [
            Route("/admin/keys", self.list_keys, methods=["GET"]),
            Route("/admin/keys", self.create, methods=["POST"]),
            Route("/admin/keys/{key_id}", self.revoke, methods=["DELETE"]),
            *CacheAdmin(self.rt).routes(),
        ]

    def _admin(self, request: Request) -> KeyPolicy:
        key: KeyPolicy | None = None
        try:
            key = self.rt.auth.identify(request.headers)
            if not may(key, "manage_keys"):
                raise PermissionDenied(f"managing keys needs an admin key, not a {key.role} key")
            return key
        except ThriftyError as exc:
            self.rt.audit.add(
                AuditEvent(
                    ts=time.time(),
                    action="admin.denied",
                    actor=None if key is None else key.key_id,
                    tenant=None if key is None else key.tenant,
                    endpoint=f"{request.method} {request.url.path}",
                    status=exc.status,
                )
            )
            raise

    async def list_keys(self, request: Request) -> Response:
        self._admin(request)
        records = await run_in_threadpool(self.rt.keys.records)
        return json_response({"object": "list", "data": [r.public() for r in records]})

    async def create(self, request: Request) -> Response:
        caller = self._admin(request)
        try:
            spec = KeyRequest.model_validate_json(await request.body()).spec()
        except ValidationError as exc:
            raise validation_error(exc) from None
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        known = set(self.rt.registry.names()) | self.rt.router.models
        unknown = sorted(set(spec.models or ()) - known)
        if unknown:
            raise InvalidRequest(f"unknown models: {', '.join(unknown)}", param="models")
        record, secret = await run_in_threadpool(self.rt.keys.create, spec, caller.key_id)
        await run_in_threadpool(self.rt.auth.reload)
        return json_response(
            {**record.public(), "secret": secret}, 201, headers={"cache-control": "no-store"}
        )

    async def revoke(self, request: Request) -> Response:
        caller = self._admin(request)
        key_id = request.path_params["key_id"]
        record = await run_in_threadpool(self.rt.keys.revoke, key_id, caller.key_id)
        if record is None:
            raise NotFound(f"no API key {key_id!r}")
        await run_in_threadpool(self.rt.auth.reload)
        return json_response(record.public())


class ClearRequest(BaseModel):
    """The body of POST /admin/cache/clear (may be empty)."""

    model_config = ConfigDict(extra="forbid")

    tenant: str | None = Field(None, min_length=1, description="Only this tenant's answers.")


class CacheAdmin:
    """POST /admin/cache/clear: the cache reaches every worker itself (an in-process cache
    watches the clears written in `$THRIFTY_HOME`, see `thrifty.gateway.cache.clears`)."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    def routes(self) -> list[Route]:
        return [Route("/admin/cache/clear", self.clear, methods=["POST"])]

    def _caller(self, request: Request) -> KeyPolicy | None:
        from thrifty.api.auth import is_loopback

        auth = self.rt.auth
        if not auth.has_keys and is_loopback(self.rt.settings.host):
            return None  # a keyless gateway answers only on loopback: the caller is local
        try:
            return auth.require(request.headers, "manage_keys")
        except ThriftyError as exc:
            self.rt.audit.add(
                AuditEvent(
                    ts=time.time(),
                    action="admin.denied",
                    endpoint=f"{request.method} {request.url.path}",
                    status=exc.status,
                )
            )
            raise

    async def clear(self, request: Request) -> Response:
        caller = self._caller(request)
        raw = await request.body()
        try:
            body = ClearRequest.model_validate_json(raw or b"{}")
        except ValidationError as exc:
            raise validation_error(exc) from None
        cache = self.rt.cache
        dropped = await run_in_threadpool(cache.clear, body.tenant)
        self.rt.audit.add(
            AuditEvent(
                ts=time.time(),
                action="cache.clear",
                actor=None if caller is None else caller.key_id,
                tenant=body.tenant,
                endpoint=f"{request.method} {request.url.path}",
                status=200,
            )
        )
        shared = cache.shared is not None
        return json_response(
            {
                "object": "cache.clear",
                "backend": "redis" if shared else "in-process",
                "tenant": body.tenant,
                "dropped": dropped,
                "scope": "every replica sharing this Redis cache"
                if shared
                else "every worker of this server (each before its next lookup)",
            }
        )

"""Who is calling (API key → KeyPolicy), and what they may do.

The hot path, `Authenticator.authenticate`, hashes the presented secret and looks the hash up in
an in-memory dict (hash → KeyPolicy), then checks expiry: no I/O, a few µs. The dict is rebuilt
from the key store at start, at once after a change made in this process (the admin endpoints
call `reload`), and when a watcher thread sees the store's `keys_version` row move (a change made
by the CLI from another process): it reads that one row every `auth.refresh_s` seconds. Swapping
the dict's reference is atomic, so the event loop never takes a lock. Looking a hash up in a dict
is not a timing oracle worth guarding: the caller does not choose the hash they present.

`auth.mode` says when a call needs a key, and start-up says which in one log line:
- `auto` (the default): with no keys in the store at all, thrifty serves without authentication,
  but only bound to a loopback address (anywhere else it refuses to start). Once a key exists,
  revoked or not, every call needs one: a gateway that has handed out keys never silently
  reopens because the last one was revoked.
- `required`: every call needs a key, from the start (with none yet, every call gets a 401 that
  says how to make one), on any address.
- `off`: no call needs a key, whatever the store holds; refused on a non-loopback address. The
  admin endpoints still need an admin key.

Authorization: each role allows some actions (`thrifty.context.ROLE_ACTIONS`); the gateway's
access stages (`thrifty.gateway.access`) apply a key to a request.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from thrifty.config import AuthSettings, Settings
from thrifty.context import KeyPolicy, may
from thrifty.errors import AuthenticationError, PermissionDenied
from thrifty.store.keys import KeySnapshot, KeyStore, hash_secret

logger = logging.getLogger(__name__)

_MISSING = (
    "You didn't provide an API key. Send it in an Authorization header using Bearer auth "
    "(Authorization: Bearer sk-...) or in an api-key header."
)
_CHALLENGE = {"www-authenticate": 'Bearer realm="thrifty"'}

Handler = Callable[[Request], Awaitable[Response]]


class ExposureError(RuntimeError):
    """Serving without keys on an address others can reach."""


def caller_fields(key: KeyPolicy | None) -> dict[str, Any]:
    """RequestContext keyword arguments for the caller (none when serving without keys)."""
    if key is None:
        return {}
    return {"key": key, "key_id": key.key_id, "tenant": key.tenant}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def exposure_problem(host: str, keys: int, mode: str = "auto") -> str | None:
    """Why serving on `host` with `keys` keys under `auth.mode` would be unsafe, or None."""
    if mode == "required" or is_loopback(host):
        return None
    if mode == "off":
        return (
            f"refusing to serve on {host} with auth.mode off: anyone who can reach it could use "
            "your models. Bind to 127.0.0.1, or set auth.mode to auto or required and create a "
            "key (thrifty keys create --tenant NAME --role admin)."
        )
    if keys:
        return None
    return (
        f"refusing to serve on {host} without API keys: anyone who can reach it could use "
        "your models. Create a key first (thrifty keys create --tenant NAME --role admin) "
        "or bind to 127.0.0.1."
    )


def check_exposure(settings: Settings) -> None:
    """The start-up refusal, for the CLI to give before loading anything."""
    settings.home.mkdir(parents=True, exist_ok=True)
    with KeyStore(settings.database_url) as store:
        problem = exposure_problem(settings.host, store.count(), settings.auth.mode)
    if problem:
        raise ExposureError(problem)


def presented_secret(headers: Mapping[str, str]) -> str | None:
    """The secret from `Authorization: Bearer …`, else `api-key` (Azure) or `x-api-key`."""
    value = headers.get("authorization")
    if value is not None:
        scheme, _, token = value.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else ""
    return headers.get("api-key") or headers.get("x-api-key") or None


class Authenticator:
    """Secret → KeyPolicy from an in-memory snapshot of the key store, kept fresh."""

    def __init__(
        self,
        store: KeyStore,
        settings: AuthSettings,
        host: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.refresh_s = settings.refresh_s
        self.mode = settings.mode
        self.host = host
        self.clock = clock
        self._keys = KeySnapshot(-1, {}, frozenset(), 0)
        self._reloading = threading.Lock()  # writers only; lookups read `_keys` without it
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def required(self) -> bool:
        """Whether calls need a key: always (required), never (off), once one exists (auto)."""
        if self.mode == "auto":
            return self._keys.count > 0
        return self.mode == "required"

    @property
    def has_keys(self) -> bool:
        """Whether the store holds any key at all (revoked ones included)."""
        return self._keys.count > 0

    def describe(self) -> str:
        """What `auth.mode` means for this gateway now, in one line (logged at start)."""
        active = len(self._keys.active)
        if self.mode == "off":
            return (
                f"auth.mode off: accepting unauthenticated calls on loopback {self.host} only; "
                "admin endpoints still need an admin key"
            )
        if self.mode == "required":
            return f"auth.mode required: every call needs an API key ({active} active)"
        if self.required:
            return f"auth.mode auto: every call needs an API key ({active} active)"
        return (
            f"auth.mode auto: no API keys: accepting unauthenticated calls on loopback "
            f"{self.host} only, until `thrifty keys create` makes the first; from then on "
            "every call needs a key"
        )

    def open(self) -> None:
        """Load the keys; refuse an exposed keyless start; watch for changes from elsewhere."""
        self.reload()
        problem = exposure_problem(self.host, self._keys.count, self.mode)
        if problem:
            raise ExposureError(problem)
        logger.log(logging.INFO if self.required else logging.WARNING, "%s", self.describe())
        self._stop.clear()
        self._watcher = threading.Thread(target=self._watch, name="key-watcher", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None

    def reload(self) -> None:
        # The watcher and an admin request may reload at once: one at a time, so an older
        # snapshot never lands after a newer one.
        with self._reloading:
            before = self._keys
            self._keys = self.store.snapshot()
        if self.mode == "auto" and before.version >= 0 and before.count == 0 and self.required:
            logger.warning(
                "auth.mode auto: the first API key exists: every call needs one from here on"
            )

    def _watch(self) -> None:
        while not self._stop.wait(self.refresh_s):
            try:
                if self.store.version() != self._keys.version:
                    self.reload()
                    logger.info("API keys reloaded (version %d)", self._keys.version)
            except Exception:  # a locked or missing database must not kill the watcher
                logger.exception("checking API keys for changes failed")

    def authenticate(self, headers: Mapping[str, str]) -> KeyPolicy | None:
        """The caller's key; None when serving without keys. Raises AuthenticationError (401)."""
        if not self.required:
            return None
        if self._keys.count == 0:  # auth.mode required before any key exists
            raise AuthenticationError(
                "This gateway needs an API key on every call (auth.mode: required) and none "
                "exist yet: create one with `thrifty keys create --tenant NAME`.",
                headers=_CHALLENGE,
            )
        return self._lookup(headers)

    def _lookup(self, headers: Mapping[str, str]) -> KeyPolicy:
        keys = self._keys
        secret = presented_secret(headers)
        if not secret:
            message = "Incorrect API key provided." if secret == "" else _MISSING
            raise AuthenticationError(message, headers=_CHALLENGE)
        digest = hash_secret(secret)
        key = keys.active.get(digest)
        if key is None:
            if digest in keys.revoked:
                raise AuthenticationError("This API key has been revoked.", headers=_CHALLENGE)
            raise AuthenticationError("Incorrect API key provided.", headers=_CHALLENGE)
        if key.expires_at is not None and key.expires_at <= self.clock():
            raise AuthenticationError("This API key has expired.", headers=_CHALLENGE)
        return key

    def by_id(self, key_id: str) -> KeyPolicy | None:
        """An active, unexpired key by its public id (a console session names its key so)."""
        for key in self._keys.active.values():
            if key.key_id == key_id:
                if key.expires_at is not None and key.expires_at <= self.clock():
                    return None
                return key
        return None

    def identify(self, headers: Mapping[str, str]) -> KeyPolicy:
        """The caller's key, even while serving without keys (then: 401 saying how to make one)."""
        if self._keys.count:
            return self._lookup(headers)
        raise AuthenticationError(
            "This endpoint needs an API key and none exist yet: create one with "
            "`thrifty keys create --tenant NAME --role admin`.",
            headers=_CHALLENGE,
        )

    def require(self, headers: Mapping[str, str], action: str) -> KeyPolicy:
        """A key whose role allows `action`: 401 without a good key, 403 for the wrong role."""
        key = self.identify(headers)
        if not may(key, action):
            raise PermissionDenied(f"a {key.role} key may not do this ({action} is needed)")
        return key

    def guard(self, handler: Handler) -> Handler:
        """`handler` behind authentication; the caller's key (or None) is in `request.state.key`."""

        async def guarded(request: Request) -> Response:
            request.state.key = self.authenticate(request.headers)
            return await handler(request)

        return guarded

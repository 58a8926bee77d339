"""API keys: secrets, the `api_keys` table, and the policy each key carries.

A secret is ``sk-`` and 48 base62 characters drawn from `secrets` (about 285 bits). Only its
sha256 is stored. A fast unsalted hash is right for secrets this random: salts and slow hashes
(bcrypt, scrypt) protect low-entropy passwords against guessing, and nobody guesses 285 bits;
it also keeps the per-request check one hash and one dict lookup. The secret is shown once, when
the key is made; after that the key is named by its public id (``key_…``) in logs and audits.

Every change bumps the one-row `keys_version` table in the same transaction, and appends its
audit row there too: a gateway learns that keys changed from one cheap read
(`thrifty.api.auth`), and no change goes unaudited.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
import string
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import orjson

from thrifty.context import KeyPolicy
from thrifty.costs.money import format_nanos, to_nanos
from thrifty.store.audit import AuditEvent, append, detail
from thrifty.store.db import Connection, TransientError, connect
from thrifty.store.migrations import migrate

Role = Literal["admin", "user", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "user", "viewer")
SECRET_PREFIX = "sk-"
_ALPHABET = string.ascii_letters + string.digits
_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_COLUMNS = (
    "id, tenant, role, models, rpm, tpm, daily_tokens, daily_usd_nanos, tags, "
    "created_at, expires_at, revoked_at"
)


def new_secret() -> str:
    return SECRET_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(48))


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_expires(text: str, now: float | None = None) -> float:
    """``30d``, ``12h``, ``90m``, ``2w``, ``45s`` from now, or an ISO date/time (UTC if naive)."""
    now = time.time() if now is None else now
    match = _DURATION.match(text.strip().lower())
    if match:
        return now + int(match.group(1)) * _UNITS[match.group(2)]
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"bad expiry {text!r}: use a duration (30d, 12h, 90m) or a date (2026-01-31)"
        ) from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def parse_list(text: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """``"local, deepseek-chat"`` or a list of names → a tuple without blanks (None stays None)."""
    if text is None:
        return None
    items = text.split(",") if isinstance(text, str) else text
    return tuple(dict.fromkeys(s.strip() for s in items if s.strip()))


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What a new key may do; validated on construction."""

    tenant: str
    role: Role = "user"
    models: tuple[str, ...] | None = None  # None: every model
    rpm: int | None = None
    tpm: int | None = None
    daily_tokens: int | None = None
    daily_usd_nanos: int | None = None
    expires_at: float | None = None
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.tenant.strip():
            raise ValueError("tenant must not be empty")
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, not {self.role!r}")
        if self.models is not None and not self.models:
            raise ValueError("models: name at least one model, or leave it out for all")
        for name in ("rpm", "tpm", "daily_tokens", "daily_usd_nanos"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative")

    @staticmethod
    def daily_usd(amount: Decimal | str | int | float | None) -> int | None:
        """A daily budget in USD as nano-USD (through Decimal: ``5.1`` is exactly 5.1)."""
        return None if amount is None else to_nanos(Decimal(str(amount)))


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A stored key as anyone may see it: everything but the secret and its hash."""

    id: str
    spec: KeySpec
    created_at: float
    revoked_at: float | None = None
    secret_hash: str = field(default="", repr=False, compare=False)  # never shown

    def status(self, now: float | None = None) -> Literal["active", "expired", "revoked"]:
        if self.revoked_at is not None:
            return "revoked"
        expires = self.spec.expires_at
        if expires is not None and expires <= (time.time() if now is None else now):
            return "expired"
        return "active"

    def policy(self) -> KeyPolicy:
        s = self.spec
        return KeyPolicy(
            key_id=self.id,
            tenant=s.tenant,
            role=s.role,
            models=None if s.models is None else frozenset(s.models),
            rpm=s.rpm,
            tpm=s.tpm,
            daily_tokens=s.daily_tokens,
            daily_usd_nanos=s.daily_usd_nanos,
            expires_at=s.expires_at,
            tags=frozenset(s.tags),
        )

    def public(self) -> dict[str, Any]:
        s = self.spec
        return {
            "object": "api_key",
            "id": self.id,
            "tenant": s.tenant,
            "role": s.role,
            "models": None if s.models is None else list(s.models),
            "rpm": s.rpm,
            "tpm": s.tpm,
            "daily_tokens": s.daily_tokens,
            "daily_usd": None if s.daily_usd_nanos is None else format_nanos(s.daily_usd_nanos),
            "tags": list(s.tags),
            "created_at": self.created_at,
            "expires_at": s.expires_at,
            "revoked_at": self.revoked_at,
            "status": self.status(),
        }


@dataclass(frozen=True, slots=True)
class KeySnapshot:
    """Every key at one moment, shaped for lookups by secret hash."""

    version: int
    active: dict[str, KeyPolicy]  # secret hash -> policy (expiry is checked at lookup)
    revoked: frozenset[str]  # secret hashes of revoked keys
    count: int  # keys ever made, revoked ones included


class KeyStore:
    """The `api_keys` table. One connection, used under a lock (the CLI, admin threads, reloads).

    A connection the database dropped (a PostgreSQL restart) is closed when the call that found
    it out raises TransientError; the next call opens a new one, so a gateway's key watcher
    recovers by itself once the database is back.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Connection | None = None
        self._opened = False
        self._lock = threading.Lock()

    def open(self) -> KeyStore:
        conn = connect(self.url)
        migrate(conn)
        self._conn = conn
        self._opened = True
        return self

    def close(self) -> None:
        self._opened = False
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> KeyStore:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _using(self) -> Iterator[Connection]:
        """The connection, under the lock; reopened after one was lost."""
        with self._lock:
            if not self._opened:
                raise RuntimeError("key store is not open")
            if self._conn is None:
                self._conn = connect(self.url)
            try:
                yield self._conn
            except TransientError:
                self._conn.close()
                self._conn = None
                raise

    def create(self, spec: KeySpec, actor: str) -> tuple[KeyRecord, str]:
        """Make a key; returns it and its secret (the only time the secret exists in clear)."""
        secret = new_secret()
        record = KeyRecord(new_key_id(), spec, time.time(), secret_hash=hash_secret(secret))
        s = spec
        with self._using() as conn, conn.transaction("exclusive"):
            conn.execute(
                "INSERT INTO api_keys (id, secret_hash, tenant, role, models, rpm, tpm, "
                "daily_tokens, daily_usd_nanos, tags, created_at, expires_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.secret_hash,
                    s.tenant,
                    s.role,
                    None if s.models is None else orjson.dumps(s.models).decode(),
                    s.rpm,
                    s.tpm,
                    s.daily_tokens,
                    s.daily_usd_nanos,
                    orjson.dumps(s.tags).decode(),
                    record.created_at,
                    s.expires_at,
                    record.created_at,
                ),
            )
            self._changed(conn, "key.create", actor, record)
        return record, secret

    def revoke(self, key_id: str, actor: str) -> KeyRecord | None:
        """Revoke a key (None: no such key). Revoking a revoked key changes nothing."""
        with self._using() as conn, conn.transaction("exclusive"):
            record = self._get(conn, key_id)
            if record is None or record.revoked_at is not None:
                return record
            now = time.time()
            conn.execute(
                "UPDATE api_keys SET revoked_at = ?, updated_at = ? WHERE id = ?",
                (now, now, key_id),
            )
            record = replace(record, revoked_at=now)
            self._changed(conn, "key.revoke", actor, record)
        return record

    def get(self, key_id: str) -> KeyRecord | None:
        with self._using() as conn:
            return self._get(conn, key_id)

    def records(self) -> list[KeyRecord]:
        with self._using() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS}, secret_hash FROM api_keys ORDER BY created_at, id"
            ).fetchall()
        return [_record(row) for row in rows]

    def count(self) -> int:
        with self._using() as conn:
            return int(conn.execute("SELECT count(*) FROM api_keys").fetchone()[0])

    def version(self) -> int:
        """The change counter: one indexed read of a one-row table (the gateways poll it)."""
        with self._using() as conn:
            return int(conn.execute("SELECT version FROM keys_version").fetchone()[0])

    def snapshot(self) -> KeySnapshot:
        # one snapshot: the version matches the rows
        with self._using() as conn, conn.transaction("snapshot"):
            version = int(conn.execute("SELECT version FROM keys_version").fetchone()[0])
            rows = conn.execute(f"SELECT {_COLUMNS}, secret_hash FROM api_keys").fetchall()
        active: dict[str, KeyPolicy] = {}
        revoked: set[str] = set()
        for row in rows:
            record = _record(row)
            if record.revoked_at is not None:
                revoked.add(record.secret_hash)
            else:
                active[record.secret_hash] = record.policy()
        return KeySnapshot(version, active, frozenset(revoked), len(rows))

    def _get(self, conn: Connection, key_id: str) -> KeyRecord | None:
        row = conn.execute(
            f"SELECT {_COLUMNS}, secret_hash FROM api_keys WHERE id = ?", (key_id,)
        ).fetchone()
        return None if row is None else _record(row)

    def _changed(self, conn: Connection, action: str, actor: str, rec: KeyRecord) -> None:
        conn.execute("UPDATE keys_version SET version = version + 1")
        public = rec.public()
        what = {k: public[k] for k in ("tenant", "role", "models", "expires_at")}
        append(
            conn,
            [
                AuditEvent(
                    ts=time.time(),
                    action=action,
                    actor=actor,
                    tenant=rec.spec.tenant,
                    detail=detail(key_id=rec.id, **what),
                )
            ],
        )


def _record(row: Sequence[Any]) -> KeyRecord:
    (key_id, tenant, role, models, rpm, tpm, daily_tokens, daily_usd, tags, created, expires,
     revoked, secret_hash) = tuple(row)  # fmt: skip
    spec = KeySpec(
        tenant=tenant,
        role=role,
        models=None if models is None else tuple(orjson.loads(models)),
        rpm=rpm,
        tpm=tpm,
        daily_tokens=daily_tokens,
        daily_usd_nanos=daily_usd,
        expires_at=expires,
        tags=tuple(orjson.loads(tags)),
    )
    return KeyRecord(key_id, spec, created, revoked, secret_hash=secret_hash)

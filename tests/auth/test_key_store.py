"""Keys: secrets and hashes, the store, and the in-memory lookup every request goes through."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.datastructures import Headers

from support import database_url, dump, query
from thrifty.api.auth import Authenticator, ExposureError, exposure_problem, presented_secret
from thrifty.config import AuthSettings
from thrifty.errors import AuthenticationError
from thrifty.store.keys import (
    KeySpec,
    KeyStore,
    hash_secret,
    new_secret,
    parse_expires,
    parse_list,
)


@pytest.fixture()
def url(tmp_path: Path) -> str:
    return database_url(tmp_path)


@pytest.fixture()
def store(url: str) -> Iterator[KeyStore]:
    with KeyStore(url) as opened:
        yield opened


def bearer(secret: str) -> Headers:
    return Headers({"authorization": f"Bearer {secret}"})


def test_secrets_look_like_openai_keys_and_are_unique() -> None:
    made = {new_secret() for _ in range(1000)}
    assert len(made) == 1000
    for secret in made:
        assert secret.startswith("sk-") and len(secret) == 51 and secret[3:].isalnum()


def test_only_the_hash_is_stored(store: KeyStore, url: str) -> None:
    record, secret = store.create(KeySpec("acme", "user"), "test")
    assert record.id.startswith("key_")
    assert secret not in dump(url)
    if url.startswith("sqlite:///"):  # nor in the file's free pages or its WAL
        files = Path(url.removeprefix("sqlite:///")).parent.glob("thrifty.db*")
        assert secret.encode() not in b"".join(p.read_bytes() for p in files)
    assert query(url, "SELECT secret_hash FROM api_keys") == [{"secret_hash": hash_secret(secret)}]
    assert "secret" not in record.public() and "secret_hash" not in record.public()
    assert secret not in repr(record)


def test_spec_validation_and_parsing() -> None:
    with pytest.raises(ValueError, match="role"):
        KeySpec("acme", "root")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tenant"):
        KeySpec("  ")
    with pytest.raises(ValueError, match="models"):
        KeySpec("acme", models=())
    assert parse_list("local, deepseek-chat,,local") == ("local", "deepseek-chat")
    assert parse_list(None) is None
    assert KeySpec.daily_usd("5.10") == 5_100_000_000
    assert parse_expires("30d", now=1000.0) == 1000.0 + 30 * 86400
    assert parse_expires("90m", now=0.0) == 5400.0
    assert parse_expires("2030-01-01") == 1893456000.0
    with pytest.raises(ValueError, match="duration"):
        parse_expires("soon")


def test_create_list_revoke_bump_the_version_and_audit(store: KeyStore, url: str) -> None:
    assert store.version() == 0 and store.count() == 0
    record, _ = store.create(KeySpec("acme", "admin", models=("local",), rpm=60), "cli:me")
    assert store.version() == 1
    assert [r.id for r in store.records()] == [record.id]
    assert store.records()[0].spec == record.spec
    revoked = store.revoke(record.id, "cli:me")
    assert revoked is not None and revoked.status() == "revoked"
    assert store.version() == 2
    assert store.revoke(record.id, "cli:me") == revoked  # again: no change, no new version
    assert store.version() == 2
    assert store.revoke("key_nope", "cli:me") is None
    actions = [row["action"] for row in query(url, "SELECT action FROM audit_log ORDER BY seq")]
    assert actions == ["key.create", "key.revoke"]


def test_policy_carries_the_limits(store: KeyStore) -> None:
    spec = KeySpec(
        "acme",
        "user",
        models=("local", "deepseek-chat"),
        rpm=60,
        tpm=100_000,
        daily_tokens=1_000_000,
        daily_usd_nanos=KeySpec.daily_usd(5),
        expires_at=parse_expires("30d"),
        tags=("ci",),
    )
    record, secret = store.create(spec, "test")
    policy = store.snapshot().active[hash_secret(secret)]
    assert policy.key_id == record.id and policy.tenant == "acme" and policy.role == "user"
    assert policy.models == frozenset({"local", "deepseek-chat"})
    assert (policy.rpm, policy.tpm, policy.daily_tokens) == (60, 100_000, 1_000_000)
    assert policy.daily_usd_nanos == 5 * 10**9 and policy.tags == frozenset({"ci"})
    assert policy.expires_at == spec.expires_at


def test_presented_secret_from_bearer_or_api_key() -> None:
    assert presented_secret(Headers({"authorization": "Bearer sk-abc"})) == "sk-abc"
    assert presented_secret(Headers({"Authorization": "bearer  sk-abc "})) == "sk-abc"
    assert presented_secret(Headers({"api-key": "sk-abc"})) == "sk-abc"
    assert presented_secret(Headers({"x-api-key": "sk-abc"})) == "sk-abc"  # Anthropic's SDK
    assert presented_secret(Headers({"authorization": "Basic dXNlcg=="})) == ""
    assert presented_secret(Headers({"authorization": "Bearer "})) == ""
    assert presented_secret(Headers({})) is None


def test_authenticate_outcomes(store: KeyStore) -> None:
    now = [time.time()]
    good, good_secret = store.create(KeySpec("acme"), "test")
    _, short_secret = store.create(KeySpec("acme", expires_at=now[0] + 60), "test")
    gone, gone_secret = store.create(KeySpec("acme"), "test")
    store.revoke(gone.id, "test")
    auth = Authenticator(store, AuthSettings(), "127.0.0.1", clock=lambda: now[0])
    auth.reload()
    key = auth.authenticate(bearer(good_secret))
    assert key is not None and key.key_id == good.id
    assert auth.authenticate(Headers({"api-key": good_secret})) == key
    assert auth.authenticate(bearer(short_secret)) is not None

    def refused(headers: Headers) -> str:
        with pytest.raises(AuthenticationError) as info:
            auth.authenticate(headers)
        assert info.value.status == 401 and info.value.code == "invalid_api_key"
        return info.value.message

    assert "didn't provide an API key" in refused(Headers({}))
    assert refused(bearer(new_secret())) == "Incorrect API key provided."
    assert refused(Headers({"authorization": "Token " + good_secret})).startswith("Incorrect")
    assert refused(bearer(gone_secret)) == "This API key has been revoked."
    now[0] += 61
    assert refused(bearer(short_secret)) == "This API key has expired."


def test_no_keys_means_open_on_loopback_only(store: KeyStore) -> None:
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert exposure_problem(host, 0) is None
    for host in ("0.0.0.0", "::", "10.1.2.3", "gateway.example.com"):
        problem = exposure_problem(host, 0)
        assert problem is not None and host in problem and "thrifty keys create" in problem
        assert exposure_problem(host, 1) is None
    open_auth = Authenticator(store, AuthSettings(), "127.0.0.1")
    open_auth.open()
    try:
        assert not open_auth.required
        assert open_auth.authenticate(Headers({})) is None
        assert open_auth.authenticate(bearer("sk-anything")) is None  # ignored, not checked
    finally:
        open_auth.close()
    with pytest.raises(ExposureError, match=r"refusing to serve on 0\.0\.0\.0"):
        Authenticator(store, AuthSettings(), "0.0.0.0").open()


def test_changes_from_another_process_are_picked_up(store: KeyStore, url: str) -> None:
    auth = Authenticator(store, AuthSettings(refresh_s=0.05), "127.0.0.1")
    auth.open()
    try:
        with KeyStore(url) as cli:  # the CLI: another connection, as another process has
            record, secret = cli.create(KeySpec("acme"), "cli:test")
            assert _eventually(lambda: auth.required)
            assert _eventually(lambda: _accepts(auth, secret))
            cli.revoke(record.id, "cli:test")
            assert _eventually(lambda: not _accepts(auth, secret))
    finally:
        auth.close()


def _accepts(auth: Authenticator, secret: str) -> bool:
    try:
        return auth.authenticate(bearer(secret)) is not None
    except AuthenticationError:
        return False


def _eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


def test_lookup_is_served_from_memory(store: KeyStore, tmp_path: Path) -> None:
    """The hot path never reads the database: lookups still work with the database gone.

    (How fast a lookup is belongs in a benchmark, not a test; about 1.5 µs with 1,000 keys.)
    """
    secrets = [store.create(KeySpec(f"t{i}"), "test")[1] for i in range(50)]
    auth = Authenticator(store, AuthSettings(), "127.0.0.1")
    auth.reload()
    store.close()  # any database read from here on would raise
    for db in tmp_path.rglob("*.db*"):
        db.unlink()
    assert all(auth.authenticate(bearer(s)) is not None for s in secrets)

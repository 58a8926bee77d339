"""End to end: a real `thrifty serve` with keys, the official openai client, and HTTPS."""

from __future__ import annotations

import json
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import certifi
import httpx
import openai
import pytest
from click.testing import CliRunner

from fakes.upstream import FakeUpstream, start_upstream
from support import ThriftyServer
from thrifty.cli import main

pytestmark = pytest.mark.slow

FRANCE: list[openai.types.chat.ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is the capital of France?"}
]


def cli(home: Path, *args: str) -> str:
    """`thrifty ARGS` against `home`'s store, as an operator runs it; its stdout."""
    result = CliRunner().invoke(main, list(args), env={"THRIFTY_HOME": str(home)})
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def client(
    server: ThriftyServer, secret: str, http_client: httpx.Client | None = None
) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.base_url,
        api_key=secret,
        max_retries=0,
        timeout=120,
        http_client=http_client,
    )


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with start_upstream() as up:
        yield up


def test_keys_on_a_real_server(tmp_path: Path, upstream: FakeUpstream) -> None:
    home = tmp_path / "home"
    home.mkdir()
    user = cli(home, "keys", "create", "--tenant", "acme")
    local_only = cli(home, "keys", "create", "--tenant", "acme", "--models", "local")
    config = {
        "auth": {"refresh_s": 0.2},
        "local": {"parallel": 1, "ctx_size": 1024},
        "upstreams": [
            {
                "name": "deepseek",
                "base_url": upstream.url,
                "models": {"deepseek-chat": "deepseek-chat"},
                "max_retries": 0,
            }
        ],
    }
    with ThriftyServer(config=config, home=home) as server:
        raw = client(server, user).chat.completions.with_raw_response.create(
            model="local", messages=FRANCE, max_tokens=24, temperature=0
        )
        answer = raw.parse()
        assert raw.http_response.status_code == 200
        assert raw.headers["x-thrifty-route"] == "local"
        assert answer.choices[0].message.content
        row = server.row(raw.headers["x-thrifty-request-id"])
        assert row["tenant"] == "acme" and row["key_id"].startswith("key_")

        no_key = httpx.get(server.base_url + "/models", timeout=10)  # the SDK insists on one
        assert no_key.status_code == 401 and no_key.json()["error"]["code"] == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            client(server, "sk-not-a-key").chat.completions.create(
                model="local", messages=FRANCE, max_tokens=4
            )

        limited = client(server, local_only)
        assert limited.chat.completions.create(model="local", messages=FRANCE, max_tokens=4)
        with pytest.raises(openai.PermissionDeniedError) as denied:
            limited.chat.completions.create(model="deepseek-chat", messages=FRANCE, max_tokens=4)
        assert denied.value.code == "permission_denied"
        assert client(server, user).chat.completions.create(
            model="deepseek-chat", messages=FRANCE, max_tokens=4
        )

        # keys changed by the CLI, from another process, reach the running server in seconds
        later = cli(home, "keys", "create", "--tenant", "globex")

        def works(secret: str) -> bool:
            try:
                client(server, secret).models.list()
                return True
            except openai.AuthenticationError:
                return False

        assert eventually(lambda: works(later))
        listed = [json.loads(line) for line in cli(home, "keys", "list", "--json").splitlines()]
        (key_id,) = [k["id"] for k in listed if k["tenant"] == "globex"]
        cli(home, "keys", "revoke", key_id)
        assert eventually(lambda: not works(later))
        assert works(user)
        log = server.log()
    assert "auth.mode auto: every call needs an API key" in log
    for secret in (user, local_only, later):
        assert secret not in log
    assert "ok:" in cli(home, "audit", "verify")


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 (the venv has no `cryptography`: openssl it is)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    key.chmod(0o600)
    return cert, key


def test_https_with_a_self_signed_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = _self_signed(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    secret = cli(home, "keys", "create", "--tenant", "acme", "--role", "viewer")
    server = ThriftyServer(
        "--no-local", "--ssl-certfile", str(cert), "--ssl-keyfile", str(key), home=home
    )
    server.url = f"https://127.0.0.1:{server.port}"
    server.base_url = server.url + "/v1"
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # for ThriftyServer's readiness poll only
    with server:
        trusting = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(verify=trusting) as http:
            models = client(server, secret, http_client=http).models.list()
            assert [m.id for m in models.data] == ["auto"]
            assert http.get(server.base_url + "/models").status_code == 401
            with pytest.raises(openai.AuthenticationError):
                client(server, "sk-wrong", http_client=http).models.list()
        with (
            httpx.Client(verify=ssl.create_default_context(cafile=certifi.where())) as strict,
            pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
        ):
            strict.get(server.url + "/healthz")  # a client that does not trust it refuses it
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5)  # no plain HTTP
    assert "https://" in server.log_path.read_text()

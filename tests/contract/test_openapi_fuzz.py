"""Schemathesis over the app's own OpenAPI document: whatever a client sends, never a 5xx.

A real `thrifty serve` (no local model, so this stays fast) in front of the fake upstream;
the fuzzer generates valid and invalid bodies for every operation in /openapi.json.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from fakes.upstream import FakeUpstream
from support import ThriftyServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(fake: FakeUpstream) -> Iterator[ThriftyServer]:
    config = {
        "local": {"enabled": False},
        "default_model": "fake-chat",
        "upstreams": [
            {"name": "fake", "base_url": fake.url, "models": {"fake-chat": "fake-chat"},
             "timeout_s": 10, "max_retries": 0},
        ],
    }  # fmt: skip
    with ThriftyServer(config=config) as running:
        yield running


def test_no_server_errors(server: ThriftyServer, fake: FakeUpstream) -> None:
    api = schemathesis.openapi.from_url(server.url + "/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 6

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            response = case.call(base_url=server.url, timeout=30)
            assert response.status_code < 500, (case.as_curl_command(), response.text[:500])
            if response.status_code >= 400:
                error = response.json()["error"]
                assert set(error) == {"message", "type", "param", "code"}

        check()
    assert fake.stats()["requests"] > 0  # valid bodies were generated and answered

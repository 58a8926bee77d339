"""Two fake OpenAI-compatible servers as the local engine and the cloud: routing without models.

`thrifty serve` attaches to the "local" one through ``local.url`` (as it would to a llama-server
sidecar), so every test here runs real gateways on 127.0.0.1 in seconds. The fakes answer
``echo:TEXT`` with TEXT, anything else with a line naming the question's length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fakes.upstream import FakeUpstream, start_upstream


@pytest.fixture(scope="module")
def fake_local() -> Iterator[FakeUpstream]:
    with start_upstream(model_name="local-fake") as upstream:
        yield upstream


@pytest.fixture(scope="module")
def fake_cloud() -> Iterator[FakeUpstream]:
    with start_upstream(model_name="cloud-fake") as upstream:
        yield upstream


Config = Callable[..., dict[str, Any]]


@pytest.fixture(scope="module")
def two_fakes(fake_local: FakeUpstream, fake_cloud: FakeUpstream) -> Config:
    """A gateway config maker: `local` is the fake engine, `deepseek-chat` the fake cloud."""

    def config(**extra: Any) -> dict[str, Any]:
        return {
            "local": {"url": fake_local.url, "system_prompt": None},
            "upstreams": [
                {
                    "name": "deepseek",
                    "base_url": fake_cloud.url,
                    "models": {"deepseek-chat": "cloud-fake"},
                }
            ],
            "cache": {"enabled": False},
            **extra,
        }

    return config

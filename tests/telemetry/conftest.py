"""Fakes for the telemetry tests: an OTLP receiver, and fake engines instead of models."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.otlp import OtlpReceiver
from fakes.upstream import FakeUpstream, start_upstream


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as r:
        yield r


@pytest.fixture(scope="module")
def fake_local() -> Iterator[FakeUpstream]:
    """The local engine (`local.url`), as a llama-server sidecar would be attached."""
    with start_upstream(model_name="local-fake") as upstream:
        yield upstream


@pytest.fixture(scope="module")
def fake_cloud() -> Iterator[FakeUpstream]:
    with start_upstream(model_name="cloud-fake") as upstream:
        yield upstream

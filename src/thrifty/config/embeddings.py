"""`/v1/embeddings`: the local embedder."""

from __future__ import annotations

from pydantic import Field

from thrifty.config._base import _Section

ENCODERS = ("use-multilingual-v3", "multilingual-e5-small")  # in-process, from the semantic extra


class EmbeddingSettings(_Section):
    """Embeddings: `model: local` runs one of the semantic cache's encoders in-process, or a
    GGUF embedding model of `local.models` on its engine."""

    local_model: str | None = Field(
        "use-multilingual-v3",
        description="The local embedder behind `model: local`: an in-process encoder (from the "
        "semantic extra: use-multilingual-v3, 512-d, or multilingual-e5-small, 384-d), or the "
        "name of a `local.models` entry with `embedding: true`; null for none.",
    )
    threads: int = Field(1, description="CPU threads for the local embedder.", ge=1)

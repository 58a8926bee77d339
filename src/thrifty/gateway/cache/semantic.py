"""The semantic index: this replica's vectors of cached questions, searched exhaustively.

Vectors live in buckets, one per partition (tenant + target + parameters + system prompt +
earlier turns, see `keys.py`): a lookup only ever compares questions that share all of those,
so one tenant's question can never find another tenant's answer. Within a bucket the search is
one matrix-vector product over L2-normalized float32 rows (cosine similarity); buckets are small
and a brute-force scan of 10,000 vectors takes well under a millisecond with numpy, so there is
no approximate index to tune (see `benchmarks/cache.py`).

Candidates are tried best first (at most `_CANDIDATES`); the first that the content guard
(`guard.py`) lets through AND the learned thresholds (`thresholds.py`) vouch for wins. The search
also reports the best near-hit it declined (a candidate at or above `near`, the fixed threshold a
plain semantic cache would use) and why, for the metrics.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from thrifty.gateway.cache.guard import Signature, disagreement
from thrifty.gateway.cache.thresholds import Thresholds

Vector = npt.NDArray[np.float32]
_CANDIDATES = 16  # the guard runs on at most this many of the most similar questions


@dataclass(frozen=True, slots=True)
class Match:
    key: str  # the exact key of the cached answer
    similarity: float
    question: str = ""  # the cached question (masked), for the audit


@dataclass(frozen=True, slots=True)
class Search:
    """What a lookup found: the match, or the best near-hit it declined and why."""

    match: Match | None = None
    declined: str | None = None  # guard reason, "unvouched" or "entry"
    declined_similarity: float = 0.0
    declined_key: str = ""


@dataclass(slots=True)
class _Bucket:
    vectors: Vector  # (capacity, dim); rows [0, len(keys)) are in use
    keys: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # key -> its row
    signatures: list[Signature] = field(default_factory=list)
    expires: list[float] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)


class SemanticIndex:
    """Thread-safe: lookups run on the event loop, additions also on the embedding thread."""

    def __init__(
        self,
        dim: int,
        thresholds: Thresholds,
        max_entries: int,
        *,
        near: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.dim = dim
        self.thresholds = thresholds
        self.near = thresholds.calibration.base if near is None else near
        self.max_entries = max_entries
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._where: OrderedDict[str, str] = OrderedDict()  # key -> partition, oldest first
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, key: str) -> bool:
        return key in self._where

    def knows(self, partition: str) -> bool:
        """Whether any question of this partition is indexed (else a lookup need not embed)."""
        return partition in self._buckets

    def add(
        self,
        partition: str,
        key: str,
        vector: Vector,
        signature: Signature,
        expires_at: float,
        question: str = "",
    ) -> None:
        with self._lock:
            if key in self._where:
                self._remove(key)
            while len(self._where) >= self.max_entries:
                self._remove(next(iter(self._where)))
            bucket = self._buckets.get(partition)
            if bucket is None:
                bucket = self._buckets[partition] = _Bucket(np.empty((4, self.dim), np.float32))
            n = len(bucket.keys)
            if n == len(bucket.vectors):  # grow by doubling: amortized O(1) appends
                grown = np.empty((2 * n, self.dim), np.float32)
                grown[:n] = bucket.vectors
                bucket.vectors = grown
            bucket.vectors[n] = vector
            bucket.rows[key] = n
            bucket.keys.append(key)
            bucket.signatures.append(signature)
            bucket.expires.append(expires_at)
            bucket.questions.append(question)
            self._where[key] = partition

    def remove(self, key: str) -> None:
        with self._lock:
            if key in self._where:
                self._remove(key)

    def search(self, partition: str, vector: Vector, signature: Signature) -> Search:
        """The most similar cached question that is the same question and vouched for."""
        with self._lock:
            bucket = self._buckets.get(partition)
            if bucket is None:
                return Search()
            n = len(bucket.keys)
            sims = bucket.vectors[:n] @ vector
            above = np.flatnonzero(sims >= self.thresholds.low)
            if not len(above):
                return Search()
            best = above[np.argsort(-sims[above])][:_CANDIDATES]
            now = self.clock()
            expired: list[str] = []
            found: Match | None = None
            declined: str | None = None
            declined_sim, declined_key = 0.0, ""
            for i in best:
                key, sim = bucket.keys[i], float(sims[i])
                if bucket.expires[i] <= now:
                    expired.append(key)
                    continue
                why = disagreement(signature, bucket.signatures[i])
                if why is None:
                    why = self.thresholds.declines(key, sim)
                if why is None:
                    found = Match(key, sim, bucket.questions[i])
                    break
                if declined is None and sim >= self.near:
                    declined, declined_sim, declined_key = why, sim, key
            for key in expired:
                self._remove(key)
            if found is not None:
                return Search(found)
            return Search(None, declined, declined_sim, declined_key)

    def question(self, key: str) -> str | None:
        with self._lock:
            partition = self._where.get(key)
            if partition is None:
                return None
            bucket = self._buckets[partition]
            return bucket.questions[bucket.rows[key]]

    def purge_expired(self) -> int:
        with self._lock:
            now = self.clock()
            doomed = [
                key
                for bucket in self._buckets.values()
                for key, expires in zip(bucket.keys, bucket.expires, strict=True)
                if expires <= now
            ]
            for key in doomed:
                self._remove(key)
            return len(doomed)

    def _remove(self, key: str) -> None:
        """Swap the last row into the removed one's place (the lock is held)."""
        partition = self._where.pop(key)
        bucket = self._buckets[partition]
        i = bucket.rows.pop(key)
        last = len(bucket.keys) - 1
        if i != last:
            bucket.vectors[i] = bucket.vectors[last]
            bucket.keys[i] = bucket.keys[last]
            bucket.rows[bucket.keys[i]] = i
            bucket.signatures[i] = bucket.signatures[last]
            bucket.expires[i] = bucket.expires[last]
            bucket.questions[i] = bucket.questions[last]
        bucket.keys.pop()
        bucket.signatures.pop()
        bucket.expires.pop()
        bucket.questions.pop()
        if not bucket.keys:
            del self._buckets[partition]

"""What the semantic cache learns from: recent hits by request id, and checks of them.

A check says whether a semantic hit (or a near-hit the thresholds declined) would have been
the right answer: thumbs on `POST /v1/feedback`, the `invalidate` directive, or a shadow check
against a fresh answer. Each one updates the learned thresholds (`thresholds.py`) and the
metrics. With Redis, checks are shared: each is appended to `<prefix>ev`, a stream every
replica reads when it refreshes its vectors, so a thumbs down on one replica tightens the
thresholds of all (the stream is trimmed to about 10,000 checks; a new replica replays it).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from thrifty.gateway.cache.metrics import CacheMetrics
    from thrifty.gateway.cache.redis import Check, RedisStore
    from thrifty.gateway.cache.thresholds import Thresholds

logger = logging.getLogger(__name__)

_RECENT = 10_000  # hits remembered for feedback and shadow checks


@dataclass(frozen=True, slots=True)
class SemanticHit:
    """A semantic hit, kept for feedback and shadow checks (no text: the audit file has it).

    Also a near-hit the learned thresholds declined (`served` False): a shadow check of it
    against the model's fresh answer is how a closed similarity band earns its way back.
    """

    tenant: str
    key: str  # the entry that answered (or would have)
    similarity: float
    served: bool = True


class Evidence:
    """Thread-safe: hits are kept on the event loop, checks arrive from handlers and threads."""

    def __init__(
        self,
        thresholds: Thresholds,
        metrics: CacheMetrics,
        *,
        shared: RedisStore | None = None,
        submit: Callable[..., None] | None = None,
    ) -> None:
        self.thresholds = thresholds
        self.metrics = metrics
        self.shared = shared
        self.submit = submit  # runs a Redis call off the event loop
        self.origin = uuid.uuid4().hex[:12]  # this replica, in the shared stream
        self.read_after = "0"  # last id of the shared stream applied here
        self._hits: OrderedDict[str, SemanticHit] = OrderedDict()
        self._lock = threading.Lock()

    def keep(self, request_id: str, hit: SemanticHit) -> None:
        with self._lock:
            self._hits[request_id] = hit
            while len(self._hits) > _RECENT:
                self._hits.popitem(last=False)

    def hit(self, request_id: str) -> SemanticHit | None:
        with self._lock:
            return self._hits.get(request_id)

    def record(self, key: str, similarity: float, *, correct: bool, source: str) -> None:
        """One check: the thresholds learn from it here, and (with Redis) on every replica."""
        self._apply(key, similarity, correct, source)
        if self.shared is not None and self.submit is not None:
            self.submit(self._publish, key, similarity, correct, source)

    def _apply(self, key: str, similarity: float, correct: bool, source: str) -> None:
        self.thresholds.record(key, similarity, correct)
        self.metrics.checks.labels(source, "right" if correct else "wrong").inc()

    def _publish(self, key: str, similarity: float, correct: bool, source: str) -> None:
        assert self.shared is not None
        try:
            self.shared.add_check(self.origin, key, similarity, correct, source)
        except Exception as exc:  # the check still counts here
            logger.warning("cannot share a semantic cache check (%s)", exc)

    def read_shared(self) -> None:
        """Apply the checks other replicas shared since the last read (on an I/O thread)."""
        assert self.shared is not None
        checks: list[Check]
        checks, self.read_after = self.shared.read_checks(self.read_after)
        for check in checks:
            if check.origin != self.origin:
                self._apply(check.key, check.similarity, check.correct, check.source)

"""Learned thresholds: a semantic hit is served only where the cache can vouch for it.

One fixed similarity threshold is wrong twice: too low for some questions (near-misses score
high), too high for others (paraphrases score low). Like vCache (ICLR 2026), the cache learns
from evidence instead, and keeps the error rate a user sets (`cache.max_error_rate`):

- similarity bands (0.05 wide): each band's error rate is a Beta estimate, its prior from the
  embedding model's calibration (`Calibration`: measured on tests/data/cache_pairs_tuning.jsonl
  and paraphrases.jsonl with the content guard; `prior_weight` pseudo-observations), its
  evidence the checked hits at that similarity. A hit is served only when its band's estimate
  is within `max_error_rate`. One wrong hit in a band of twenty pseudo-observations lifts its
  estimate to about 5 %: the band closes at once, and reopens only after enough right answers
  (about a hundred per wrong one at 1 %), which shadow checks of declined near-hits supply;
- per entry: a cached question that answered another question wrongly at similarity s is never
  served again below s + `margin` (its own threshold, raised past every wrong hit).

Evidence comes from `record`: shadow checks of a sample of hits against a fresh answer, user
feedback on a semantic hit (`POST /v1/feedback`), and explicit invalidation (the `invalidate`
cache directive). `error_rate` is the measured rate over every checked hit.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

from thrifty.encoders import Calibration

BAND = 0.05
SPAN = 0.25  # bands cover [base - SPAN, 1]: below that nothing is ever worth checking


@dataclass(frozen=True, slots=True)
class Counts:
    wrong: int
    right: int


class Thresholds:
    """Thread-safe: lookups read it on the event loop, feedback writes from handlers."""

    def __init__(
        self,
        calibration: Calibration,
        max_error_rate: float,
        *,
        prior_weight: float = 20.0,
        margin: float = 0.02,
        max_entries: int = 100_000,
    ) -> None:
        self.calibration = calibration
        self.max_error_rate = max_error_rate
        self.prior_weight = prior_weight
        self.margin = margin
        self.max_entries = max_entries
        self.low = max(0.0, calibration.base - SPAN)
        n = math.ceil((1.0 - self.low) / BAND - 1e-9)
        self._priors = [calibration.prior(self.low + (i + 0.5) * BAND) for i in range(n)]
        self._wrong = [0] * n
        self._right = [0] * n
        self._open = [False] * n
        self._floors: OrderedDict[str, float] = OrderedDict()  # entry -> its own threshold
        self._lock = threading.Lock()
        for i in range(n):
            self._update(i)

    def _band(self, similarity: float) -> int:
        return min(len(self._priors) - 1, max(0, int((similarity - self.low) / BAND)))

    def _update(self, i: int) -> None:
        self._open[i] = self.estimate_band(i) <= self.max_error_rate

    def estimate_band(self, i: int) -> float:
        k = self.prior_weight
        return (k * self._priors[i] + self._wrong[i]) / (k + self._wrong[i] + self._right[i])

    def estimate(self, similarity: float) -> float:
        """The estimated error rate of a hit at this similarity."""
        return self.estimate_band(self._band(similarity))

    def declines(self, key: str, similarity: float) -> str | None:
        """Why a guard-approved candidate is not served ("unvouched", "entry"), or None."""
        if similarity < self.low or not self._open[self._band(similarity)]:
            return "unvouched"
        floor = self._floors.get(key)
        if floor is not None and similarity < floor:
            return "entry"
        return None

    def record(self, key: str, similarity: float, correct: bool) -> None:
        """Evidence on one hit (served or shadow-checked) of entry `key` at `similarity`."""
        with self._lock:
            if similarity >= self.low:
                i = self._band(similarity)
                if correct:
                    self._right[i] += 1
                else:
                    self._wrong[i] += 1
                self._update(i)
            if not correct:
                floor = max(self._floors.pop(key, 0.0), similarity + self.margin)
                self._floors[key] = floor
                while len(self._floors) > self.max_entries:
                    self._floors.popitem(last=False)

    def entry_threshold(self, key: str) -> float:
        """The lowest similarity at which this entry may be served (for audits and tests)."""
        floor = self._floors.get(key, 0.0)
        return max(floor, self.threshold)

    def forget(self, key: str) -> None:
        with self._lock:
            self._floors.pop(key, None)

    @property
    def threshold(self) -> float:
        """The lowest similarity above which every band is open (> 1: none is)."""
        lowest = 1.0 + BAND
        for i in range(len(self._open) - 1, -1, -1):
            if not self._open[i]:
                break
            lowest = self.low + i * BAND
        return round(lowest, 4)

    def counts(self) -> Counts:
        with self._lock:
            return Counts(sum(self._wrong), sum(self._right))

    @property
    def error_rate(self) -> float | None:
        """Wrong hits over checked hits, or None before any check."""
        c = self.counts()
        checked = c.wrong + c.right
        return c.wrong / checked if checked else None

    def bands(self) -> list[tuple[float, float, int, int, bool]]:
        """(from, estimate, wrong, right, open) per band, lowest first."""
        with self._lock:
            return [
                (
                    round(self.low + i * BAND, 4),
                    self.estimate_band(i),
                    self._wrong[i],
                    self._right[i],
                    self._open[i],
                )
                for i in range(len(self._priors))
            ]

"""How an answer is scored against the cloud's answer: the gate's metric, 0-1."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from thrifty.train.collect import normalize

Metric = Callable[[str, str], float]
_N = 3  # character n-grams: word-free, so Chinese and English alike


def exact(answer: str, reference: str) -> float:
    return 1.0 if normalize(answer) == normalize(reference) else 0.0


def contains(answer: str, reference: str) -> float:
    ref = normalize(reference)
    return 1.0 if ref and ref in normalize(answer) else 0.0


def _grams(text: str) -> Counter[str]:
    text = normalize(text)
    if len(text) < _N:
        return Counter([text]) if text else Counter()
    return Counter(text[i : i + _N] for i in range(len(text) - _N + 1))


def similarity(answer: str, reference: str) -> float:
    """Character 3-gram F1 (a chrF without the averaging over n): 1 for the same text."""
    a, r = _grams(answer), _grams(reference)
    if not a or not r:
        return 1.0 if not a and not r else 0.0
    overlap = sum((a & r).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / sum(a.values()), overlap / sum(r.values())
    return 2 * precision * recall / (precision + recall)


METRICS: dict[str, Metric] = {"exact": exact, "contains": contains, "similarity": similarity}

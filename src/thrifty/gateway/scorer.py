"""P(good enough | request) for each target: the heuristic, and the scorer learned from outcomes.

Features are computed once per `auto` request (`RequestFeatures`): the last user turn, the system
prompt's task key, cheap cues (length, share of Chinese, code, maths and multi-step signals,
question count) and, for the learned scorer only, the sentence embedding of the question from
the multilingual encoder the semantic cache ships (`gateway.cache.embed`). The embedding is kept
on the features so the cache does not compute it a second time.

- `HeuristicQuality` (the cold-start default): upstream targets are assumed best (P = 1); a local
  target's P falls with the complexity score, calibrated so that at ``complexity_threshold`` it is
  exactly ``quality_target``: the old "complex goes to the cloud" line, now stated as quality.
- `LearnedQuality`: one logistic regression per target over [embedding, cheap cues, task bucket],
  fitted in numpy by `train` (`thrifty route train`) from the outcomes table. The artifact is a
  versioned ``.npz`` in ``$THRIFTY_HOME/router/``; the gateway re-reads it when its file changes
  (checked at most once a second), so a retrain needs no restart. Targets it has no model for
  keep their heuristic P.

A label is "this target's answer was as good as the best target's" where the same request was
answered by several targets (eval, shadow), else the outcome's own pass/fail (feedback, A/B).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thrifty.gateway.complexity import HeuristicScorer, estimate_tokens, last_user_text
from thrifty.gateway.pii import iter_message_texts
from thrifty.store.outcomes import Outcome, fingerprint, task_key

if TYPE_CHECKING:
    from thrifty.encoders import Embedder

logger = logging.getLogger(__name__)

CHEAP = (
    "log_tokens", "cjk_share", "code", "math", "steps", "questions", "has_system", "complexity",
)  # fmt: skip
TASK_BUCKETS = 16  # the task key, hashed into a few one-hot columns
ARTIFACT = "scorer.npz"
_CHECK_EVERY_S = 1.0


def system_text(messages: Sequence[Mapping[str, Any]]) -> str:
    roles = ("system", "developer")
    return "\n".join(t for m in messages if m.get("role") in roles for t in iter_message_texts(m))


def cheap_features(text: str, system: str, heuristic: HeuristicScorer) -> dict[str, float]:
    signals = heuristic.signals(text) if text else dict.fromkeys(heuristic.WEIGHTS, 0.0)
    keep = 1.0
    for name, value in signals.items():
        keep *= 1.0 - heuristic.WEIGHTS[name] * value
    tokens = estimate_tokens(text)
    cjk = sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff") if not text.isascii() else 0
    return {
        "log_tokens": math.log1p(tokens),
        "cjk_share": cjk / max(1, len(text)),
        "code": signals["code"],
        "math": signals["math"],
        "steps": signals["steps"],
        "questions": signals["questions"],
        "has_system": 1.0 if system else 0.0,
        "complexity": round(1.0 - keep, 3),
    }


@dataclass(slots=True)
class RequestFeatures:
    """What the router knows of one request's content; built once per `auto` request."""

    text: str  # the last user turn (as the client sent it; masked before it is stored)
    system: str
    task: str  # task_key(system)
    cheap: dict[str, float]
    embedding: Any = None  # np.ndarray once computed (learned scorer), shared with the cache
    embedder: str | None = None  # the model that computed it
    _fingerprint: str | None = field(default=None, repr=False)

    @classmethod
    def of(
        cls, messages: Sequence[Mapping[str, Any]], heuristic: HeuristicScorer
    ) -> RequestFeatures:
        text = last_user_text(messages)
        system = system_text(messages)
        return cls(text, system, task_key(system), cheap_features(text, system, heuristic))

    @property
    def complexity(self) -> float:
        return self.cheap["complexity"]

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self.task, self.text)
        return self._fingerprint


class HeuristicQuality:
    """P(good enough) from the complexity score; every upstream is assumed best."""

    name = "heuristic"

    def __init__(self, quality_target: float, complexity_threshold: float) -> None:
        self.quality_target = quality_target
        self.threshold = max(complexity_threshold, 1e-6)

    def local_p(self, complexity: float) -> float:
        p = 1.0 - (1.0 - self.quality_target) * complexity / self.threshold
        return min(1.0, max(0.0, p))

    def predict(self, features: RequestFeatures, targets: Mapping[str, bool]) -> dict[str, float]:
        """``targets``: name -> is it local. Returns name -> P(good enough)."""
        p_local = self.local_p(features.complexity)
        return {name: (p_local if local else 1.0) for name, local in targets.items()}


# -- the learned scorer --------------------------------------------------------------------------


def _task_columns(task: str) -> list[float]:
    row = [0.0] * TASK_BUCKETS
    if task:
        row[int(hashlib.sha256(task.encode()).hexdigest()[:8], 16) % TASK_BUCKETS] = 1.0
    return row


def design_row(cheap: Mapping[str, float], task: str, embedding: Any) -> Any:
    import numpy as np

    head = [float(cheap.get(name, 0.0)) for name in CHEAP] + _task_columns(task)
    return np.concatenate([np.asarray(head, dtype=np.float32), np.asarray(embedding, np.float32)])


@dataclass(slots=True)
class Model:
    """Per target: weights over standardized columns, and a bias."""

    version: int
    embedder: str
    mean: Any  # (d,)
    std: Any  # (d,)
    weights: dict[str, tuple[Any, float]]  # target -> (w (d,), b)
    examples: dict[str, int]
    trained_at: float

    def predict(self, x: Any) -> dict[str, float]:
        import numpy as np

        z = (x - self.mean) / self.std
        out = {}
        for target, (w, b) in self.weights.items():
            logit = float(np.dot(z, w) + b)
            out[target] = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, logit))))
        return out

    def save(self, path: Path) -> None:
        import numpy as np

        path.parent.mkdir(parents=True, exist_ok=True)
        targets = sorted(self.weights)
        arrays: dict[str, Any] = {
            "meta": np.asarray(
                [self.version, self.trained_at] + [self.examples[t] for t in targets], np.float64
            ),
            "embedder": np.asarray(self.embedder),
            "targets": np.asarray(targets),
            "mean": self.mean,
            "std": self.std,
            "w": np.stack([self.weights[t][0] for t in targets]),
            "b": np.asarray([self.weights[t][1] for t in targets], np.float64),
        }
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)  # readers see the old artifact or the new one, never half of one

    @classmethod
    def load(cls, path: Path) -> Model:
        import numpy as np

        with np.load(path, allow_pickle=False) as data:
            meta = data["meta"]
            targets = [str(t) for t in data["targets"]]
            w, b = data["w"], data["b"]
            return cls(
                version=int(meta[0]),
                embedder=str(data["embedder"]),
                mean=data["mean"],
                std=data["std"],
                weights={t: (w[i], float(b[i])) for i, t in enumerate(targets)},
                examples={t: int(meta[2 + i]) for i, t in enumerate(targets)},
                trained_at=float(meta[1]),
            )


class LearnedQuality:
    """The learned scorer, hot-reloaded from its artifact; the heuristic where it knows nothing."""

    name = "learned"

    def __init__(
        self, path: Path, fallback: HeuristicQuality, embedder: Embedder | None = None
    ) -> None:
        self.path = path
        self.fallback = fallback
        self._embedder = embedder
        self.model: Model | None = None
        self._mtime: float | None = None
        self._checked = float("-inf")

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from thrifty.encoders import load_embedder

            model = self.model.embedder if self.model is not None else "use-multilingual-v3"
            self._embedder = load_embedder(model)
        return self._embedder

    def refresh(self) -> Model | None:
        now = time.monotonic()
        if now - self._checked < _CHECK_EVERY_S:
            return self.model
        self._checked = now
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self.model, self._mtime = None, None
            return None
        if mtime != self._mtime:
            try:
                self.model = Model.load(self.path)
                self._mtime = mtime
                logger.info("router scorer v%d loaded from %s", self.model.version, self.path)
            except Exception:  # a broken artifact must not take routing down
                logger.exception("router scorer %s unreadable; keeping the last", self.path)
        return self.model

    def embed(self, features: RequestFeatures) -> Any:
        if features.embedding is None:
            features.embedding = self.embedder.embed(features.text or features.system or " ")
            features.embedder = self.embedder.name
        return features.embedding

    def predict(self, features: RequestFeatures, targets: Mapping[str, bool]) -> dict[str, float]:
        out = self.fallback.predict(features, targets)
        model = self.refresh()
        if model is None or not any(t in model.weights for t in targets):
            return out
        x = design_row(features.cheap, features.task, self.embed(features))
        for target, p in model.predict(x).items():
            if target in out:
                out[target] = p
        return out


# -- training ------------------------------------------------------------------------------------


def labels(outcomes: Iterable[Outcome]) -> list[tuple[Outcome, bool]]:
    """Each labelled outcome with its label: as good as the best target on the same request."""
    groups: dict[tuple[str, str], list[Outcome]] = defaultdict(list)
    single: list[tuple[Outcome, bool]] = []
    for o in outcomes:
        if o.text is None:
            continue
        if o.source in ("eval", "shadow") and o.ref is not None and o.score is not None:
            groups[(o.source, o.ref)].append(o)
        elif o.ok is not None:
            single.append((o, o.ok))
    out = []
    for group in groups.values():
        if len(group) == 1:
            o = group[0]
            if o.ok is not None:
                out.append((o, o.ok))
            continue
        best = max(o.score for o in group if o.score is not None)
        for o in group:
            assert o.score is not None
            out.append((o, o.score >= best - 1e-9))
    return out + single


def fit_logistic(x: Any, y: Any, l2: float = 1.0, steps: int = 300) -> tuple[Any, float]:
    """L2-regularized logistic regression by Newton's method on standardized columns."""
    import numpy as np

    n, d = x.shape
    w = np.zeros(d)
    b = 0.0
    xb = np.hstack([x, np.ones((n, 1))])
    theta = np.zeros(d + 1)
    reg = np.full(d + 1, l2)
    reg[-1] = 0.0  # no penalty on the bias
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ theta, -30, 30)))
        grad = xb.T @ (p - y) + reg * theta
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + np.diag(reg + 1e-6)
        delta = np.linalg.solve(hess, grad)
        theta -= delta
        if float(np.max(np.abs(delta))) < 1e-6:
            break
    w, b = theta[:-1], float(theta[-1])
    return w.astype(np.float32), b


def train(
    outcomes: Iterable[Outcome],
    embedder: Embedder,
    *,
    version: int = 1,
    l2: float = 1.0,
    min_examples: int = 4,
) -> Model:
    """Fit one model per target with enough labelled outcomes (both labels present)."""
    import numpy as np

    labelled = labels(outcomes)
    if not labelled:
        raise ValueError("no labelled outcomes with known text to train on")
    texts = sorted({o.text or "" for o, _ in labelled})
    vectors = embedder.embed_batch(texts) if texts else np.zeros((0, embedder.dim))
    by_text = {t: vectors[i] for i, t in enumerate(texts)}
    rows = [design_row(o.features, o.task, by_text[o.text or ""]) for o, _ in labelled]
    x_all = np.stack(rows).astype(np.float64)
    mean = x_all.mean(axis=0)
    std = x_all.std(axis=0)
    std[std < 1e-6] = 1.0
    z_all = (x_all - mean) / std
    weights: dict[str, tuple[Any, float]] = {}
    examples: dict[str, int] = {}
    targets = sorted({o.target for o, _ in labelled})
    for target in targets:
        index = [i for i, (o, _) in enumerate(labelled) if o.target == target]
        y = np.asarray([float(labelled[i][1]) for i in index])
        examples[target] = len(index)
        if len(index) < min_examples:
            continue
        if y.min() == y.max():  # one label only: a constant, shrunk toward 0.5 by its count
            p = (y.sum() + 1) / (len(y) + 2)
            weights[target] = (np.zeros(x_all.shape[1], np.float32), math.log(p / (1 - p)))
            continue
        weights[target] = fit_logistic(z_all[index], y, l2=l2 * len(index) ** 0.5)
    if not weights:
        raise ValueError(f"no target has {min_examples} labelled outcomes yet")
    return Model(
        version=version,
        embedder=embedder.name,
        mean=mean.astype(np.float32),
        std=std.astype(np.float32),
        weights=weights,
        examples={t: examples[t] for t in weights},
        trained_at=time.time(),
    )


def artifact_path(home: Path) -> Path:
    return home / "router" / ARTIFACT


def next_version(path: Path) -> int:
    try:
        return Model.load(path).version + 1
    except (FileNotFoundError, OSError, KeyError, ValueError):
        return 1


def retrain(
    url: str,
    home: Path,
    embedder_model: str,
    *,
    sources: list[str] | None = None,
    min_examples: int = 4,
) -> tuple[Path, Model]:
    """Fit the scorer on the store's outcomes and save the next version (`thrifty route train`,
    and the autopilot after each decision); ValueError when there is nothing to learn from."""
    from thrifty.encoders import load_embedder
    from thrifty.store.outcomes import load_outcomes

    outcomes = load_outcomes(url, sources=sources)
    if not outcomes:
        raise ValueError("no outcomes yet: run `thrifty route eval`, or turn on shadow")
    embedder = load_embedder(embedder_model)
    path = artifact_path(home)
    model = train(outcomes, embedder, version=next_version(path), min_examples=min_examples)
    model.save(path)
    return path, model

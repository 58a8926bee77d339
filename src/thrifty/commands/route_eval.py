"""`thrifty route eval`: run suites on both targets through a gateway, store outcomes, sweep.

Each suite runs once on the local target and once on the cloud through `thrifty eval`'s runner,
under run ids derived from the suite's content and the model names, so running the same command
again resumes both runs where they stopped (Ctrl-C included). Items answered by both become
``eval`` outcomes in the gateway's database; then the router's score for each item (the
configured scorer, or, with ``--train-split``, a learned scorer fitted on that share of the items
and scored on the rest) is swept over its thresholds (`thrifty.evals.routing`).
"""

from __future__ import annotations

import hashlib
import random
import sys
from pathlib import Path
from typing import Any

import click

from thrifty.evals.routing import Pair


def _digest(suite: Any) -> str:
    raw = Path(suite.source).read_bytes() if suite.source else suite.name.encode()
    return hashlib.sha256(raw).hexdigest()[:10]


def _quality(score: float, rated: bool) -> float:
    return score / 10.0 if rated else score


def run(
    settings: Any,
    suite_names: tuple[str, ...],
    local: str,
    cloud: str,
    *,
    base_url: str,
    api_key: str | None,
    train_split: float | None,
    concurrency: int,
    limit: int | None,
    seed: int,
) -> list[Pair]:
    """Run or resume every suite on both targets; the items' pairs with the router's scores."""
    from thrifty.evals import store
    from thrifty.evals.endpoint import Endpoint
    from thrifty.evals.runner import Progress, RunConfig, RunError, run_suite
    from thrifty.evals.suites import SuiteError, load_suite
    from thrifty.gateway.complexity import HeuristicScorer
    from thrifty.gateway.scorer import RequestFeatures
    from thrifty.store.db import connect
    from thrifty.store.migrations import migrate
    from thrifty.store.outcomes import Outcome, add_outcomes

    endpoint = Endpoint(base_url, api_key)
    heuristic = HeuristicScorer()
    conn = store.connect(settings.home / "evals.db")
    rows: list[tuple[str, RequestFeatures, Any, Any, bool]] = []
    try:
        for name in suite_names:
            try:
                suite = load_suite(name)
            except SuiteError as exc:
                raise click.ClickException(str(exc)) from None
            if any(item.followups for item in suite.items):
                raise click.ClickException(f"{suite.name}: multi-turn items cannot be routed")
            digest = _digest(suite)
            runs = {}
            for model in (local, cloud):
                run_id = f"route-{suite.name}-{digest}-{model}"
                total = min(limit, len(suite.items)) if limit else len(suite.items)
                config = RunConfig(
                    run_id=run_id, suite=suite, source=name, model=model, endpoint=endpoint,
                    limit=limit, concurrency=concurrency,
                )  # fmt: skip
                try:
                    run_suite(conn, config, progress=Progress(f"{suite.name} × {model}", total))
                except KeyboardInterrupt:
                    click.echo(
                        f"\ninterrupted: {len(store.done_items(conn, run_id))}/{total} items of "
                        f"{suite.name} × {model} stored. Run the same command again to resume.",
                        err=True,
                    )
                    sys.exit(130)
                except RunError as exc:
                    raise click.ClickException(str(exc)) from None
                runs[model] = {r.item_id: r for r in store.items(conn, run_id)}
            for item in suite.items[:limit] if limit else suite.items:
                a, b = runs[local].get(item.id), runs[cloud].get(item.id)
                if a is None or b is None:
                    continue  # a transient failure: the next invocation asks again
                features = RequestFeatures.of(item.messages, heuristic)
                rows.append((f"{suite.name}:{digest}:{item.id}", features, a, b, suite.rated))
    finally:
        conn.close()
    if not rows:
        raise click.ClickException("no item was answered by both targets")

    outcomes = []
    for ref, features, a, b, rated in rows:
        for target, result in ((local, a), (cloud, b)):
            outcomes.append(
                Outcome(
                    "eval",
                    target,
                    features.fingerprint,
                    result.passed,
                    cost_nanos=result.cost_nanos,
                    score=_quality(result.score, rated),
                    text=features.text,
                    task=features.task,
                    features=features.cheap,
                    ref=ref,
                    detail=result.route or "",
                )
            )
    db = connect(settings.database_url)
    try:
        migrate(db)
        add_outcomes(db, outcomes)
    finally:
        db.close()

    scores = _scores(settings, rows, outcomes, local, cloud, train_split, seed)
    return [
        Pair(
            ref,
            scores[ref],
            _quality(a.score, rated),
            _quality(b.score, rated),
            a.cost_nanos or 0,
            b.cost_nanos or 0,
        )
        for ref, _, a, b, rated in rows
        if ref in scores
    ]


def _scores(
    settings: Any,
    rows: list[Any],
    outcomes: list[Any],
    local: str,
    cloud: str,
    train_split: float | None,
    seed: int,
) -> dict[str, float]:
    """ref -> P(local is good enough): from the configured scorer, or one trained on a split."""
    from thrifty.gateway.scorer import (
        HeuristicQuality,
        LearnedQuality,
        artifact_path,
        design_row,
        train,
    )

    router = settings.router
    fallback = HeuristicQuality(router.quality_target, router.complexity_threshold)
    targets = {local: True, cloud: False}
    if train_split is None:
        quality: HeuristicQuality | LearnedQuality = fallback
        if router.scorer == "learned":
            quality = LearnedQuality(artifact_path(settings.home), fallback)
        return {ref: quality.predict(f, targets)[local] for ref, f, *_ in rows}
    from thrifty.encoders import load_embedder

    refs = sorted(ref for ref, *_ in rows)
    random.Random(seed).shuffle(refs)
    cut = max(1, round(len(refs) * train_split))
    training, held_out = set(refs[:cut]), set(refs[cut:])
    if not held_out:
        raise click.ClickException("--train-split leaves no item to evaluate on")
    embedder = load_embedder(settings.cache.semantic_model)
    model = train([o for o in outcomes if o.ref in training], embedder, min_examples=2)
    if local not in model.weights:
        raise click.ClickException(f"the training split has too few outcomes for {local}")
    kept = [(ref, f) for ref, f, *_ in rows if ref in held_out]
    vectors = embedder.embed_batch([f.text or f.system or " " for _, f in kept])
    return {
        ref: model.predict(design_row(f.cheap, f.task, vectors[i]))[local]
        for i, (ref, f) in enumerate(kept)
    }


def render_table(result: dict[str, Any], pairs: list[Pair]) -> str:
    lines = [f"{len(pairs)} items; the router's score swept over its thresholds", ""]
    lines.append(
        f"{'threshold':>10} {'cloud share':>12} {'quality':>8} {'vs cloud':>9} {'cost':>12}"
    )
    for p in result["points"]:
        vs = "-" if p["quality_vs_cloud"] is None else f"{p['quality_vs_cloud']:.1%}"
        lines.append(
            f"{p['threshold']:>10.4f} {p['cloud_share']:>12.1%} {p['quality']:>8.3f} {vs:>9} "
            f"${p['cost_usd']:>11.6f}"
        )
    lines.append("")
    apgr = result["apgr"]
    lines.append(f"APGR {apgr:.3f}" if apgr is not None else "APGR - (no quality gap)")
    cpt = result["cpt"]
    lines.append(
        "CPT  " + "  ".join(f"{k}%: {'-' if v is None else f'{v:.1%}'}" for k, v in cpt.items())
    )
    at = result["at_quality"]
    if at["threshold"] is None:
        lines.append(f"no threshold keeps {at['target']:.0%} of all-cloud quality")
    else:
        saving = "-" if at["cost_saving_x"] is None else f"{at['cost_saving_x']:.2f}x cheaper"
        lines.append(
            f"at {at['target']:.0%} of all-cloud quality: threshold {at['threshold']:.4f}, "
            f"{at['cloud_share']:.1%} cloud, {at['quality_vs_cloud']:.1%} of its quality, {saving}"
        )
    return "\n".join(lines)

"""The steps of a cycle. Each reads the settings and the earlier steps' records and returns an
`Outcome`; the cycle records it. Heavy imports (torch, the exporter) stay inside the steps."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from thrifty.autopilot import promote, tasks
from thrifty.autopilot.metrics import METRICS
from thrifty.autopilot.work import Outcome, Work
from thrifty.gateway.pii import PIIDetector
from thrifty.train.collect import Example, Filters, finish, holdout_path, text_of

COLLECTED = "collected.jsonl"
TRAIN = "train.jsonl"
STUDENT = "student"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _read(path: Path) -> list[Example]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [Example(row["messages"]) for row in rows]


def _detector(work: Work) -> PIIDetector:
    return PIIDetector(work.settings.privacy.detect)


def collect(work: Work) -> Outcome:
    """The task's captured cloud answers, every row checked for personal data."""
    auto = work.settings.autopilot
    until = time.time()
    found = tasks.samples(work.settings.database_url, work.task, auto, until=until)
    found = found[-auto.max_examples :]
    detector = _detector(work)
    kept: list[Example] = []
    refused: Counter[str] = Counter()
    for sample in found:
        example = tasks.example_of(sample)
        kinds = tasks.personal_data(example, detector)
        if kinds:
            refused.update(kinds)  # never trained on: the detector still sees personal data
            continue
        kept.append(example)
    path = work.dir / COLLECTED
    with open(path, "w", encoding="utf-8") as f:
        for example in kept:
            f.write(json.dumps(example.row(), ensure_ascii=False) + "\n")
    data = {
        "samples": len(found),
        "kept": len(kept),
        "refused_pii": len(found) - len(kept),
        "pii_kinds": dict(refused),
        "from_ts": found[0].ts if found else None,
        "until": until,
        "file": str(path),
        "sha256": _sha256(path),
    }
    if len(kept) < 4:
        return Outcome(data, decision="wait", why=f"{len(kept)} usable examples", stop="waiting",
                       status="waiting")  # fmt: skip
    return Outcome(data, decision="collected", why=f"{len(kept)} of {len(found)} samples kept")


def dataset(work: Work) -> Outcome:
    """Dedupe, filter and split off the held-out examples (seeded by the run)."""
    auto = work.settings.autopilot
    examples = _read(Path(work.data("collect")["file"]))
    seed = int(hashlib.sha256(work.run.id.encode()).hexdigest()[:8], 16)
    out = work.dir / TRAIN
    summary = finish(examples, out, filters=Filters(), holdout=auto.holdout, seed=seed)
    held = holdout_path(out)
    data = {
        "train": summary.train,
        "holdout": summary.holdout,
        "dropped": dict(summary.dropped),
        "train_file": str(out),
        "holdout_file": str(held),
        "train_sha256": _sha256(out),
        "holdout_sha256": _sha256(held) if held.exists() else None,
        "seed": seed,
    }
    if summary.train < 2 or summary.holdout < 2:
        why = f"too few examples after dedupe: train {summary.train}, holdout {summary.holdout}"
        return Outcome(data, decision="wait", why=why, stop="waiting", status="waiting")
    return Outcome(data, decision="built", why="; ".join(summary.lines()))


def finetune(work: Work) -> Outcome:
    """LoRA on the current local base; a run cut short resumes from its checkpoints."""
    from thrifty.train import checkpoint
    from thrifty.train.base import MANIFEST
    from thrifty.train.trainer import FinetuneConfig
    from thrifty.train.trainer import finetune as train

    cfg = work.settings.autopilot.train
    out = work.dir / STUDENT
    if (out / MANIFEST).exists():  # finished before the run was cut short
        manifest = json.loads((out / MANIFEST).read_text())
    else:
        data = work.data("dataset")
        config = FinetuneConfig(
            base=work.settings.local.model,
            data=Path(data["train_file"]),
            out=out,
            eval_data=Path(data["holdout_file"]),
            epochs=cfg.epochs,
            lr=cfg.lr,
            batch_size=cfg.batch_size,
            max_len=cfg.max_len,
            save_every=5,
            resume=checkpoint.latest(out) is not None,
            threads=cfg.threads,
            cache_base=True,  # each cycle trains on the same base: dequantize it once
            lora_r=cfg.lora_r,
            lora_alpha=2 * cfg.lora_r,
        )
        manifest = train(config, work.settings.home, say=lambda text: work.say(f"    {text}"))
    scores = {k: manifest.get(k) for k in ("steps", "final_loss", "eval_loss", "wall_s")}
    data = {"base": manifest["base"], "method": manifest["method"], "out": str(out)}
    return Outcome(data, scores, "trained", f"{manifest['steps']} steps on {manifest['base']}")


def export(work: Work) -> Outcome:
    """GGUF for llama.cpp, added to the model registry under the candidate's name."""
    from thrifty.backends.models import add_model, model_display_name
    from thrifty.train.export import export_gguf, export_lora_gguf

    mode = work.settings.autopilot.train.export
    src = Path(work.data("finetune")["out"])
    name = promote.candidate_name(work.task.key, work.run.id)
    home = work.settings.home
    say = lambda text: work.say(f"    {text}")  # noqa: E731
    if mode == "adapter":
        path, base = export_lora_gguf(src, home, "f16", work.dir / "student.f16.gguf", log=say)
        base = model_display_name(base)  # the name the engine pool knows the base by
        add_model(home, name, path, replace=True, adapter_of=base)
    else:
        path, base = export_gguf(src, home, "q8_0", work.dir / "student.q8_0.gguf", log=say), None
        add_model(home, name, path, replace=True)
    data = {"model": name, "path": str(path), "bytes": path.stat().st_size, "adapter_of": base}
    return Outcome(data, decision="registered model", why=f"{mode} {name}")


def _prompts(examples: list[Example]) -> tuple[list[list[dict[str, Any]]], list[str]]:
    return [e.prompt for e in examples], [e.answer for e in examples]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _score(work: Work, answers: list[str], references: list[str]) -> list[float]:
    metric = METRICS[work.settings.autopilot.metric]
    return [round(metric(a, r), 4) for a, r in zip(answers, references, strict=True)]


def gate(work: Work) -> Outcome:
    """Held-out score against the current model and the cloud; other tasks for regressions."""
    auto = work.settings.autopilot
    rules = auto.gate
    candidate = work.data("export")["model"]
    current = promote.current_model(work.settings.home, work.task)
    held = _read(Path(work.data("dataset")["holdout_file"]))
    prompts, references = _prompts(held)
    cand = _score(work, work.asker.answers(candidate, prompts), references)
    cur = _score(work, work.asker.answers(current, prompts), references)
    others = [tasks.example_of(s) for s in tasks.others(
        work.settings.database_url, work.task, auto, rules.regression_examples)]  # fmt: skip
    detector = _detector(work)
    others = [e for e in others if not tasks.personal_data(e, detector)]
    reg: dict[str, Any] = {"n": len(others)}
    if others:
        o_prompts, o_refs = _prompts(others)
        reg["candidate"] = _mean(_score(work, work.asker.answers(candidate, o_prompts), o_refs))
        reg["local"] = _mean(_score(work, work.asker.answers("local", o_prompts), o_refs))
    cloud = 1.0  # the references are the cloud's own answers
    c, k = _mean(cand), _mean(cur)
    checks = {
        "beats_current": c > k + rules.min_gain,
        "cloud_share": c >= rules.cloud_share * cloud,
        "no_regression": not others or reg["candidate"] >= reg["local"] - rules.regression_margin,
    }
    scores = {
        "metric": auto.metric, "n": len(held), "candidate": round(c, 4), "current": round(k, 4),
        "cloud": cloud, "regression": reg, "checks": checks, "candidate_scores": cand,
        "current_scores": cur,
    }  # fmt: skip
    why = (
        f"candidate {c:.3f} vs {current} {k:.3f} (needs > {k + rules.min_gain:.3f}), "
        f"cloud share {c / cloud:.3f} (needs {rules.cloud_share:g})"
    )
    if others:
        why += f", other tasks {reg['candidate']:.3f} vs local {reg['local']:.3f}"
    data = {
        "candidate": candidate,
        "current": current,
        "holdout_file": work.data("dataset")["holdout_file"],
    }
    if all(checks.values()):
        return Outcome(data, scores, "pass", why)
    failed = ", ".join(name for name, ok in checks.items() if not ok)
    promote.discard(work.settings.home, candidate)
    return Outcome(data, scores, "fail", f"failed {failed}: {why}", stop="rejected")


def register(work: Work) -> Outcome:
    """The candidate is on record; live traffic captured from now on is its test."""
    candidate = work.data("export")["model"]
    current = work.data("gate")["current"]
    work.journal.update_run(work.run.id, candidate=candidate, previous=current)
    data = {"candidate": candidate, "current": current, "since": time.time()}
    return Outcome(data, decision="candidate", why=f"{candidate} against {current}")


def shadow(work: Work) -> Outcome:
    """New live requests of the task, answered again by the candidate and the current model."""
    from thrifty.store.db import connect
    from thrifty.store.outcomes import Outcome as Label
    from thrifty.store.outcomes import add_outcomes, fingerprint

    auto = work.settings.autopilot
    since = work.data("register")["since"]
    candidate, current = work.data("register")["candidate"], work.data("register")["current"]
    detector = _detector(work)
    live = [
        s
        for s in tasks.samples(work.settings.database_url, work.task, auto, since=since)
        if not tasks.personal_data(tasks.example_of(s), detector)
    ][: auto.shadow.max_requests]
    data: dict[str, Any] = {"since": since, "live": len(live), "needed": auto.shadow.min_requests}
    if len(live) < auto.shadow.min_requests:
        why = f"{len(live)} live requests since the candidate, {auto.shadow.min_requests} needed"
        return Outcome(data, decision="wait", why=why, stop="waiting", status="waiting")
    examples = [tasks.example_of(s) for s in live]
    prompts, references = _prompts(examples)
    cand = _score(work, work.asker.answers(candidate, prompts), references)
    cur = _score(work, work.asker.answers(current, prompts), references)
    labels = []
    for sample, example, a, b in zip(live, examples, cand, cur, strict=True):
        text = text_of(example.prompt[-1].get("content"))
        for target, score in ((candidate, a), (current, b)):
            labels.append(
                Label(
                    "shadow", target, fingerprint(work.task.key, text), score >= 0.5, score=score,
                    text=text, task=work.task.key, ref=f"autopilot:{work.run.id}:{sample.id}",
                    request_id=sample.id, tenant=sample.tenant, detail="autopilot",
                )
            )  # fmt: skip
    conn = connect(work.settings.database_url)
    try:
        add_outcomes(conn, labels)
    finally:
        conn.close()
    data["requests"] = [s.id for s in live]
    scores = {
        "metric": auto.metric, "n": len(live), "candidate": round(_mean(cand), 4),
        "current": round(_mean(cur), 4), "candidate_scores": cand, "current_scores": cur,
    }  # fmt: skip
    return Outcome(data, scores, "measured", f"{len(live)} live requests answered twice")


def decide(work: Work) -> Outcome:
    """Two-sided Welch test on the live scores: promote when significant and better."""
    from thrifty.stats import Sample, welch_t

    alpha = work.settings.autopilot.shadow.alpha
    scores = work.scores("shadow")
    candidate, current = work.data("register")["candidate"], work.data("register")["current"]
    a, b = Sample.of(scores["current_scores"]), Sample.of(scores["candidate_scores"])
    test = welch_t(a, b)
    t, df, p = test if test is not None else (0.0, 0.0, 1.0)
    result = {"t": t, "df": df, "p": p, "alpha": alpha, "candidate": b.mean, "current": a.mean}
    said = f"candidate {b.mean:.3f} vs {current} {a.mean:.3f}, p={p:.4g} (alpha {alpha:g})"
    if p < alpha and b.mean > a.mean:
        promote.promote(work.settings.home, work.journal, work.task, work.run.id, candidate)
        work.journal.update_run(work.run.id, decision="promoted")
        return Outcome({"model": candidate}, result, "promote", said)
    promote.discard(work.settings.home, candidate)
    work.journal.update_run(work.run.id, decision="kept")
    why = said + ("; not significant" if p >= alpha else "; the candidate is worse")
    return Outcome({"model": current}, result, "roll back", why)


def retrain(work: Work) -> Outcome:
    """Refit the learned router scorer from every outcome, as `thrifty route train` does."""
    if not work.settings.autopilot.retrain_scorer:
        return Outcome(decision="skipped", why="autopilot.retrain_scorer is off")
    from thrifty.errors import MissingExtra
    from thrifty.gateway.scorer import retrain as refit

    settings = work.settings
    try:
        path, model = refit(settings.database_url, settings.home, settings.cache.semantic_model)
    except (MissingExtra, ValueError) as exc:
        return Outcome(decision="skipped", why=str(exc))
    scores = {"version": model.version, "examples": dict(model.examples)}
    return Outcome({"artifact": str(path)}, scores, "retrained", f"scorer v{model.version}")


STEP_FUNCTIONS: dict[str, Callable[[Work], Outcome]] = {
    "collect": collect, "dataset": dataset, "finetune": finetune, "export": export, "gate": gate,
    "register": register, "shadow": shadow, "decide": decide, "retrain": retrain,
}  # fmt: skip

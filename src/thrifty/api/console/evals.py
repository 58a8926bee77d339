"""Evals and A/B: the latest `thrifty eval` run of each suite × model with its score's 95%
interval, and each configured A/B experiment's variants against control, with intervals and
p-values (`thrifty ab report`'s numbers). A/B reports span every tenant: admins only."""

from __future__ import annotations

import sqlite3

from thrifty.api.console._html import Raw, View, esc, percent, table, usd
from thrifty.api.console.svg import interval_chart
from thrifty.evals import store as eval_store
from thrifty.evals.report import Summary, summarize
from thrifty.store.ab import Mean, Rate, load_ab_report

TEXT = {
    "en": {
        "evals": "Eval runs (the latest of each suite × model)",
        "run": "Run",
        "suite": "Suite",
        "model": "Model",
        "items": "Items",
        "score": "Score [95% interval]",
        "p95": "p95 ms",
        "per_correct": "Cost per correct",
        "no_evals": "No `thrifty eval` run stored yet.",
        "ab": "A/B experiments",
        "variant": "Variant",
        "weight": "Weight",
        "errors": "Error rate",
        "latency": "Latency ms (mean)",
        "fb_score": "Feedback score",
        "thumbs": "Thumbs up",
        "conversion": "Conversion",
        "per_request": "Cost per request",
        "p": "p vs control",
        "ratio": "Sample ratio p",
        "no_ab": "No A/B experiment is configured.",
        "admins": "A/B reports cover every tenant: an admin key sees them.",
    },
    "zh": {
        "evals": "评测运行（每个评测集 × 模型的最近一次）",
        "run": "运行",
        "suite": "评测集",
        "model": "模型",
        "items": "条目",
        "score": "得分 [95% 置信区间]",
        "p95": "p95 毫秒",
        "per_correct": "每个正确答案的花费",
        "no_evals": "还没有保存的 `thrifty eval` 运行。",
        "ab": "A/B 实验",
        "variant": "变体",
        "weight": "权重",
        "errors": "错误率",
        "latency": "延迟毫秒（均值）",
        "fb_score": "反馈评分",
        "thumbs": "点赞率",
        "conversion": "转化率",
        "per_request": "每个请求的花费",
        "p": "相对对照组的 p 值",
        "ratio": "样本比例 p 值",
        "no_ab": "没有配置 A/B 实验。",
        "admins": "A/B 报告涵盖全部租户：需要管理员密钥。",
    },
}


def load_runs(view: View) -> list[Summary]:
    path = view.rt.settings.home / "evals.db"
    if not path.exists():
        return []
    conn = eval_store.connect(path)
    try:
        return [
            summarize(run, eval_store.items(conn, run.id)) for run in eval_store.latest_runs(conn)
        ]
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def _score(s: Summary) -> str:
    if s.run.rated:
        return f"{s.score:.2f} [{s.low:.2f}, {s.high:.2f}]"
    return f"{s.score:.1%} [{s.low:.1%}, {s.high:.1%}]"


def _rate(r: Rate) -> str:
    if r.value is None:
        return "–"
    low, high = r.interval or (None, None)
    text = (
        f"{percent(r.value)} [{percent(low)}, {percent(high)}]"
        if low is not None
        else percent(r.value)
    )
    return text + (f" (p={r.p_value:.3f})" if r.p_value is not None else "")


def _mean(m: Mean, places: int = 1) -> str:
    if m.mean is None:
        return "–"
    text = f"{m.mean:.{places}f}"
    if m.interval is not None:
        text += f" [{m.interval[0]:.{places}f}, {m.interval[1]:.{places}f}]"
    return text + (f" (p={m.p_value:.3f})" if m.p_value is not None else "")


def render(view: View) -> str:
    t = view.words(TEXT)
    runs = load_runs(view)
    parts = [f"<h3>{t['evals']}</h3>"]
    if runs:
        scale = [
            (
                f"{s.run.suite} × {s.run.model}",
                s.score / 10 if s.run.rated else s.score,
                s.low / 10 if s.run.rated else s.low,
                s.high / 10 if s.run.rated else s.high,
            )
            for s in runs
        ]
        parts.append(interval_chart("eval-chart", t["score"], scale))
        parts.append(
            table(
                "evals",
                [
                    t["run"],
                    t["suite"],
                    t["model"],
                    t["items"],
                    t["score"],
                    t["p95"],
                    t["cost"],
                    t["per_correct"],
                ],
                (
                    [
                        s.run.id,
                        s.run.suite,
                        s.run.model,
                        s.n,
                        Raw(f"<span class=score>{_score(s)}</span>"),
                        "–" if s.p95_ms is None else f"{s.p95_ms:,.0f}",
                        "–" if s.cost_nanos is None else usd(s.cost_nanos),
                        "–" if s.cost_per_correct_nanos is None else usd(s.cost_per_correct_nanos),
                    ]
                    for s in runs
                ),
                [f"data-run='{esc(s.run.id)}' data-n={s.n}" for s in runs],
            )
        )
    else:
        parts.append(f"<p id=no-evals>{t['no_evals']}</p>")
    parts.append(f"<h3>{t['ab']}</h3>")
    experiments = view.rt.settings.experiments
    if not view.admin:
        parts.append(f"<p id=ab-admins>{t['admins']}</p>")
        return "".join(parts)
    if not experiments:
        parts.append(f"<p id=no-ab>{t['no_ab']}</p>")
    for name, experiment in sorted(experiments.items()):
        configured = {v: (s.model, s.weight) for v, s in experiment.variants.items()}
        report = load_ab_report(view.rt.settings.database_url, name, view.since, None, configured)
        ratio = report.sample_ratio_p
        parts.append(
            f"<h4>{esc(name)}</h4><p>{t['ratio']}: {'–' if ratio is None else f'{ratio:.3f}'}</p>"
        )
        parts.append(
            table(
                f"ab-{esc(name)}",
                [
                    t["variant"],
                    t["model"],
                    t["weight"],
                    t["requests"],
                    t["errors"],
                    t["latency"],
                    t["fb_score"],
                    t["thumbs"],
                    t["conversion"],
                    t["per_request"],
                ],
                (
                    [
                        v.variant,
                        v.model or "–",
                        "–" if v.weight is None else f"{v.weight:g}",
                        Raw(f"<span class=n>{v.requests}</span>"),
                        _rate(v.error_rate),
                        _mean(v.latency),
                        _mean(v.score, 2),
                        _rate(v.thumbs_up),
                        _rate(v.conversion),
                        "–" if v.cost_per_request is None else f"${v.cost_per_request.normalize()}",
                    ]
                    for v in report.variants
                ),
                [f"data-variant='{esc(v.variant)}'" for v in report.variants],
            )
        )
    return "".join(parts)

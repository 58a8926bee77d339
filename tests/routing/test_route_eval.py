"""`thrifty route eval`: both targets through a real gateway, resumable, outcomes, fixed JSON."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from support import THRIFTY, ThriftyServer, query
from thrifty.evals.routing import Pair, summarize

WEATHER = [
    "今天天气怎么样？", "Will it rain tomorrow?", "明天会下雨吗？", "Is it sunny?",
    "这周末天气好吗？", "Do I need an umbrella?", "今天风大吗？", "Is it going to snow?",
]  # fmt: skip
REFUND = [
    "How do I get a refund?", "我想退货，怎么办？", "退款多久能到账？", "Where is my refund?",
    "Can I get my money back?", "我的退款还没到", "怎么申请退款？", "Do you refund gift cards?",
]  # fmt: skip


def suite(path: Path) -> Path:
    rows = [{"suite": {"name": "support", "scorer": "contains", "max_tokens": 16}}]
    rows += [{"id": f"w{i}", "prompt": q, "expected": "sunny"} for i, q in enumerate(WEATHER)]
    rows += [{"id": f"r{i}", "prompt": q, "expected": "refund"} for i, q in enumerate(REFUND)]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    return path


def test_summary_keys_and_figures_on_known_pairs() -> None:
    # two items the local model gets right (cheap), two it gets wrong; the scorer knows which
    pairs = [
        Pair("a", 0.9, 1.0, 1.0, 1, 10), Pair("b", 0.8, 1.0, 1.0, 1, 10),
        Pair("c", 0.2, 0.0, 1.0, 1, 10), Pair("d", 0.1, 0.0, 1.0, 1, 10),
    ]  # fmt: skip
    result = summarize(pairs, 0.95)
    assert set(result) == {"points", "apgr", "cpt", "at_quality"}
    assert set(result["points"][0]) == {
        "threshold", "cloud_share", "quality", "quality_vs_cloud", "cost_usd",
    }  # fmt: skip
    assert set(result["cpt"]) == {"50", "80", "95"}
    assert set(result["at_quality"]) == {
        "target", "threshold", "cloud_share", "quality_vs_cloud", "cost_saving_x",
    }  # fmt: skip
    shares = [p["cloud_share"] for p in result["points"]]
    assert shares == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert [p["quality"] for p in result["points"]] == [0.5, 0.75, 1.0, 1.0, 1.0]
    assert result["cpt"] == {"50": 0.25, "80": 0.5, "95": 0.5}
    at = result["at_quality"]
    assert (at["threshold"], at["cloud_share"], at["quality_vs_cloud"]) == (0.8, 0.5, 1.0)
    assert at["cost_saving_x"] == round(40 / 22, 4)  # all-cloud 4x10 against 2x1 + 2x10
    assert result["apgr"] == 0.75  # trapezoids: 0.0625 + 0.1875 + 0.25 + 0.25 (random: 0.5)


def _stored(home: Path, run_id: str) -> int:
    path = home / "evals.db"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as conn:
        try:
            return int(
                conn.execute("SELECT COUNT(*) FROM items WHERE run_id = ?", (run_id,)).fetchone()[0]
            )
        except sqlite3.OperationalError:
            return 0


def test_route_eval_resumes_after_an_interruption_and_reports(
    two_fakes: Any, fake_local: Any, fake_cloud: Any, tmp_path: Path
) -> None:
    fake_local.set_answers({q: "It is sunny." for q in WEATHER} | {q: "No idea." for q in REFUND})
    fake_cloud.set_answers({q: "It is sunny." for q in WEATHER} | {q: "A refund." for q in REFUND})
    fake_local.set_mode("slow", delay_s=0.2)
    fake_local.reset()
    path = suite(tmp_path / "support.jsonl")
    with ThriftyServer(config=two_fakes(), home=tmp_path / "home") as server:
        env = {**os.environ, **{k: v for k, v in server.env.items() if k.startswith("THRIFTY_")}}
        command = [
            *THRIFTY, "route", "eval", "--suite", str(path), "--local", "local",
            "--cloud", "deepseek-chat", "--base-url", server.base_url,
        ]  # fmt: skip
        first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        run_id = None
        while time.monotonic() < deadline and first.poll() is None:
            if (tmp_path / "home" / "evals.db").exists():
                with sqlite3.connect(tmp_path / "home" / "evals.db") as conn:
                    try:
                        row = conn.execute("SELECT id FROM runs").fetchone()
                    except sqlite3.OperationalError:
                        row = None
                if row is not None:
                    run_id = row[0]
                    if _stored(tmp_path / "home", run_id) >= 3:
                        break
            time.sleep(0.05)
        assert run_id is not None and run_id.endswith("-local")
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=30)
        assert first.returncode == 130, err
        assert b"Run the same command again to resume" in err
        interrupted = _stored(tmp_path / "home", run_id)
        assert 3 <= interrupted < 16

        fake_local.set_mode("ok")
        plot = tmp_path / "routing.png"
        second = subprocess.run(
            [*command, "--train-split", "0.5", "--format", "json", "--plot", str(plot)],
            env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert second.returncode == 0, second.stderr
        # resumed: the local items stored before the interruption were not asked again
        asked = fake_local.stats()["requests"]
        assert asked <= 16 + 1, asked  # at most the one in flight when it was interrupted
        assert asked >= 16
        result = json.loads(second.stdout)
        assert set(result) == {"points", "apgr", "cpt", "at_quality"}
        assert plot.stat().st_size > 1000
        points = result["points"]
        assert points[-1]["cloud_share"] == 1.0 and points[-1]["quality"] == 1.0
        assert all(0 <= p["cloud_share"] <= 1 for p in points)
        assert result["at_quality"]["target"] == 0.95
        # all stored: a third run asks nothing, and sweeps the configured (heuristic) scorer
        third = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert third.returncode == 0, third.stderr
        assert fake_local.stats()["requests"] == asked
        assert "16 items" in third.stdout and "APGR" in third.stdout and "CPT" in third.stdout
        assert "100.0%" in third.stdout  # the all-cloud point
        outcomes = query(server.database_url, "SELECT * FROM outcomes WHERE source = 'eval'")
        # each sweep is kept for the console's curve: the --format json one as it was printed
        sweeps = query(server.database_url, "SELECT * FROM route_evals ORDER BY id")
    assert len(sweeps) == 2 and json.loads(sweeps[0]["result"]) == result
    assert (sweeps[1]["local"], sweeps[1]["cloud"]) == ("local", "deepseek-chat")
    assert len(outcomes) == 32  # 16 items x 2 targets
    by_target: dict[str, list[int]] = {}
    for row in outcomes:
        by_target.setdefault(row["target"], []).append(row["ok"])
    assert sum(by_target["local"]) == 8 and sum(by_target["deepseek-chat"]) == 16

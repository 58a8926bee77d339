"""`thrifty eval run` against the fake upstream: answers known in advance (``echo:TEXT``).

Runs, resumes after an interrupt (a test hook raising KeyboardInterrupt, and a real SIGINT to a
`thrifty eval run` process) without asking any item twice, and records thrifty's route and cost.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from fakes.upstream import FakeUpstream, start_upstream
from support import ThriftyServer
from thrifty.cli import main
from thrifty.evals import store
from thrifty.evals.endpoint import Endpoint
from thrifty.evals.runner import RunConfig, run_suite
from thrifty.evals.suites import SuiteError, custom, load_suite

DATA = Path(__file__).resolve().parent.parent / "data"
ECHO = DATA / "eval_echo.jsonl"  # 8 items, 5 of them answered right by an echo
ECHO_RIGHT = 5


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with start_upstream() as up:
        yield up


def write_suite(path: Path, n: int) -> Path:
    rows = [{"suite": {"name": "count", "scorer": "exact"}}]
    rows += [{"id": f"q{i}", "prompt": f"echo:{i}", "expected": str(i)} for i in range(n)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def asked(up: FakeUpstream) -> list[str]:
    """The last user message of every completion request the upstream saw since its reset."""
    return [body["messages"][-1]["content"] for body in up.stats()["bodies"]]


def test_custom_suite_header_sets_system_prompt_few_shot_and_scorer(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    rows = [
        {
            "suite": {
                "name": "caps",
                "scorer": "contains",
                "system": "One word.",
                "few_shot": [
                    {"role": "user", "content": "Capital of Italy?"},
                    {"role": "assistant", "content": "Rome"},
                ],
                "max_tokens": 8,
            }
        },
        {"prompt": "Capital of France?", "expected": "Paris"},
        {
            "prompt": "Capital of Japan?",
            "choices": ["Kyoto", "Tokyo"],
            "expected": "B",
            "scorer": "choice",
        },
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    suite = custom(path)
    assert suite.name == "caps" and suite.max_tokens == 8 and not suite.rated
    first, second = suite.items
    assert [m["role"] for m in first.messages] == ["system", "user", "assistant", "user"]
    assert first.scorer == "contains" and second.scorer == "choice"
    assert "A. Kyoto\nB. Tokyo" in second.messages[-1]["content"]
    path.write_text('{"prompt": "x", "expected": "y", "scorer": "fuzzy"}\n')
    with pytest.raises(SuiteError, match="unknown scorer"):
        custom(path)


def test_builtin_suites_load_offline_from_their_packages() -> None:
    sizes = {name: len(load_suite(name).items) for name in ("humaneval", "gsm8k", "mmlu")}
    assert sizes == {"humaneval": 164, "gsm8k": 1319, "mmlu": 14044}
    mt = load_suite("mt-bench")
    assert len(mt.items) == 80 and mt.rated and all(len(i.followups) == 1 for i in mt.items)


def test_run_then_resume_after_an_interrupt_asks_no_item_twice(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    suite = custom(write_suite(tmp_path / "count.jsonl", 10))
    conn = store.connect(tmp_path / "evals.db")
    config = RunConfig("r1", suite, "count.jsonl", "fake-chat", Endpoint(upstream.url))
    seen: list[str] = []

    def stop_after_four(result: store.ItemResult) -> None:
        seen.append(result.item_id)
        if len(seen) == 4:
            raise KeyboardInterrupt

    upstream.reset()
    with pytest.raises(KeyboardInterrupt):
        run_suite(conn, config, on_item=stop_after_four)
    run = store.get_run(conn, "r1")
    assert run is not None and run.status == "interrupted"
    assert store.done_items(conn, "r1") == {"q0", "q1", "q2", "q3"}

    upstream.reset()
    config.concurrency = 3
    outcome = run_suite(conn, config)
    assert (outcome.skipped, outcome.scored, outcome.complete) == (4, 6, True)
    assert sorted(asked(upstream)) == sorted(f"echo:{i}" for i in range(4, 10))
    results = store.items(conn, "r1")
    assert [r.item_id for r in results] == [f"q{i}" for i in range(10)]
    assert all(r.passed for r in results)
    assert store.get_run(conn, "r1").status == "done"  # type: ignore[union-attr]
    conn.close()


def _stored(db: Path, run_id: str) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(db)
    try:
        return int(
            conn.execute("SELECT COUNT(*) FROM items WHERE run_id = ?", (run_id,)).fetchone()[0]
        )
    except sqlite3.OperationalError:  # tables not created yet
        return 0
    finally:
        conn.close()


def _as_in_a_terminal() -> None:
    """Ctrl-C's default action in the child, whatever the test runner set for itself."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_leaves_a_resumable_run(tmp_path: Path, upstream: FakeUpstream) -> None:
    """A real SIGINT to `thrifty eval run`, then the same command again."""
    suite = write_suite(tmp_path / "count.jsonl", 12)
    env = {**os.environ, "THRIFTY_HOME": str(tmp_path)}
    env.pop("THRIFTY_CONFIG", None)
    command = [
        sys.executable, "-m", "thrifty.cli", "eval", "run", "--suite", str(suite),
        "--model", "fake-chat", "--base-url", upstream.url, "--run-id", "sig",
    ]  # fmt: skip
    upstream.reset()
    upstream.set_mode("slow", delay_s=0.15)
    try:
        proc = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=_as_in_a_terminal,
        )
        deadline = time.monotonic() + 30
        while (
            _stored(tmp_path / "evals.db", "sig") < 3
            and proc.poll() is None
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        upstream.set_mode("hang")  # the rest wait: Ctrl-C lands mid-run however fast it went
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        upstream.set_mode("ok")
    found = sorted(p.name for p in tmp_path.iterdir())
    assert proc.returncode == 130, f"{found}: {err.decode()[-2000:]}"
    assert b"--run-id sig" in err
    done_before = _stored(tmp_path / "evals.db", "sig")
    assert 3 <= done_before < 12

    upstream.reset()
    again = subprocess.run(command, env=env, capture_output=True, timeout=60)
    assert again.returncode == 0, again.stderr.decode()
    assert f"{12 - done_before} scored now, {done_before} already done".encode() in again.stdout
    assert len(asked(upstream)) == 12 - done_before
    conn = store.connect(tmp_path / "evals.db")
    assert len(store.items(conn, "sig")) == 12  # one row per item: the key is (run, item)
    conn.close()


def test_through_thrifty_records_route_and_cost(tmp_path: Path, upstream: FakeUpstream) -> None:
    config = {
        "upstreams": [
            {"name": "fake", "base_url": upstream.url, "models": {"deepseek-chat": "deepseek-chat"}}
        ]
    }
    (tmp_path / "serve").mkdir()
    with ThriftyServer("--no-local", config=config, home=tmp_path / "serve") as server:
        result = CliRunner().invoke(
            main,
            [
                "eval",
                "run",
                "--suite",
                str(ECHO),
                "--model",
                "deepseek-chat",
                "--base-url",
                server.base_url,
                "--run-id",
                "via",
                "--concurrency",
                "2",
            ],
            env={"THRIFTY_HOME": str(tmp_path), "THRIFTY_CONFIG": None},
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        logged = server.wait_rows("model = 'deepseek-chat'")
    conn = store.connect(tmp_path / "evals.db")
    results = store.items(conn, "via")
    conn.close()
    assert len(results) == 8 and sum(bool(r.passed) for r in results) == ECHO_RIGHT
    assert {r.route for r in results} == {"deepseek-chat"}  # x-thrifty-route: the upstream alias
    assert all(r.cost_nanos is not None and r.cost_nanos > 0 for r in results)
    assert all(r.completion_tokens > 0 and r.latency_ms > 0 for r in results)
    assert logged  # the gateway metered the same requests
    assert "62.5%" in result.output  # the report printed after the run


def test_a_judge_without_a_rating_leaves_items_for_a_resume(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    path = tmp_path / "judged.jsonl"
    rows = [{"suite": {"scorer": "judge"}}, {"prompt": "echo:hello"}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    result = CliRunner().invoke(
        main,
        [
            "eval",
            "run",
            "--suite",
            str(path),
            "--model",
            "m",
            "--judge-model",
            "j",
            "--base-url",
            upstream.url,
            "--run-id",
            "judged",
        ],
        env={"THRIFTY_HOME": str(tmp_path), "THRIFTY_CONFIG": None},
    )
    assert result.exit_code == 1
    assert "no 1-10 rating" in result.output and "--run-id judged" in result.output

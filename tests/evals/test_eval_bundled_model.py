"""End to end: GSM8K, MMLU and HumanEval, a few items each, against `thrifty serve` on the bundled
model. Asserts that the runs complete and are stored with routes and costs, not a score level."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from support import ThriftyServer
from thrifty.cli import main
from thrifty.evals import store

ITEMS = 3


@pytest.mark.slow
def test_builtin_suites_on_the_bundled_model(tmp_path: Path) -> None:
    env = {"THRIFTY_HOME": str(tmp_path), "THRIFTY_CONFIG": None}
    with ThriftyServer(config={"local": {"parallel": 2, "ctx_size": 2048}}) as server:
        for suite in ("gsm8k", "mmlu", "humaneval"):
            result = CliRunner().invoke(
                main,
                [
                    "eval",
                    "run",
                    "--suite",
                    suite,
                    "--model",
                    "local",
                    "--limit",
                    str(ITEMS),
                    "--concurrency",
                    "2",
                    "--max-tokens",
                    "64",
                    "--base-url",
                    server.base_url,
                    "--run-id",
                    f"e2e-{suite}",
                ],
                env=env,
                catch_exceptions=False,
            )
            assert result.exit_code == 0, result.output
    conn = store.connect(tmp_path / "evals.db")
    for suite in ("gsm8k", "mmlu", "humaneval"):
        run = store.get_run(conn, f"e2e-{suite}")
        assert run is not None and run.status == "done"
        results = store.items(conn, run.id)
        assert len(results) == ITEMS
        assert all(r.route == "local" and r.cost_nanos is not None for r in results)
        assert all(r.completion_tokens > 0 and r.passed is not None for r in results)
    conn.close()
    summary = CliRunner().invoke(main, ["eval", "report"], env=env)
    assert summary.exit_code == 0 and "e2e-humaneval" in summary.output

"""Every shell and Python snippet of README.md (English and 简体中文) runs, as written, against a
real `thrifty serve`, the way a newcomer would run it after `make run`.

What the newcomer has and the test gives each snippet alike: the virtual environment's `thrifty`,
`python` and `pip` first on PATH (`source .venv/bin/activate`), the server of `make run` (here
on a free port, with its home), and, for lines that add a cloud with `DEEPSEEK_API_KEY=sk-...`,
a stand-in for DeepSeek's API (the fake upstream) through `DEEPSEEK_BASE_URL`.

A short, reviewed list of lines is not run (each with its reason) and a few are adjusted
(`SUBSTITUTIONS`, each with its reason). A snippet that fails names itself: README line,
section and command, with its output. New README lines are run by default: nobody has to
remember to add them here.

Runs once per `make test`: on the SQLite pass (the snippets do not depend on the store's
database; see conftest.py).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from fakes.upstream import FakeUpstream, start_upstream
from readme.snippets import Snippet, extract
from support import ROOT, ThriftyServer

pytestmark = pytest.mark.slow

README = ROOT / "README.md"
STAND_IN_KEY = "sk-stand-in-for-deepseek"

# substring of a command -> why it is not run (reviewed: keep this short)
EXCLUDED: dict[str, str] = {
    "make test": "runs the whole suite, this test included",
    "make lint": "ruff and mypy; `make test` runs them first",
    "-m pytest": "runs tests; `make test` runs them all",
    "benchmarks/": "a benchmark runs for minutes; each prints its own comparison",
    "thrifty finetune": "long training (minutes to hours on a CPU); tests/train trains tiny models",
    "runs/intent": "needs the fine-tuned student of the finetune line (long training)",
    "intent-student": "needs the fine-tuned student of the finetune line (long training)",
    "127.0.0.1:8002": "asks the fine-tuned student's server (long training)",
    "--from-prompts prompts.jsonl": "needs your prompt file and a teacher answering each prompt",
}

# (pattern, replacement, why) applied to every command and Python snippet, in order
SUBSTITUTIONS: list[tuple[str, str, str]] = [
    (r"\.venv/bin/", "", "the virtual environment's bin directory is first on PATH"),
    (r"--limit \d+", "--limit 2", "an eval of 2 items shows the same as one of 50, in seconds"),
    (r"\bsk-\.\.\.", STAND_IN_KEY, "the stand-in cloud's key, sent to the stand-in"),
    (
        r"^thrifty chat ",
        "thrifty chat --max-tokens 48 ",
        "an answer cut at 48 tokens shows the same, in seconds on a shared CPU",
    ),
    (
        r"^pip install",
        "python -m pip install --dry-run --no-index",
        "offline: proves that what the line names is what the test environment installed",
    ),
]

# a line with `make run` is served by the server this test starts: the same `thrifty serve`
SERVED_BY_FIXTURE = "make run"


def adapt(text: str, port: int) -> str:
    for pattern, replacement, _why in SUBSTITUTIONS:
        text = re.sub(pattern, replacement, text, flags=re.M)
    return text.replace("127.0.0.1:8000", f"127.0.0.1:{port}")


def excluded(snippet: Snippet) -> str | None:
    return next((why for part, why in EXCLUDED.items() if part in snippet.text), None)


SNIPPETS = extract(README)
RUN = [
    s
    for s in SNIPPETS
    if s.kind in ("shell", "python") and not excluded(s) and SERVED_BY_FIXTURE not in s.text
]


def _unique(snippets: list[Snippet]) -> list[Snippet]:
    """The English and Chinese quick starts share commands: run each distinct one once."""
    seen: dict[str, Snippet] = {}
    for s in snippets:
        seen.setdefault(f"{s.kind}:{s.text.strip()}:{s.expect}", s)
    return list(seen.values())


@pytest.fixture(scope="module")
def stand_in() -> Iterator[FakeUpstream]:
    with start_upstream() as upstream:
        yield upstream


# the server runs with the configuration the README's sections show before their commands:
# capture on (Distillation), so that `distill collect --from-log` finds the cloud answers that
# the quick start's `thrifty chat -m deepseek-chat` lines produced
SERVER_CONFIG = {"local": {"parallel": 2}, "distill": {"capture_tenants": ["*"]}}


@pytest.fixture(scope="module")
def server(stand_in: FakeUpstream) -> Iterator[ThriftyServer]:
    env = {"DEEPSEEK_API_KEY": STAND_IN_KEY, "DEEPSEEK_BASE_URL": stand_in.url}
    with ThriftyServer(config=SERVER_CONFIG, env=env) as running:
        yield running


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where snippets run: files they write land here, `examples/` is the repository's."""
    path = tmp_path_factory.mktemp("readme")
    (path / "examples").symlink_to(ROOT / "examples")
    return path


def run_env(server: ThriftyServer, stand_in: FakeUpstream) -> dict[str, str]:
    env = {
        **server.env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "THRIFTY_PORT": str(server.port),
        "THRIFTY_URL": server.base_url,
        "DEEPSEEK_API_KEY": STAND_IN_KEY,
        "DEEPSEEK_BASE_URL": stand_in.url,
    }
    env.pop("THRIFTY_CONFIG", None)  # the CLI reads the same home and database as the server
    return env


def report(snippet: Snippet, command: str, done: subprocess.CompletedProcess[str]) -> str:
    return (
        f"README snippet failed: {snippet.name}\n"
        f"ran: {command}\nexit status {done.returncode}\n"
        f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
    )


@pytest.mark.parametrize("snippet", _unique(RUN), ids=lambda s: f"L{s.line}")
def test_readme_snippet_runs(
    snippet: Snippet, server: ThriftyServer, stand_in: FakeUpstream, workdir: Path
) -> None:
    env = run_env(server, stand_in)
    text = adapt(snippet.text, server.port)
    if snippet.kind == "python":
        args = [sys.executable, "-c", text]
    else:
        args = ["bash", "-o", "pipefail", "-c", text]
    done = subprocess.run(
        args, cwd=workdir, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    if "--fail-under" in text:  # a CI gate: exit 1 below the bar is the line working
        assert done.returncode in (0, 1), report(snippet, text, done)
        assert done.returncode == 0 or "FAIL" in done.stderr, report(snippet, text, done)
    else:
        assert done.returncode == 0, report(snippet, text, done)
    if snippet.kind == "python":
        assert done.stdout.strip(), f"{report(snippet, text, done)}\n(it printed nothing)"
    printed = normalized(done.stdout)
    for line in snippet.expect:
        if line.strip(". …"):  # "..." marks lines left out of the transcript
            expected = normalized(line)
            assert expected in printed, f"{report(snippet, text, done)}\n(expected: {line!r})"


def normalized(text: str) -> str:
    """Printed text compared without its money amounts (prices change with the hour: DeepSeek's
    off-peak rates) or its column spacing."""
    text = re.sub(r"\$\d[\d,]*(?:\.\d+)?", "$N", text)
    return "\n".join(" ".join(line.split()) for line in text.splitlines())


def test_yaml_snippets_are_valid_configuration() -> None:
    from thrifty.config import Settings

    for snippet in (s for s in SNIPPETS if s.kind == "yaml"):
        data = yaml.safe_load(snippet.text)
        try:
            Settings.model_validate({"home": "/tmp/unused", **data})
        except Exception as exc:  # any failure is the README's
            message = f"README snippet is not valid config: {snippet.name}\n{exc}"
            raise AssertionError(message) from None


def test_the_exclusions_are_few_and_each_still_matches_a_line() -> None:
    assert len(EXCLUDED) <= 10, "the exclusions are a short, reviewed list"
    commands = [s.text for s in SNIPPETS if s.kind == "shell"]
    stale = [part for part in EXCLUDED if not any(part in c for c in commands)]
    assert not stale, f"exclusions that match no README line any more: {stale}"
    assert len(RUN) >= 10  # the extraction really finds the README's snippets
    assert any("简体中文" in s.section or "快速开始" in s.section for s in RUN)

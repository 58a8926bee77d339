"""`thrifty finetune` on the command line: help, clean errors, a tiny run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from thrifty import train
from thrifty.cli import main


def _invoke(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["finetune", *args], env={"THRIFTY_HOME": str(tmp_path)})
    return result.exit_code, result.output


def test_help_shows_methods_and_examples(tmp_path: Path) -> None:
    code, output = _invoke(tmp_path, "--help")
    assert code == 0
    assert "lora|progressive|kd" in output and "Examples:" in output and "--resume" in output


def test_a_bad_method_is_a_usage_error(tmp_path: Path) -> None:
    code, output = _invoke(tmp_path, "--base", "x", "--data", "d", "--out", "o", "--method", "sft")
    assert code == 2 and "Invalid value for '--method'" in output


def test_a_missing_data_file_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    absent = tmp_path / "absent.jsonl"
    code, output = _invoke(tmp_path, "--base", "smollm2-135m", "--data", str(absent), "--out", "o")
    assert code == 1
    assert output == f"Error: {absent}: no such file\n"


def test_kd_without_a_teacher_says_so(tmp_path: Path, train_file: Path) -> None:
    code, output = _invoke(
        tmp_path, "--base", "x", "--data", str(train_file), "--out", "o", "--method", "kd"
    )
    assert code == 1 and "--method kd needs --teacher" in output


def test_an_unknown_base_names_the_choices(tmp_path: Path, train_file: Path) -> None:
    code, output = _invoke(tmp_path, "--base", "nope", "--data", str(train_file), "--out", "o")
    assert code == 1 and "no local model 'nope'" in output and "smollm2-135m" in output


def test_without_the_train_extra_it_gives_the_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(train, "_EXTRA_MODULES", ("torch", "no_such_module_xyz"))
    code, output = _invoke(tmp_path, "--base", "x", "--data", "d", "--out", "o")
    assert code == 1
    assert output == (
        "Error: fine-tuning needs no_such_module_xyz (the train extra): "
        "pip install 'thrifty[train]'\n"
    )


def test_a_tiny_run_prints_its_summary(tiny: Path, train_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, output = _invoke(
        tmp_path, "--base", str(tiny), "--data", str(train_file), "--out", str(out),
        "--batch-size", "8", "--epochs", "2", "--eval-data", str(train_file),
    )  # fmt: skip
    assert code == 0, output
    assert "lora: 4 steps in" in output and "held-out loss" in output
    assert json.loads((out / "thrifty-train.json").read_text())["args"]["batch_size"] == 8

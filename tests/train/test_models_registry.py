"""`thrifty models add|remove|list` and the registry `resolve_model` reads."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from thrifty.backends.llamacpp import LlamaServerBackend
from thrifty.backends.models import (
    ModelUnavailable,
    add_model,
    registered,
    registered_chat_template,
    remove_model,
    resolve_model,
)
from thrifty.cli import main
from thrifty.config import LocalSettings


def _gguf(path: Path) -> Path:
    path.write_bytes(b"GGUF" + b"\0" * 60)  # enough of a header for the registry's check
    return path


def _run(home: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        main, list(args), env={"THRIFTY_HOME": str(home), "THRIFTY_CONFIG": ""}
    )
    return result.exit_code, result.output


def test_add_list_resolve_remove(tmp_path: Path) -> None:
    home = tmp_path / "home"
    model = _gguf(tmp_path / "student.q4_k_m.gguf")
    code, out = _run(home, "models", "add", "intent-student", str(model))
    assert code == 0, out
    assert resolve_model("intent-student", home) == model.resolve()
    code, out = _run(home, "models", "list")
    assert code == 0, out
    line = next(line for line in out.splitlines() if line.startswith("intent-student"))
    assert str(model.resolve()) in line
    code, out = _run(home, "models", "remove", "intent-student")
    assert code == 0, out
    assert registered(home) == {}
    with pytest.raises(ModelUnavailable, match="no local model 'intent-student'"):
        resolve_model("intent-student", home)
    code, out = _run(home, "models", "remove", "intent-student")
    assert code == 1 and "no registered model" in out


def test_add_refuses_what_it_cannot_serve(tmp_path: Path) -> None:
    home = tmp_path / "home"
    model = _gguf(tmp_path / "m.gguf")
    not_gguf = tmp_path / "weights.safetensors"
    not_gguf.write_bytes(b"{}")
    for name, path, why in [
        ("local", model, "built-in"),
        ("smollm2-135m", model, "built-in"),
        ("a/b", model, "bad model name"),
        ("x", not_gguf, "not a GGUF"),
    ]:
        code, out = _run(home, "models", "add", name, str(path))
        assert code == 1 and why in out, out
    assert _run(home, "models", "add", "m", str(model))[0] == 0
    code, out = _run(home, "models", "add", "m", str(model))
    assert code == 1 and "already registered" in out
    assert _run(home, "models", "add", "m", str(model), "--replace")[0] == 0


def test_configured_names_win_and_a_moved_file_is_reported(tmp_path: Path) -> None:
    home = tmp_path
    registered_file = _gguf(tmp_path / "a.gguf")
    configured_file = _gguf(tmp_path / "b.gguf")
    add_model(home, "student", registered_file, chat_template="chatml")
    assert resolve_model("student", home, {"student": str(configured_file)}) == configured_file
    assert registered_chat_template("student", home, {"student": str(configured_file)}) is None
    registered_file.unlink()
    with pytest.raises(ModelUnavailable, match="is gone"):
        resolve_model("student", home)
    assert remove_model(home, "student") and not remove_model(home, "student")


def test_the_engine_uses_a_registered_chat_template(tmp_path: Path) -> None:
    add_model(tmp_path, "student", _gguf(tmp_path / "s.gguf"), chat_template="chatml")
    engine = LlamaServerBackend("student", LocalSettings(model="student"), tmp_path)
    assert engine.chat_template == "chatml"
    override = LocalSettings(model="student", chat_template="llama3")
    assert LlamaServerBackend("student", override, tmp_path).chat_template == "llama3"

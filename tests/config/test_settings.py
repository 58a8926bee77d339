"""Settings: sources and their order, the DeepSeek shortcut, the generated example file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from thrifty.cli import main
from thrifty.config import Settings, load_settings
from thrifty.config_doc import example_yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("THRIFTY_CONFIG", "DEEPSEEK_API_KEY", "DEEPSEEK_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray ./thrifty.yaml


def test_example_file_is_the_generated_one_and_loads() -> None:
    text = (ROOT / "thrifty.example.yaml").read_text()
    assert text == example_yaml() + "\n", "run: thrifty config example > thrifty.example.yaml"
    Settings(**yaml.safe_load(text))


def test_yaml_then_env_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("port: 9000\nlocal: {model: gemma3-270m, parallel: 2}\n")
    assert load_settings(path).port == 9000
    monkeypatch.setenv("THRIFTY_LOCAL__PARALLEL", "8")
    settings = load_settings(path, port=9100)
    local = settings.local
    assert (settings.port, local.model, local.parallel) == (9100, "gemma3-270m", 8)


def test_unknown_keys_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("lcoal: {model: x}\n")
    result = CliRunner().invoke(main, ["config", "show", "-c", str(path)])
    assert result.exit_code == 1 and "lcoal" in result.output


def test_deepseek_key_alone_adds_the_upstream(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().upstreams == []
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-secret-value")
    monkeypatch.setenv("DEEPSEEK_BASE_URL", "http://127.0.0.1:9/v1")
    (upstream,) = Settings().upstreams
    assert upstream.base_url == "http://127.0.0.1:9/v1"
    assert upstream.targets() == {
        "deepseek-chat": ("deepseek-v4-flash", {"thinking": {"type": "disabled"}}),
        "deepseek-reasoner": ("deepseek-v4-flash", {"thinking": {"type": "enabled"}}),
        "deepseek-v4-flash": ("deepseek-v4-flash", {}),
        "deepseek-v4-pro": ("deepseek-v4-pro", {}),
    }
    assert upstream.api_key() == "sk-secret-value"
    shown = CliRunner().invoke(main, ["config", "show"])
    assert shown.exit_code == 0
    assert "sk-secret-value" not in shown.output and "api_key: set" in shown.output


def test_help_on_every_verb() -> None:
    runner = CliRunner()
    top = runner.invoke(main, ["--help"])
    assert top.exit_code == 0
    for verb in ("serve", "chat", "models", "config", "route", "tco"):
        assert verb in top.output
        assert runner.invoke(main, [verb, "--help"]).exit_code == 0

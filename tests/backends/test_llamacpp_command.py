"""How the local engine is started and what it adds to requests (no process started here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from thrifty.backends.base import Reply
from thrifty.backends.llamacpp import LlamaServerBackend
from thrifty.backends.models import QA_STOP, QA_TEMPLATE
from thrifty.config import LocalSettings

FAKE_BINARY = "/bin/true"  # found and executable; never run


def engine(tmp_path: Path, **settings: object) -> LlamaServerBackend:
    local = LocalSettings(llama_server=FAKE_BINARY, **settings)  # type: ignore[arg-type]
    return LlamaServerBackend("m", local, tmp_path)


def test_command_line(tmp_path: Path) -> None:
    command = engine(tmp_path, parallel=3, ctx_size=1000, threads=2).command("/m.gguf")
    assert command[0] == FAKE_BINARY
    joined = " ".join(command)
    assert "--model /m.gguf" in joined and "--host 127.0.0.1" in joined
    assert "--parallel 3" in joined and "--ctx-size 3000" in joined  # per slot x slots
    assert "--threads 2" in joined and "--jinja" in joined
    assert "--chat-template" not in command  # smollm2 carries its own template


def test_base_model_gets_a_question_answer_layout(tmp_path: Path) -> None:
    gemma = engine(tmp_path, model="gemma3-270m")
    command = gemma.command("/g.gguf")
    assert command[command.index("--chat-template") + 1] == QA_TEMPLATE
    body = gemma._prepare("chat", {"messages": [{"role": "user", "content": "hi"}]})
    assert body["stop"] == list(QA_STOP)
    assert gemma._prepare("chat", {"messages": [], "stop": ["x"]})["stop"] == ["x"]


@pytest.mark.parametrize(
    ("messages", "added"),
    [
        ([{"role": "user", "content": "hi"}], True),
        ([{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}], False),
        ([{"role": "developer", "content": "Be terse."}, {"role": "user", "content": "hi"}], False),
    ],
)
def test_default_system_prompt_only_when_none_given(
    tmp_path: Path, messages: list[dict[str, str]], added: bool
) -> None:
    body = {"messages": messages}
    prepared = engine(tmp_path)._prepare("chat", body)
    assert (prepared["messages"][0]["content"] == "You are a helpful assistant.") is added
    assert body["messages"] is messages  # the client's body is not changed in place
    assert engine(tmp_path, system_prompt=None)._prepare("chat", body) is body


def test_an_embedding_model_runs_with_embedding_and_answers_embeddings_only(
    tmp_path: Path,
) -> None:
    from thrifty.backends import build_registry
    from thrifty.backends.pool import model_specs
    from thrifty.config import Settings
    from thrifty.errors import InvalidRequest

    minilm = engine(tmp_path)
    assert "--embedding" not in minilm.command("/e.gguf")
    minilm.embedding = True
    assert "--embedding" in minilm.command("/e.gguf")
    with pytest.raises(InvalidRequest) as err:
        minilm._local_call("chat", {"messages": []})
    assert err.value.param == "model" and "embedding model" in str(err.value)
    call = minilm._local_call("embeddings", {"input": "hi", "dimensions": 3})
    assert "max_tokens" not in call.body  # local.default_max_tokens is for generation
    with pytest.raises(InvalidRequest) as err:  # llama-server ignores dimensions: checked here
        call.reply(Reply({"model": "m", "data": [{"embedding": [0.1, 0.2]}]}))
    assert err.value.param == "dimensions"

    entry = {"path": "/e.gguf", "embedding": True}
    settings = Settings(home=tmp_path, local={"models": {"minilm": entry}})
    assert model_specs(settings.local, tmp_path)["minilm"].embedding
    registry = build_registry(settings)
    assert registry.resolve("minilm", "embeddings") is not None
    assert registry.resolve("smollm2-135m", "embeddings") is None
    assert registry.targets["minilm"].capabilities == frozenset({"embeddings"})
    default = registry.resolve("local", "embeddings")
    assert default is not None and default.model == "use-multilingual-v3"  # in-process encoder
    named = Settings(home=tmp_path, local=settings.local, embeddings={"local_model": "minilm"})
    assert build_registry(named).resolve("local", "embeddings").model == "minilm"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="neither an encoder"):
        Settings(home=tmp_path, embeddings={"local_model": "smollm2-135m"})

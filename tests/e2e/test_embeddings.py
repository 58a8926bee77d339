"""`/v1/embeddings` end to end: the local encoder as `model: local`, an upstream embedder (another
thrifty), with the official openai SDK and LangChain, through keys, limits, privacy, cache and
metering."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openai
import pytest
from click.testing import CliRunner

from support import ThriftyServer, fresh_database, on_postgres
from thrifty.cli import main

pytestmark = pytest.mark.slow


def cli(home: Path, db: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(main, list(args), env={"THRIFTY_HOME": str(home), **db})
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


@pytest.fixture(scope="module")
def cloud() -> Iterator[ThriftyServer]:
    """The stand-in cloud embedder: a thrifty with only its local embedder."""
    with ThriftyServer(config={"local": {"enabled": False}}) as srv:
        yield srv


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embed-home")


@pytest.fixture(scope="module")
def db() -> dict[str, str]:
    """One database for the module's keys and server (module fixtures start before the
    per-test database of conftest is chosen)."""
    return {"THRIFTY_DATABASE_URL": fresh_database()} if on_postgres() else {}


@pytest.fixture(scope="module")
def keys(home: Path, db: dict[str, str]) -> dict[str, str]:
    return {
        "admin": cli(home, db, "keys", "create", "--tenant", "acme", "--role", "admin"),
        "local_only": cli(home, db, "keys", "create", "--tenant", "acme", "--models", "local"),
        "limited": cli(home, db, "keys", "create", "--tenant", "beta", "--rpm", "2"),
    }


@pytest.fixture(scope="module")
def server(
    cloud: ThriftyServer, home: Path, db: dict[str, str], keys: dict[str, str]
) -> Iterator[ThriftyServer]:
    config = {
        "local": {"enabled": False},
        "upstreams": [
            {"name": "embedcloud", "base_url": cloud.base_url, "models": {"cloud-embed": "local"}}
        ],
        "privacy": {"on_pii": "mask"},  # masking would spoil an embedding: it stays local
    }
    with ThriftyServer(config=config, home=home, env=db) as srv:
        yield srv


def sdk(server: ThriftyServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0, timeout=120)


def test_local_embeddings_batched_float_and_base64(
    server: ThriftyServer, keys: dict[str, str]
) -> None:
    client = sdk(server, keys["admin"])
    texts = ["the cat sat on the mat", "猫坐在垫子上", "quarterly revenue grew 8%"]
    raw = client.embeddings.with_raw_response.create(model="local", input=texts)
    result = raw.parse()
    assert raw.headers["x-thrifty-route"] == "local"
    vectors = np.array([d.embedding for d in result.data])
    assert vectors.shape == (3, 512) and [d.index for d in result.data] == [0, 1, 2]
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-3)
    cosine = vectors @ vectors.T
    assert cosine[0, 1] > cosine[0, 2]  # the translation is nearer than the unrelated text
    assert result.usage.prompt_tokens > 0
    encoded = client.embeddings.create(model="local", input=texts[0], encoding_format="base64")
    b64 = encoded.data[0].embedding
    assert isinstance(b64, str)  # as asked: little-endian float32, base64
    decoded = np.frombuffer(base64.b64decode(b64), dtype="<f4")
    assert np.allclose(decoded, vectors[0], atol=1e-5)
    client.embeddings.create(model="local", input="x", dimensions=512)
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="local", input="x", dimensions=256)
    assert err.value.body["param"] == "dimensions"  # type: ignore[index]


def test_upstream_passthrough_metered_and_cached(
    server: ThriftyServer, cloud: ThriftyServer, keys: dict[str, str]
) -> None:
    client = sdk(server, keys["admin"])
    text = "a sentence for the cloud embedder, number 41"
    first = client.embeddings.with_raw_response.create(model="cloud-embed", input=[text, "two"])
    assert first.headers["x-thrifty-route"] == "cloud-embed"
    assert len(first.parse().data) == 2 and len(first.parse().data[0].embedding) == 512
    row = server.row(first.headers["x-thrifty-request-id"])
    assert row["endpoint"] == "embeddings" and row["route"] == "cloud-embed"
    assert row["prompt_tokens"] > 0
    assert cloud.wait_rows("endpoint = ?", ("embeddings",))  # it reached the upstream
    again = client.embeddings.with_raw_response.create(model="cloud-embed", input=[text, "two"])
    assert again.headers["x-thrifty-route"] == "cache"
    assert again.parse().data[0].embedding == first.parse().data[0].embedding


def test_personal_data_bound_for_the_cloud_stays_local(
    server: ThriftyServer, cloud: ThriftyServer, keys: dict[str, str]
) -> None:
    client = sdk(server, keys["admin"])
    before = len(cloud.rows("endpoint = ?", ("embeddings",)))
    raw = client.embeddings.with_raw_response.create(
        model="cloud-embed", input="Contact me at zhang.wei@example.com or 13812345678"
    )
    assert raw.headers["x-thrifty-route"] == "local"
    assert "local only" in raw.headers["x-thrifty-reason"]
    assert len(raw.parse().data[0].embedding) == 512
    assert len(cloud.rows("endpoint = ?", ("embeddings",))) == before  # nothing left


def test_keys_and_limits_apply(server: ThriftyServer, keys: dict[str, str]) -> None:
    with pytest.raises(openai.AuthenticationError):
        sdk(server, "sk-wrong").embeddings.create(model="local", input="hi")
    with pytest.raises(openai.PermissionDeniedError):
        sdk(server, keys["local_only"]).embeddings.create(model="cloud-embed", input="hi")
    sdk(server, keys["local_only"]).embeddings.create(model="local", input="hi")
    limited = sdk(server, keys["limited"])
    limited.embeddings.create(model="local", input="one")
    limited.embeddings.create(model="local", input="two")
    with pytest.raises(openai.RateLimitError):
        limited.embeddings.create(model="local", input="three")
    with pytest.raises(openai.NotFoundError) as err:
        sdk(server, keys["admin"]).embeddings.create(model="nope", input="hi")
    assert "local" in err.value.message and "cloud-embed" in err.value.message


def test_langchain_openai_embeddings(server: ThriftyServer, keys: dict[str, str]) -> None:
    from langchain_openai import OpenAIEmbeddings

    embedder = OpenAIEmbeddings(
        model="local",
        base_url=server.base_url,
        api_key=keys["admin"],  # type: ignore[arg-type]
        check_embedding_ctx_length=False,  # no tiktoken: the texts go as they are
        max_retries=0,
    )
    docs = embedder.embed_documents(["北京是中国的首都", "Paris is the capital of France"])
    query = embedder.embed_query("What is the capital of China?")
    assert len(docs) == 2 and len(query) == 512
    assert np.dot(query, docs[0]) > 0.3
    # through the upstream, another thrifty with the same encoder: the same text, the same vector
    cloud = OpenAIEmbeddings(
        model="cloud-embed",
        base_url=server.base_url,
        api_key=keys["admin"],  # type: ignore[arg-type]
        check_embedding_ctx_length=False,
        max_retries=0,
    )
    far = cloud.embed_documents(["Paris is the capital of France", "The cat sleeps"])
    assert len(far) == 2 and len(far[0]) == 512
    assert np.dot(far[0], docs[1]) > 0.99


def test_models_lists_only_what_the_key_may_use(
    server: ThriftyServer, keys: dict[str, str]
) -> None:
    everything = {m.id for m in sdk(server, keys["admin"]).models.list()}
    restricted = sdk(server, keys["local_only"])
    mine = {m.id for m in restricted.models.list()}
    assert "cloud-embed" in everything and "cloud-embed" not in mine
    assert mine <= everything
    with pytest.raises(openai.NotFoundError):
        restricted.models.retrieve("cloud-embed")

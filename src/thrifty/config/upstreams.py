"""Cloud and other OpenAI-compatible upstreams."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from thrifty.config._base import _Section

DEEPSEEK_ALIASES = ("deepseek-chat", "deepseek-reasoner")
DEEPSEEK_MODELS = ("deepseek-v4-flash", "deepseek-v4-pro")
DEFAULT_DEEPSEEK_URL = "https://api.deepseek.com"

# Fields the gateway itself sets or owns in every upstream request: a model mapping may not
# carry them (the client's messages, our streaming framing, our own extensions).
_RESERVED_FIELDS = frozenset({"model", "messages", "prompt", "stream", "stream_options", "thrifty"})


def deepseek_models() -> dict[str, str | UpstreamModel]:
    """DeepSeek's API as it is since V4 (2026-04-24): two models, thinking switched per request.

    ``deepseek-chat`` and ``deepseek-reasoner`` stay as the names clients use; DeepSeek retired
    them upstream after 2026-07-24 15:59 UTC, so they are sent as V4-Flash with thinking off / on,
    which is what DeepSeek mapped them to while they lived.
    """
    return {
        "deepseek-chat": UpstreamModel(model="deepseek-v4-flash", thinking={"type": "disabled"}),
        "deepseek-reasoner": UpstreamModel(model="deepseek-v4-flash", thinking={"type": "enabled"}),
        **{name: name for name in DEEPSEEK_MODELS},
    }


class UpstreamModel(BaseModel):
    """An upstream model name plus request fields sent with it (e.g. DeepSeek's ``thinking``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    model: str = Field(description="The model name the upstream knows.")

    @model_validator(mode="after")
    def _no_reserved(self) -> UpstreamModel:
        taken = sorted(_RESERVED_FIELDS & set(self.model_extra or {}))
        if taken:
            raise ValueError(f"a model mapping may not set {', '.join(taken)}")
        return self

    @property
    def params(self) -> dict[str, Any]:
        """The extra request fields, merged into the body under the client's own fields."""
        return dict(self.model_extra or {})


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
    models: dict[str, str | UpstreamModel] = Field(
        description="Model names clients use -> the upstream's model name, or {model: NAME, "
        "FIELD: VALUE, ...} to send extra request fields with it, e.g. {model: deepseek-v4-flash, "
        "thinking: {type: disabled}}; a field the client sends itself wins over the mapping's."
    )
    connect_timeout_s: float = Field(10, description="TCP connect timeout.", gt=0)
    timeout_s: float = Field(
        300,
        description="Deadline of a whole non-streamed request (reasoning models answer slowly); "
        "past it the next target is tried.",
        gt=0,
    )
    stream_idle_timeout_s: float = Field(
        60, description="Longest gap between two events of a streamed answer.", gt=0
    )
    max_retries: int = Field(2, description="Retries on connect errors, 429 and 5xx.", ge=0)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    api: Literal["openai", "anthropic"] = Field(
        "openai",
        description="The API the upstream speaks: openai (chat completions), or anthropic "
        "(Anthropic's Messages API at <base_url>/v1/messages; chat only).",
    )
    capabilities: (
        list[Literal["tools", "vision", "json_schema", "embeddings", "audio", "files"]] | None
    ) = Field(
        None,
        description="What its models can do (tools, vision, json_schema, embeddings, audio, "
        "files); requests needing more go elsewhere or get a 400. Default: all of them.",
    )

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, v: str) -> str:
        return v.rstrip("/")

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def targets(self) -> dict[str, tuple[str, Mapping[str, Any]]]:
        """Each client-facing name -> (upstream model name, extra request fields)."""
        out: dict[str, tuple[str, Mapping[str, Any]]] = {}
        for alias, spec in self.models.items():
            out[alias] = (spec, {}) if isinstance(spec, str) else (spec.model, spec.params)
        return out

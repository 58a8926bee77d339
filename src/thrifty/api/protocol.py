"""OpenAI request shapes, for validation and the OpenAPI schema.

Unknown fields are allowed and passed upstream (providers have extensions, e.g. DeepSeek's);
what we check is what would otherwise fail deep inside a backend, or silently.
Numbers and flags are strict (`"max_tokens": "8"` is a 400, as OpenAI answers): the body is
forwarded as the client sent it, so a value coerced here would still reach the backend as text.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class TextPart(_Open):
    type: Literal["text"]
    text: str


class OtherPart(_Open):
    type: Literal["image_url", "input_audio", "file", "refusal"]


ContentPart = Annotated[TextPart | OtherPart, Field(discriminator="type")]


class ChatMessage(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _needs_content(self) -> ChatMessage:
        if self.content is None and self.role != "assistant":
            raise ValueError(f"a {self.role} message needs content")
        return self


class FunctionDefinition(_Open):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionTool(_Open):
    type: Literal["function"]
    function: FunctionDefinition


class CustomTool(_Open):
    type: Literal["custom"]
    custom: dict[str, Any]


Tool = Annotated[FunctionTool | CustomTool, Field(discriminator="type")]


class StreamOptions(_Open):
    include_usage: bool = Field(False, strict=True)


class ResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class _Sampling(_Open):
    model: str | None = Field(None, description="local, an upstream alias, or auto.")
    stream: bool = Field(False, strict=True)
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, strict=True, ge=1)
    temperature: float | None = Field(None, strict=True, ge=0, le=2)
    top_p: float | None = Field(None, strict=True, ge=0, le=1)
    n: int | None = Field(
        None,
        strict=True,
        ge=1,
        le=128,
        description="Choices to return (the local model: up to its slots).",
    )
    stop: str | list[str] | None = None
    seed: int | None = Field(None, strict=True)
    presence_penalty: float | None = Field(None, strict=True, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, strict=True, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    user: str | None = None

    @model_validator(mode="after")
    def _stop_list(self) -> _Sampling:
        if isinstance(self.stop, list) and len(self.stop) > 4:
            raise ValueError("stop takes at most 4 sequences")
        return self


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, strict=True, ge=1)
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = Field(None, strict=True)
    logprobs: bool | None = Field(None, strict=True)
    top_logprobs: int | None = Field(None, strict=True, ge=0, le=20)

    @field_validator("top_logprobs")
    @classmethod
    def _top_needs_logprobs(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and not info.data.get("logprobs"):
            raise ValueError("top_logprobs requires logprobs to be true")
        return value


class CompletionRequest(_Sampling):
    prompt: str | list[str] | list[int] = Field(description="Text to complete.")
    echo: bool | None = Field(None, strict=True)
    suffix: str | None = None

    @model_validator(mode="after")
    def _prompt_not_empty(self) -> CompletionRequest:
        if isinstance(self.prompt, list) and not self.prompt:
            raise ValueError("prompt must not be empty")
        return self


class EmbeddingRequest(_Open):
    model: str | None = Field(None, description="local (the local embedder) or an upstream alias.")
    input: str | list[str] | list[int] | list[list[int]] = Field(
        description="Text, a list of texts, or token ids (upstream embedders only)."
    )
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None

    @model_validator(mode="after")
    def _input_not_empty(self) -> EmbeddingRequest:
        if isinstance(self.input, list) and not self.input:
            raise ValueError("input must not be empty")
        return self

"""The OpenAPI document for the HTTP surface, built from the pydantic request models."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic.json_schema import models_json_schema

from thrifty import __version__
from thrifty.api.feedback import FeedbackRequest
from thrifty.api.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _post(summary: str, body_ref: str) -> dict[str, Any]:
    errors = {
        str(code): {"description": text, **_json({"$ref": "#/components/schemas/Error"})}
        for code, text in [
            (400, "invalid request"),
            (404, "model not found"),
            (413, "request too large"),
            (429, "rate limited"),
            (502, "upstream failed"),
            (503, "overloaded or not ready"),
            (504, "upstream timed out"),
        ]
    }
    return {
        "post": {
            "summary": summary,
            "requestBody": {"required": True, **_json({"$ref": body_ref})},
            "responses": {
                "200": {
                    "description": "the completion (or an SSE stream when stream=true)",
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        "text/event-stream": {"schema": {"type": "string"}},
                    },
                },
                **errors,
            },
        }
    }


def _get(summary: str, ok: str = "ok") -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": {"200": {"description": ok}}}}


@cache
def openapi_schema() -> dict[str, Any]:
    _, defs = models_json_schema(
        [
            (ChatCompletionRequest, "validation"),
            (CompletionRequest, "validation"),
            (EmbeddingRequest, "validation"),
            (FeedbackRequest, "validation"),
        ],
        ref_template="#/components/schemas/{model}",
    )
    schemas = {**defs.get("$defs", {}), "Error": _ERROR}
    readyz = _get("ready once the local model is loaded")
    readyz["get"]["responses"]["503"] = {"description": "not ready yet"}
    model = _get("one model")
    model["get"]["parameters"] = [
        {"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    model["get"]["responses"]["404"] = {"description": "no such model"}
    usage = _get("Requests, tokens, cost, baseline and saving, as `thrifty usage --format json`")
    usage["get"]["parameters"] = [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
        for name in ("since", "until", "by", "currency")
    ]
    usage["get"]["responses"]["400"] = {"description": "bad parameter"}
    error = _json({"$ref": "#/components/schemas/Error"})
    feedback = {
        "post": {
            "summary": "Feedback on an answer (score, thumbs, conversion) for A/B reports",
            "requestBody": {
                "required": True,
                **_json({"$ref": "#/components/schemas/FeedbackRequest"}),
            },
            "responses": {
                "200": {"description": "stored", **_json({"type": "object"})},
                "400": {"description": "invalid body", **error},
                "403": {"description": "this key may not call models", **error},
                "404": {"description": "no such request in your tenant's log", **error},
                "413": {"description": "request too large", **error},
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "thrifty", "version": __version__},
        "paths": {
            "/v1/chat/completions": _post(
                "Chat completion", "#/components/schemas/ChatCompletionRequest"
            ),
            "/v1/completions": _post("Text completion", "#/components/schemas/CompletionRequest"),
            "/v1/embeddings": _post("Embeddings", "#/components/schemas/EmbeddingRequest"),
            "/v1/models": _get("Models this gateway serves"),
            "/v1/models/{model}": model,
            "/v1/usage": usage,
            "/v1/feedback": feedback,
            "/healthz": _get("liveness"),
            "/readyz": readyz,
            "/metrics": _get("Prometheus metrics"),
        },
        "components": {"schemas": schemas},
    }

"""Telemetry: OpenTelemetry traces over OTLP/HTTP, and the request log line's format."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from thrifty.config._base import _Section


class TelemetrySettings(_Section):
    otlp_endpoint: str | None = Field(
        None,
        description="OpenTelemetry collector's base URL (like OTEL_EXPORTER_OTLP_ENDPOINT, e.g. "
        "http://127.0.0.1:4318): one span per request and one per stage, backend attempt and "
        "metering go to <url>/v1/traces over OTLP/HTTP, off the request path; an incoming "
        "`traceparent` is continued and `x-thrifty-trace-id` names the trace. Unset: no tracing "
        "(and no cost).",
    )
    service_name: str = Field("thrifty", description="The traces' service.name.")
    export_interval_s: float = Field(
        1.0, description="Longest a finished span waits before it is sent.", gt=0
    )
    max_queued_traces: int = Field(
        4096,
        description="Finished traces kept while the collector is slow or down; more are dropped "
        "(and logged).",
        ge=1,
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="json: one JSON line per request on stderr (request id, trace id, route, "
        "reason, cost, tokens, latency, status; never prompt text or keys).",
    )

    @field_validator("otlp_endpoint")
    @classmethod
    def _base_url(cls, v: str | None) -> str | None:
        if not v:
            return None
        if not v.startswith(("http://", "https://")):
            raise ValueError("otlp_endpoint must be an http:// or https:// URL")
        return v.rstrip("/")

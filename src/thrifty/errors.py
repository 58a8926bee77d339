"""One exception tree; each error knows its HTTP status and OpenAI's error envelope.

Raise these anywhere below the API layer; `api` turns them into
``{"error": {"message", "type", "param", "code"}}`` in one place.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson


class ThriftyError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def envelope(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def body(self) -> bytes:
        return orjson.dumps(self.envelope())


class InvalidRequest(ThriftyError):
    status = 400
    type = "invalid_request_error"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class ContentPolicyViolation(InvalidRequest):
    code = "content_policy_violation"


class AuthenticationError(ThriftyError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDenied(ThriftyError):
    status = 403
    type = "invalid_request_error"
    code = "permission_denied"


class ModelNotFound(ThriftyError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class NotFound(ThriftyError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class MethodNotAllowed(ThriftyError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class PayloadTooLarge(ThriftyError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class UnsupportedMediaType(ThriftyError):
    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"


class RateLimited(ThriftyError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class Overloaded(ThriftyError):
    """The local engine's queue is full."""

    status = 503
    type = "server_error"
    code = "engine_overloaded"


class RouteRejected(PermissionDenied):
    code = "route_rejected"


class UpstreamError(ThriftyError):
    """An upstream failed in a way the client cannot fix (5xx, bad JSON, refused connection)."""

    status = 502
    type = "upstream_error"
    code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, headers=headers)
        self.retryable = retryable  # worth another attempt (connect errors, 429, 5xx)
        self.retry_after = retry_after  # seconds the upstream asked us to wait


class UpstreamUnavailable(UpstreamError):
    status = 503
    code = "upstream_unavailable"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class UpstreamRateLimited(UpstreamError):
    status = 429
    type = "rate_limit_error"
    code = "upstream_rate_limited"


class MissingExtra(RuntimeError):
    """An optional dependency is not installed; the message is the install hint."""

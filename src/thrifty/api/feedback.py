"""`POST /v1/feedback`: what a client says about an answer, for A/B reports and routing.

Body: ``{"request_id", "score"?: number, "thumbs"?: "up" | "down", "converted"?: bool,
"comment"?: string}`` with at least one of the four. ``request_id`` is the answer's
``x-thrifty-request-id``; it must be a request of the caller's tenant (404 otherwise, so one
tenant cannot probe another's ids). A request may get several feedbacks: reports count the
latest value of each field. A bad body is a 400 in OpenAI's error shape; a viewer key (which may
not call models) gets a 403.

Feedback with thumbs or a conversion on a routed request is also a labelled outcome for the
router (`thrifty.store.outcomes`: source ``ab`` when an experiment served it, else ``feedback``).

The request log is written in batches, so feedback sent right after the answer may find its row
still queued: a miss flushes the log and looks once more before answering 404.

Thumbs on an answer that came from the semantic cache are also evidence for its learned
thresholds: thumbs down says the cached question was not the same one.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from thrifty.api.body import read_json_object, validation_error
from thrifty.api.responses import json_response
from thrifty.context import may
from thrifty.errors import NotFound, PermissionDenied
from thrifty.store.ab import Feedback, add_feedback, feedback_outcome
from thrifty.store.db import connect

if TYPE_CHECKING:
    from thrifty.api.app import Runtime

MAX_BODY_BYTES = 64 * 1024
_NO_KEY_TENANT = "default"  # the tenant of requests served without keys (RequestContext's)


class FeedbackRequest(BaseModel):
    """The body of `POST /v1/feedback`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    request_id: str = Field(
        min_length=1, max_length=256, description="The answer's x-thrifty-request-id."
    )
    score: float | None = Field(
        None, allow_inf_nan=False, description="A rating on your own scale (e.g. 1-5)."
    )
    thumbs: Literal["up", "down"] | None = Field(None, description="Thumbs up or down.")
    converted: bool | None = Field(
        None, description="Whether the answer led to the outcome you measure."
    )
    comment: str | None = Field(None, max_length=4000, description="Free text, kept as is.")

    @model_validator(mode="after")
    def _says_something(self) -> FeedbackRequest:
        if (self.score, self.thumbs, self.converted, self.comment) == (None, None, None, None):
            raise ValueError("give at least one of score, thumbs, converted, comment")
        return self

    def feedback(self) -> Feedback:
        thumbs = None if self.thumbs is None else self.thumbs == "up"
        return Feedback(self.request_id, self.score, thumbs, self.converted, self.comment)


async def read_body(request: Request) -> FeedbackRequest:
    data = await read_json_object(request, MAX_BODY_BYTES)
    try:
        return FeedbackRequest.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def feedback_endpoint(rt: Runtime) -> Callable[[Request], Awaitable[Response]]:
    """The `/v1/feedback` handler over ``rt``'s request log (behind `Authenticator.guard`)."""

    def store(feedback: Feedback, tenant: str, key_id: str | None) -> int | None:
        conn = connect(rt.settings.database_url)
        try:
            row = add_feedback(conn, feedback, tenant, key_id)
            if row is None:
                rt.request_log.flush()  # the request's row may still be queued
                row = add_feedback(conn, feedback, tenant, key_id)
            if row is not None:  # a routed request's feedback is a labelled outcome
                features = rt.router.recall(feedback.request_id)
                known = (
                    None
                    if features is None
                    else (features.text, features.task, dict(features.cheap))
                )
                feedback_outcome(conn, feedback, tenant, row, known)
            return row
        finally:
            conn.close()

    async def feedback(request: Request) -> Response:
        key = getattr(request.state, "key", None)
        if key is not None and not may(key, "call"):
            raise PermissionDenied(f"a {key.role} key may not give feedback (call is needed)")
        body = await read_body(request)
        tenant = _NO_KEY_TENANT if key is None else key.tenant
        key_id = None if key is None else key.key_id
        row = await run_in_threadpool(store, body.feedback(), tenant, key_id)
        if row is None:
            raise NotFound(
                f"no request {body.request_id!r} in this tenant's request log",
                param="request_id",
            )
        if body.thumbs is not None:  # on a semantic hit: evidence for the cache's thresholds
            rt.cache.feedback(tenant, body.request_id, body.thumbs == "up")
        return json_response(
            {
                "object": "feedback",
                "id": row,
                "request_id": body.request_id,
                "created": int(time.time()),
            }
        )

    return feedback

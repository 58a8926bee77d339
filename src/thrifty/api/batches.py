"""OpenAI's Batch API: `/v1/files` (JSONL, validated line by line), `/v1/batches`, the runner.

Every line of a batch is an ordinary request through the gateway (keys, limits, privacy, cache,
metering: the request log has a row for it), made with the batch creator's key. The runner
takes work only when it is cheap: lines for the local model wait for an idle slot (interactive
requests go first), and a batch bound for a cloud model waits for that model's cheapest price
window inside its completion window (`batches.clock: now` starts every batch at once).
State lives in the store (`thrifty.store.batches`), so a restarted or another replica resumes a
batch without running any finished line again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from thrifty.api.body import read_json_object, validation_error
from thrifty.api.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from thrifty.api.responses import error_response, json_response
from thrifty.backends.base import Endpoint
from thrifty.context import RequestContext
from thrifty.costs.pricebook import PriceBook
from thrifty.costs.usage import TokenUsage
from thrifty.errors import InvalidRequest, NotFound, PayloadTooLarge, ThriftyError
from thrifty.store.batches import BatchLine, BatchStore

if TYPE_CHECKING:
    from thrifty.api.app import Runtime
    from thrifty.context import KeyPolicy

logger = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMAS: dict[str, type[BaseModel]] = {
    "/v1/chat/completions": ChatCompletionRequest,
    "/v1/completions": CompletionRequest,
    "/v1/embeddings": EmbeddingRequest,
}
ENDPOINTS: dict[str, Endpoint] = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
}
WINDOWS = {"24h": 24 * 3600.0}
_STEP = timedelta(minutes=1)  # price windows start on a minute (HH:MM)


class BatchRequest(BaseModel):
    """The body of `POST /v1/batches` (other fields are ignored, as OpenAI's extensions are)."""

    input_file_id: str = Field(min_length=1, description="The id of an uploaded batch file.")
    endpoint: Literal["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]
    completion_window: Literal["24h"]
    metadata: dict[str, Any] | None = None
    x_thrifty: dict[str, Any] | None = Field(
        None, description='{"start": "now"}: run at once, not in the cheapest price window.'
    )


def parse_jsonl(content: str, max_lines: int) -> tuple[list[dict[str, Any]], list[str]]:
    """The lines of a batch input file and what is wrong with them (by line number)."""
    lines: list[dict[str, Any]] = []
    problems: list[str] = []
    seen: set[str] = set()
    for number, raw in enumerate(content.splitlines(), 1):
        if not raw.strip():
            continue
        if len(lines) >= max_lines:
            problems.append(f"more than {max_lines} requests in one file")
            break
        try:
            item = orjson.loads(raw)
        except orjson.JSONDecodeError:
            problems.append(f"line {number}: not valid JSON")
            continue
        if not isinstance(item, dict):
            problems.append(f"line {number}: not a JSON object")
            continue
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            problems.append(f"line {number}: custom_id must be a non-empty string")
        elif custom_id in seen:
            problems.append(f"line {number}: custom_id {custom_id!r} is used twice")
        else:
            seen.add(custom_id)
        if item.get("method") != "POST":
            problems.append(f"line {number}: method must be POST")
        if not isinstance(item.get("url"), str) or item["url"] not in SCHEMAS:
            problems.append(f"line {number}: url must be one of {', '.join(SCHEMAS)}")
        if not isinstance(item.get("body"), dict):
            problems.append(f"line {number}: body must be a JSON object")
        item["_line"] = number
        lines.append(item)
    if not lines and not problems:
        problems.append("the file holds no requests")
    return lines, problems


def body_problem(url: str, body: dict[str, Any], max_tokens: int | None) -> dict[str, Any] | None:
    """The error a line's body would get from the endpoint, or None when it is valid."""
    try:
        SCHEMAS[url].model_validate(body)
    except ValidationError as exc:
        error = validation_error(exc)
        return {"code": "invalid_request", "message": error.message, "param": error.param}
    if body.get("stream"):
        return {"code": "invalid_request", "message": "a batch request cannot stream",
                "param": "stream"}  # fmt: skip
    return None


@contextlib.asynccontextmanager
async def _form(request: Request, limit: int) -> AsyncIterator[FormData]:
    """The multipart form; one that cannot be parsed is a 400 that says so."""
    try:
        form = await request.form(max_part_size=limit)
    except HTTPException as exc:  # Starlette's answer to a malformed multipart body
        raise InvalidRequest(
            f"the body is not a multipart form with fields purpose and file: {exc.detail}",
            param="file",
        ) from None
    try:
        yield form
    finally:
        await form.close()


class BatchService:
    """The endpoints and the runner; one per gateway process."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.settings = runtime.settings.batches
        self._pool: ThreadPoolExecutor | None = None
        self.store: BatchStore | None = None
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._runner: asyncio.Task[None] | None = None
        self.prices = PriceBook.load(runtime.settings.prices)

    def routes(self) -> list[Route]:
        return [
            Route("/v1/files", self.upload, methods=["POST"]),
            Route("/v1/files", self.list_files, methods=["GET"]),
            Route("/v1/files/{file_id}", self.get_file, methods=["GET"]),
            Route("/v1/files/{file_id}", self.delete_file, methods=["DELETE"]),
            Route("/v1/files/{file_id}/content", self.file_content, methods=["GET"]),
            Route("/v1/batches", self.create, methods=["POST"]),
            Route("/v1/batches", self.list_batches, methods=["GET"]),
            Route("/v1/batches/{batch_id}", self.get_batch, methods=["GET"]),
            Route("/v1/batches/{batch_id}/cancel", self.cancel, methods=["POST"]),
        ]

    async def start(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="thrifty-batches")
        self.store = await self._db(lambda: BatchStore(self.rt.settings.database_url))
        self._runner = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if self.store is not None:
            store = self.store
            await self._db(store.close)
            self.store = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    async def _db(self, fn: Callable[[], T]) -> T:
        if self._pool is None:
            raise ThriftyError("the batch store is not open")
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    def _st(self) -> BatchStore:
        if self.store is None:
            raise ThriftyError("the batch store is not open")
        return self.store

    def _caller(self, request: Request) -> tuple[str, KeyPolicy | None]:
        key = self.rt.auth.authenticate(request.headers)
        return (key.tenant if key is not None else "default"), key

    # -- files ------------------------------------------------------------------------------------

    async def upload(self, request: Request) -> Response:
        try:
            tenant, _ = self._caller(request)
            limit = self.settings.max_file_bytes
            length = request.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > limit + 65536:
                raise PayloadTooLarge(f"the file is over {limit} bytes")
            async with _form(request, limit) as form:
                purpose = form.get("purpose")
                upload = form.get("file")
                if purpose != "batch":
                    raise InvalidRequest("purpose must be batch", param="purpose")
                if upload is None or isinstance(upload, str):
                    raise InvalidRequest("send the file as multipart field `file`", param="file")
                raw = await upload.read()
                filename = upload.filename or "batch.jsonl"
            if len(raw) > limit:
                raise PayloadTooLarge(f"the file is over {limit} bytes")
            try:
                content = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidRequest("the file is not UTF-8 text", param="file") from None
            _, problems = parse_jsonl(content, self.settings.max_lines)
            if problems:
                shown = "; ".join(problems[:10])
                more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
                raise InvalidRequest(f"invalid batch file: {shown}{more}", param="file")
            st = self._st()
            made = await self._db(lambda: st.add_file(tenant, "batch", filename, content))
        except ThriftyError as exc:
            return error_response(exc)
        return json_response(made)

    async def list_files(self, request: Request) -> Response:
        try:
            tenant, _ = self._caller(request)
        except ThriftyError as exc:
            return error_response(exc)
        purpose = request.query_params.get("purpose")
        st = self._st()
        files = await self._db(lambda: st.files(tenant, purpose))
        return json_response({"object": "list", "data": files, "has_more": False})

    async def get_file(self, request: Request) -> Response:
        return await self._file_op(request, lambda st, t, fid: st.file(fid, t))

    async def file_content(self, request: Request) -> Response:
        try:
            tenant, _ = self._caller(request)
        except ThriftyError as exc:
            return error_response(exc)
        file_id = request.path_params["file_id"]
        st = self._st()
        content = await self._db(lambda: st.file_content(file_id, tenant))
        if content is None:
            return error_response(NotFound(f"no file {file_id}", param="file_id"))
        return Response(content.encode(), media_type="application/jsonl")

    async def delete_file(self, request: Request) -> Response:
        def delete(st: BatchStore, tenant: str, file_id: str) -> dict[str, Any] | None:
            if not st.delete_file(file_id, tenant):
                return None
            return {"id": file_id, "object": "file", "deleted": True}

        return await self._file_op(request, delete)

    async def _file_op(self, request: Request, op: Callable[..., dict | None]) -> Response:
        try:
            tenant, _ = self._caller(request)
        except ThriftyError as exc:
            return error_response(exc)
        file_id = request.path_params["file_id"]
        st = self._st()
        found = await self._db(lambda: op(st, tenant, file_id))
        if found is None:
            return error_response(NotFound(f"no file {file_id}", param="file_id"))
        return json_response(found)

    # -- batches ----------------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        try:
            tenant, key = self._caller(request)
            body = await read_json_object(request, 1_000_000)
            try:
                asked = BatchRequest.model_validate(body)
            except ValidationError as exc:
                raise validation_error(exc) from None
            endpoint, window, metadata = asked.endpoint, asked.completion_window, asked.metadata
            file_id = asked.input_file_id
            st = self._st()
            content = await self._db(lambda: st.file_content(file_id, tenant))
            if content is None:
                raise NotFound(f"no file {file_id}", param="input_file_id")
            items, problems = parse_jsonl(content, self.settings.max_lines)
            if problems:
                raise InvalidRequest(f"invalid batch file: {problems[0]}", param="input_file_id")
            lines, invalid = [], {}
            for item in items:
                number = item["_line"]
                lines.append(BatchLine(number, item["custom_id"], item["body"]))
                if item["url"] != endpoint:
                    invalid[number] = {"code": "invalid_request", "param": "url", "line": number,
                                       "message": f"url {item['url']} is not the batch's "
                                       f"endpoint {endpoint}"}  # fmt: skip
                    continue
                problem = body_problem(endpoint, item["body"], None)
                if problem is not None:
                    invalid[number] = {**problem, "line": number}
            not_before, described = self._window(lines, window, body)
            batch_id = await self._db(
                lambda: st.add_batch(
                    tenant=tenant,
                    key_id=key.key_id if key is not None else None,
                    endpoint=endpoint,
                    input_file_id=file_id,
                    completion_window=window,
                    window_s=WINDOWS[window],
                    not_before=not_before,
                    run_window=described,
                    metadata=metadata,
                    lines=lines,
                    invalid=invalid,
                )
            )
            made = await self._db(lambda: st.batch(batch_id))
        except ThriftyError as exc:
            return error_response(exc)
        return json_response(made)

    def _window(
        self, lines: list[BatchLine], window: str, body: dict[str, Any]
    ) -> tuple[float, str]:
        """When the batch may start, and the window in words (the cost report shows it)."""
        now = datetime.now(UTC)
        asked = (body.get("x_thrifty") or {}).get("start")  # an object: BatchRequest checked
        models = {str(line.body.get("model") or self.rt.settings.default_model) for line in lines}
        clouds = []
        endpoint = ENDPOINTS.get(str(body.get("endpoint")), "chat")
        for name in sorted(models):
            target = self.rt.registry.resolve(name, endpoint)
            if target is not None and target.upstream is not None:
                clouds.append(target.model)
        if not clouds:
            return now.timestamp(), "local: idle slots"
        if self.settings.clock == "now" or asked == "now":
            return now.timestamp(), f"now ({'clock: now' if asked != 'now' else 'asked: now'})"
        prices = self.prices
        reference = TokenUsage(1000, 1000)
        model = clouds[0]
        best_at, best = now, None
        at, end = now, now + timedelta(seconds=WINDOWS[window] * 0.75)  # leave time to finish
        while at < end:
            rates = prices.price_at(model, at)
            cost = None if rates is None else rates.cost_nanos(reference)
            if cost is not None and (best is None or cost < best):
                best_at, best = at, cost
            # the next whole minute: a window starts on one
            at = (at + _STEP).replace(second=0, microsecond=0)
        if best_at == now:
            return now.timestamp(), f"now: {model} has no cheaper window in the next {window}"
        rates = prices.price_at(model, best_at)
        name = rates.window if rates is not None and rates.window else "cheaper prices"
        return best_at.timestamp(), f"{name} from {best_at:%Y-%m-%d %H:%M} UTC ({model})"

    async def get_batch(self, request: Request) -> Response:
        try:
            tenant, _ = self._caller(request)
        except ThriftyError as exc:
            return error_response(exc)
        batch_id = request.path_params["batch_id"]
        st = self._st()
        found = await self._db(lambda: st.batch(batch_id, tenant))
        if found is None:
            return error_response(NotFound(f"no batch {batch_id}", param="batch_id"))
        return json_response(found)

    async def list_batches(self, request: Request) -> Response:
        try:
            tenant, _ = self._caller(request)
            limit = int(request.query_params.get("limit", "20"))
        except ThriftyError as exc:
            return error_response(exc)
        except ValueError:
            return error_response(InvalidRequest("limit must be an integer", param="limit"))
        after = request.query_params.get("after")
        st = self._st()
        found = await self._db(lambda: st.batches(tenant, max(1, min(limit, 100)) + 1, after))
        data = found[:limit]
        return json_response(
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": len(found) > limit,
            }
        )

    async def cancel(self, request: Request) -> Response:
        try:
            tenant, _ = self._caller(request)
        except ThriftyError as exc:
            return error_response(exc)
        batch_id = request.path_params["batch_id"]
        st = self._st()
        found = await self._db(lambda: st.cancel(batch_id, tenant))
        if found is None:
            return error_response(NotFound(f"no batch {batch_id}", param="batch_id"))
        return json_response(found)

    # -- the runner -------------------------------------------------------------------------------

    async def _run(self) -> None:
        st = self._st()
        while True:
            try:
                claimed = await self._db(lambda: st.claim(self.owner, self.settings.lease_s))
                if claimed is None:
                    await asyncio.sleep(self.settings.poll_s)
                    continue
                await self._work(claimed)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("the batch runner failed; retrying")
                await asyncio.sleep(self.settings.poll_s)

    async def _work(self, batch: dict[str, Any]) -> None:
        st = self._st()
        batch_id = batch["id"]
        key = await self._key(batch.get("key_id"))
        lease = self.settings.lease_s
        while True:
            status = await self._db(lambda: st.renew(batch_id, self.owner, lease))
            if status is None:
                return  # another replica took it over
            if status == "cancelling":
                await self._db(lambda: st.finalize(batch_id, self.owner, "cancelled"))
                return
            row = await self._db(lambda: st.batch(batch_id))
            if row is not None and row["expires_at"] <= time.time():
                await self._db(lambda: st.finalize(batch_id, self.owner, "expired"))
                return
            lines = await self._db(lambda: st.pending(batch_id, self.settings.concurrency))
            if not lines:
                await self._db(lambda: st.finalize(batch_id, self.owner, "completed"))
                return
            await asyncio.gather(*(self._line(batch_id, batch, key, line) for line in lines))

    async def _key(self, key_id: str | None) -> KeyPolicy | None:
        if key_id is None:
            return None
        keys = self.rt.keys
        record = await asyncio.to_thread(keys.get, key_id)
        return None if record is None else record.policy()

    async def _line(
        self, batch_id: str, batch: dict[str, Any], key: KeyPolicy | None, line: BatchLine
    ) -> None:
        """Run one line through the gateway (on the local model: when a slot is idle)."""
        endpoint = ENDPOINTS[batch["endpoint"]]
        model = str(line.body.get("model") or self.rt.settings.default_model)
        target = self.rt.registry.resolve(model, endpoint)
        local = self.rt.registry.local
        if target is not None and target.upstream is None and local is not None:
            while local.saturated():  # interactive requests first: batches take idle slots
                await asyncio.sleep(0.05)
        ctx, status, payload = await self._request(endpoint, line.body, key, batch["tenant"])
        st = self._st()
        await self._db(
            lambda: st.record(
                batch_id,
                line.line,
                ok=status < 400,
                status_code=status,
                request_id=ctx.id,
                response=payload,
                cost_nanos=ctx.cost_nanos,
                baseline_nanos=ctx.baseline_nanos,
            )
        )

    async def _request(
        self, endpoint: Endpoint, body: dict[str, Any], key: KeyPolicy | None, tenant: str
    ) -> tuple[RequestContext, int, dict[str, Any]]:
        """One request through the whole gateway, as the endpoint would run it (not streamed)."""
        ctx = RequestContext(
            endpoint,
            body,
            str(body.get("model") or self.rt.settings.default_model),
            False,
            tenant=tenant,
            key=key,
            key_id=key.key_id if key is not None else None,
        )
        try:
            answer = await self.rt.gateway.handle(ctx)  # finished (logged, metered) when it returns
        except ThriftyError as exc:
            return ctx, exc.status, exc.envelope()
        if not isinstance(answer, dict):  # a stream: refused at creation, so not expected here
            raise ThriftyError("a batch request was answered as a stream")
        return ctx, 200, answer

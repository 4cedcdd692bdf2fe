"""The FastAPI application: ``/v1/parse``, OpenAI-compatible ``/v1/chat/completions``,
``/v1/models`` and ``/health``, in front of a :class:`~sceneparser.serve.batching.DynamicBatcher`.

:func:`create_app` takes the *batch function* (``list[ParseJob] -> list[list[result dict]]``,
see :mod:`sceneparser.serve.jobs`) rather than a model, so the HTTP layer is testable on its own
and the model stays behind one callable. Every client error is a 4xx with an OpenAI-style JSON
body ``{"error": {"message", "type", "code", "param"}}``; the server never fetches URLs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import logging
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, Callable, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from sceneparser import __version__
from sceneparser.errors import SceneParserError
from sceneparser.hierarchy import Hierarchy
from sceneparser.serve.batching import DynamicBatcher, QueueFullError, UnavailableError
from sceneparser.serve.images import RequestError, decode_base64_image, open_upload
from sceneparser.serve.schemas import (
    ChatCompletionRequest,
    ImageURL,
    ParseJob,
    ParseRequest,
    chat_generation_options,
    check_queries,
    check_text,
    looks_like_question,
)

log = logging.getLogger("sceneparser.serve")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class ServeConfig:
    """Limits and batching settings of one server (the ``sceneparser serve`` flags)."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_batch_size: int = 8
    max_wait_ms: float = 10.0
    max_arrival_wait_ms: float = 100.0
    max_queue_size: int = 32
    max_image_pixels: int = 4096 * 4096
    max_request_bytes: int = 20 * 1024 * 1024
    max_query_chars: int = 1000
    max_queries: int = 16
    request_timeout_s: float = 300.0
    model_name: str = "sceneparser"
    model_aliases: tuple[str, ...] = ()  # also accepted as "model" in chat requests (e.g. the --model path)
    exif_transpose: bool = False
    max_inflight: int | None = None  # requests in the server at once (default 2 x queue + batch)
    max_new_tokens: int = 2048  # the server's answer cap; a chat request's max_tokens can only lower it
    api_key: str | None = None  # when set, every route but /health needs "Authorization: Bearer <key>"
    body_timeout_s: float = 5.0  # reading a request body may take this long ...
    body_timeout_s_per_mb: float = 5.0  # ... plus this per MB (declared, else the cap): then 408
    max_drain_bytes: int = 128 * 1024 * 1024  # a refused body is read (and dropped) up to this, so the client sees the answer

    @property
    def inflight_limit(self) -> int:
        if self.max_inflight is not None:
            return self.max_inflight
        return 2 * self.max_queue_size + self.max_batch_size


# ---------------------------------------------------------------------------- errors
def _error_body(status: int, message: str, code: str | None = None, param: str | None = None) -> dict:
    kind = "invalid_request_error" if status < 500 else ("service_unavailable" if status == 503 else "server_error")
    if status == 429:
        kind = "rate_limit_error"
    if status == 404 and code is None:
        code = "not_found"
    return {"error": {"message": message, "type": kind, "code": code, "param": param}}


def error_response(status: int, message: str, code: str | None = None, param: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(_error_body(status, message, code, param), status_code=status, headers=headers)


class _Disconnected(Exception):
    """The client went away while sending its body."""


class IntakeMiddleware:
    """Everything a request must pass before the app sees it, cheapest first.

    * ``Authorization: Bearer <api_key>`` on every route but ``/health`` when a key is set (401,
      compared in constant time);
    * a declared ``Content-Length`` over ``max_bytes`` is 413;
    * the body is read completely, within ``body_timeout_s + body_timeout_s_per_mb`` per MB
      (declared length, else the cap): a client that stalls gets 408 and holds nothing; one that
      disconnects is one INFO log line; a chunked body over the cap is 413;
    * only then does the request count against ``max_inflight`` (beyond it: 503 at once), so
      slow uploads cannot lock real requests out.

    A refused request's body is read and dropped (up to ``max_drain_bytes``) before the answer
    goes out, so clients that send the whole body before reading (``urllib``, ``requests``) get
    the 4xx instead of a reset connection.
    """

    def __init__(self, app, config: "ServeConfig"):
        self.app = app
        self.cfg = config
        self.max_bytes = int(config.max_request_bytes)
        self.max_inflight = config.inflight_limit
        self.inflight = 0
        self.reading = 0
        self.max_reading = 4 * self.max_inflight + 16  # bodies being received at once
        self._key = config.api_key.encode() if config.api_key else None

    def _authorized(self, scope) -> bool:
        if self._key is None or scope.get("path") == "/health":
            return True
        header = dict(scope.get("headers") or ()).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        # compare_digest runs in time independent of where the strings differ
        return hmac.compare_digest(scheme.lower() + b" " + token.strip(), b"bearer " + self._key)

    def _deadline(self, declared: int | None) -> float:
        size = declared if declared is not None else self.max_bytes
        return self.cfg.body_timeout_s + self.cfg.body_timeout_s_per_mb * size / 1e6

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
        if declared is not None and declared < 0:
            return await self._refuse(scope, receive, send, 400, "invalid Content-Length header", "invalid_request",
                                      drain=False)
        if not self._authorized(scope):
            return await self._refuse(scope, receive, send, 401,
                                      "missing or wrong API key: send 'Authorization: Bearer <key>'",
                                      "invalid_api_key", declared=declared, headers={"WWW-Authenticate": "Bearer"})
        if declared is not None and declared > self.max_bytes:
            return await self._refuse(
                scope, receive, send, 413,
                f"the request body is {declared} bytes, over the {self.max_bytes}-byte cap "
                "(start the server with a larger --max-request-bytes)", "too_large", declared=declared)
        if self.reading >= self.max_reading:
            return await self._refuse(scope, receive, send, 503, "the server is busy receiving other requests; retry",
                                      "busy", declared=declared, headers={"Retry-After": "1"})
        self.reading += 1
        try:
            body = await asyncio.wait_for(self._read_body(receive), timeout=self._deadline(declared))
        except asyncio.TimeoutError:
            log.info("request body of %s %s not received within the deadline: 408", scope.get("method"), scope.get("path"))
            resp = error_response(408, "the request body was not received in time", "request_timeout",
                                  headers={"Connection": "close"})
            return await resp(scope, receive, send)
        except _Disconnected:
            log.info("client disconnected while sending %s %s", scope.get("method"), scope.get("path"))
            return None
        except BodyTooLargeError as exc:
            await self._drain(receive, None)
            resp = error_response(413, f"{exc} (start the server with a larger --max-request-bytes)", "too_large")
            return await resp(scope, receive, send)
        finally:
            self.reading -= 1
        counted = self.max_inflight is not None and scope.get("path") != "/health"
        if counted and self.inflight >= self.max_inflight:
            resp = error_response(503, f"the server is busy ({self.inflight} requests in flight); retry shortly",
                                  "busy", headers={"Retry-After": "1"})
            return await resp(scope, receive, send)
        if counted:
            self.inflight += 1
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: waits for the client to go away

        try:
            return await self.app(scope, replay, send)
        finally:
            if counted:
                self.inflight -= 1

    async def _read_body(self, receive) -> bytes:
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected()
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                raise BodyTooLargeError(self.max_bytes)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _drain(self, receive, declared: int | None) -> bool:
        """Read and drop the rest of the body (bounded in size and time); False if it was not all read."""
        if declared is not None and declared > self.cfg.max_drain_bytes:
            return False

        async def drain():
            seen = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return False
                seen += len(message.get("body", b""))
                if seen > self.cfg.max_drain_bytes:
                    return False
                if not message.get("more_body", False):
                    return True

        try:
            return await asyncio.wait_for(drain(), timeout=self._deadline(declared))
        except asyncio.TimeoutError:
            return False

    async def _refuse(self, scope, receive, send, status, message, code, *, declared=None, drain=True, headers=None):
        complete = drain and await self._drain(receive, declared)
        headers = dict(headers or {})
        if not complete:
            headers["Connection"] = "close"
        resp = error_response(status, message, code, headers=headers)
        return await resp(scope, receive, send)


class BodyTooLargeError(Exception):
    def __init__(self, limit: int):
        super().__init__(f"the request body is larger than the {limit}-byte cap")
        self.limit = limit


# ---------------------------------------------------------------------------- helpers
def _parse_bool(value: Any, param: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise RequestError(422, f"'{param}' must be true or false, got {str(value)[:40]!r}", param=param)


def _parse_score(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise RequestError(422, f"'min_score' must be a number in [0, 1], got {str(value)[:40]!r}",
                           param="min_score") from None
    if not 0.0 <= score <= 1.0:
        raise RequestError(422, f"'min_score' must be in [0, 1], got {score}", param="min_score")
    return score


def _filtered(result: dict, min_score: float) -> dict:
    """``result`` without the objects, parts and affordances scored below ``min_score``."""
    kept = Hierarchy.from_pixel_dict({"objects": result.get("objects", [])}).filtered(min_score)
    return dict(result, objects=kept.to_pixel_dict()["objects"])


def _validation_message(exc: ValidationError | RequestValidationError) -> tuple[int, str, str | None]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        first = next(e for e in errors if e.get("type") == "json_invalid")
        return 400, f"malformed JSON body: {first.get('ctx', {}).get('error', first.get('msg'))}", None
    parts = []
    param = None
    for e in errors[:5]:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
        param = param or (loc or None)
        msg = e.get("msg", "invalid value")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return 422, "invalid request: " + "; ".join(parts), param


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _aggregate_status(statuses: Sequence[str]) -> str:
    if any(s == "failed" for s in statuses):
        return "failed"
    if any(s == "repaired" for s in statuses):
        return "repaired"
    return "ok"


_PARSE_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": ParseRequest.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "format": "binary", "description": "the image file"},
                        "query": {"type": "string", "description": "object category; repeat the field for several"},
                        "scene": {"type": "boolean", "default": False},
                    },
                }
            },
        },
    }
}

_CHAT_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ChatCompletionRequest.model_json_schema()}},
    }
}


# ---------------------------------------------------------------------------- app
def create_app(batch_fn: Callable[[Sequence[ParseJob]], Sequence[Any]], config: ServeConfig | None = None) -> FastAPI:
    """Build the service around ``batch_fn`` (called on the batcher's worker thread).

    ``batch_fn(jobs)`` returns, for each :class:`ParseJob`, a list with one result dict per
    prompt (keys ``objects``, ``raw_text``, ``status``, ``reason``, ``query``, ``width``,
    ``height``, ``timing``; see :func:`sceneparser.serve.jobs.result_to_dict`).
    """
    cfg = config or ServeConfig()
    batcher = DynamicBatcher(
        batch_fn,
        max_batch_size=cfg.max_batch_size,
        max_wait_ms=cfg.max_wait_ms,
        max_queue_size=cfg.max_queue_size,
        max_arrival_wait_ms=cfg.max_arrival_wait_ms,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(
        title="sceneparser",
        summary="Hierarchical scene parsing: scene -> object -> part -> affordance",
        version=__version__,
        lifespan=lifespan,
    )
    app.state.config = cfg
    app.state.batcher = batcher
    app.add_middleware(IntakeMiddleware, config=cfg)

    # -- error handlers: every error is JSON, never a traceback
    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError):
        headers = {"Retry-After": "1"} if exc.status == 429 else None
        return error_response(exc.status, exc.message, exc.code, exc.param, headers=headers)

    @app.exception_handler(BodyTooLargeError)
    async def _too_large(request: Request, exc: BodyTooLargeError):
        return error_response(413, f"{exc} (start the server with a larger --max-request-bytes)", "too_large")

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        status, message, param = _validation_message(exc)
        return error_response(status, message, "invalid_request", param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return error_response(exc.status_code, message, None, None, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):  # pragma: no cover - defensive
        log.exception("unexpected error on %s", request.url.path)
        return error_response(500, f"internal error ({type(exc).__name__}); see the server log", "internal_error")

    async def run_job(job: ParseJob) -> list[dict]:
        try:
            return await batcher.submit(job, timeout=cfg.request_timeout_s)
        except QueueFullError as exc:
            raise RequestError(429, str(exc), "queue_full") from None
        except UnavailableError as exc:
            raise _Unavailable(str(exc)) from None
        except SceneParserError as exc:  # InputError from the model side: the input is at fault
            raise RequestError(422, str(exc), "invalid_input") from None
        except Exception as exc:  # noqa: BLE001
            log.exception("model call failed")
            raise RequestError(500, f"the model failed on this request ({type(exc).__name__})", "model_error") from None

    @app.exception_handler(_Unavailable)
    async def _unavailable(request: Request, exc: _Unavailable):
        return error_response(503, str(exc), "unavailable", headers={"Retry-After": "1"})

    def reject_if_full() -> None:
        """Refuse at once, before decoding anything, when the queue has no room."""
        if batcher.full:
            batcher.stats.rejected_full += 1
            raise RequestError(429, f"the request queue is full ({cfg.max_queue_size} waiting); retry shortly",
                               "queue_full")

    async def read_image_bytes(data: bytes, param: str = "image") -> Any:
        return await run_in_threadpool(
            partial(open_upload, data, max_pixels=cfg.max_image_pixels, exif_transpose=cfg.exif_transpose, param=param)
        )

    # -- endpoints
    @app.head("/health", include_in_schema=False)
    @app.get("/health", summary="liveness and queue state (no API key needed)")
    async def health():
        ok = batcher.running
        body = {
            "status": "ok" if ok else "unavailable",
            "model": cfg.model_name,
            "queue_depth": batcher.queue_depth,
            "max_queue_size": cfg.max_queue_size,
            "max_batch_size": cfg.max_batch_size,
            "max_wait_ms": cfg.max_wait_ms,
            "stats": batcher.stats.snapshot(),
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/v1/models", summary="the served model (OpenAI format)")
    async def models():
        return {
            "object": "list",
            "data": [{"id": cfg.model_name, "object": "model", "created": _STARTED, "owned_by": "sceneparser"}],
        }

    @app.post("/v1/parse", summary="parse one image (JSON with base64, or multipart upload)", openapi_extra=_PARSE_OPENAPI)
    async def parse(request: Request):
        t0 = time.perf_counter()
        reject_if_full()
        with batcher.arriving():  # read + decode: a batch being formed may wait for us
            media = _media_type(request)
            if media == "application/json":
                body = await request.body()
                try:
                    req = ParseRequest.model_validate_json(body)
                except ValidationError as exc:
                    status, message, param = _validation_message(exc)
                    raise RequestError(status, message, "invalid_request", param) from None
                check_queries(req.query, req.scene, max_chars=cfg.max_query_chars, max_queries=cfg.max_queries)
                data = decode_base64_image(req.image, max_bytes=cfg.max_request_bytes)
                query, scene, min_score = req.query, req.scene, req.min_score
            elif media == "multipart/form-data":
                form = await request.form(max_files=1, max_fields=cfg.max_queries + 4, max_part_size=cfg.max_request_bytes)
                try:
                    upload = form.get("image")
                    if upload is None:
                        raise RequestError(422, "missing form field 'image' (the image file)", param="image")
                    if isinstance(upload, UploadFile):
                        data = await upload.read(cfg.max_request_bytes + 1)
                    else:  # a text field: accept base64 / data URL there too
                        data = decode_base64_image(str(upload), max_bytes=cfg.max_request_bytes)
                    queries = [q for q in form.getlist("query") if isinstance(q, str)]
                    query = queries[0] if len(queries) == 1 else (queries or None)
                    scene = _parse_bool(form.get("scene", "false"), "scene")
                    min_score = _parse_score(form.get("min_score"))
                finally:
                    await form.close()
            else:
                raise RequestError(
                    415,
                    f"unsupported Content-Type '{media or '(none)'}': send application/json "
                    "({\"image\": <base64>, \"query\": ...}) or multipart/form-data (fields image, query)",
                    "unsupported_media_type",
                )
            queries = check_queries(query, scene, max_chars=cfg.max_query_chars, max_queries=cfg.max_queries)
            image = await read_image_bytes(data)
        t_decoded = time.perf_counter()
        results = await run_job(ParseJob(image=image, queries=queries, scene=scene and not queries))
        if min_score is not None:
            results = [_filtered(r, min_score) for r in results]
        t_done = time.perf_counter()
        statuses = [r.get("status", "failed") for r in results]
        reasons = [r.get("reason") for r in results if r.get("reason")]
        return {
            "id": f"parse-{uuid.uuid4().hex[:16]}",
            "model": cfg.model_name,
            "width": image.width,
            "height": image.height,
            "query": list(queries) if len(queries) != 1 else queries[0],
            "scene": bool(scene and not queries),
            "objects": [obj for r in results for obj in r.get("objects", [])],
            "status": _aggregate_status(statuses),
            "reason": "; ".join(reasons) or None,
            "raw_text": "\n".join(r.get("raw_text", "") for r in results),
            "results": results,
            "timing": {
                "decode_ms": round((t_decoded - t0) * 1000, 2),
                "model_and_queue_ms": round((t_done - t_decoded) * 1000, 2),
                "total_ms": round((t_done - t0) * 1000, 2),
            },
        }

    @app.post("/v1/chat/completions", summary="OpenAI-compatible chat completion (image as a data URL)",
              openapi_extra=_CHAT_OPENAPI)
    async def chat_completions(request: Request):
        if _media_type(request) != "application/json":
            raise RequestError(415, "send the chat request as application/json", "unsupported_media_type")
        body = await request.body()
        try:
            req = ChatCompletionRequest.model_validate_json(body)
        except ValidationError as exc:
            status, message, param = _validation_message(exc)
            raise RequestError(status, message, "invalid_request", param) from None
        if req.model and req.model != cfg.model_name and req.model not in cfg.model_aliases:
            raise RequestError(404, f"the model '{req.model}' does not exist; this server serves '{cfg.model_name}'",
                               "model_not_found", "model")
        options = chat_generation_options(req, max_new_tokens=cfg.max_new_tokens)
        reject_if_full()
        with batcher.arriving():
            job = await _chat_job(req, cfg, read_image_bytes)
        job = dataclasses.replace(job, max_new_tokens=options["max_new_tokens"], temperature=options["temperature"],
                                  top_p=options["top_p"], seed=options["seed"], logprobs=options["logprobs"])
        created = int(time.time())
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if req.stream:
            return StreamingResponse(
                _stream(run_job, job, completion_id, created, cfg.model_name, options["include_usage"]),
                media_type="text/event-stream",
            )
        results = await run_job(job)
        result = results[0]
        out = {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": cfg.model_name,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": result.get("raw_text", "")},
                 "finish_reason": _finish_reason(result),
                 "logprobs": {"content": result["logprobs"]} if result.get("logprobs") is not None else None}
            ],
            "sceneparser": _extension(result, job),
        }
        if result.get("usage"):
            out["usage"] = result["usage"]
        return out

    return app


class _Unavailable(Exception):
    pass


_STARTED = int(time.time())


async def _chat_job(req: ChatCompletionRequest, cfg: ServeConfig, read_image) -> ParseJob:
    """The last user message's image (a data URL) and text, as a ParseJob."""
    user = next((m for m in reversed(req.messages) if m.role == "user"), None)
    if user is None:
        raise RequestError(400, "no user message: send one user message with an image and a query", param="messages")
    parts = [user.content] if isinstance(user.content, str) or user.content is None else list(user.content)
    texts: list[str] = []
    images: list[str] = []
    for part in parts:
        if part is None:
            continue
        if isinstance(part, str):
            texts.append(part)
        elif part.type == "text":
            texts.append(part.text)
        else:
            url = part.image_url.url if isinstance(part.image_url, ImageURL) else str(part.image_url)
            images.append(url)
    if len(images) != 1:
        raise RequestError(
            400,
            f"the user message must hold exactly one image_url part (a 'data:image/...;base64,' URL); got {len(images)}",
            param="messages",
        )
    text = "\n".join(t for t in texts if t.strip())
    scene = bool(req.scene)
    data = decode_base64_image(images[0], max_bytes=cfg.max_request_bytes, param="image_url")
    if not scene:
        if not text.strip():
            raise RequestError(422, "the user message has no text: give an object category or a question",
                               param="messages")
        text = check_text(text, max_chars=cfg.max_query_chars, param="messages")
    image = await read_image(data, "image_url")
    if scene:
        return ParseJob(image=image, scene=True)
    if looks_like_question(text):
        return ParseJob(image=image, question=text)
    return ParseJob(image=image, queries=(text,))


def _finish_reason(result: dict) -> str:
    """OpenAI's finish reason: ``length`` when a token limit cut the answer, else ``stop``."""
    return "length" if (result.get("timing") or {}).get("finish_reason") in ("length", "context", "prompt_too_long") else "stop"


def _extension(result: dict, job: ParseJob) -> dict:
    """The ``sceneparser`` field of a chat completion: the parsed objects in pixels."""
    return {
        "objects": result.get("objects", []),
        "status": result.get("status"),
        "reason": result.get("reason"),
        "width": job.image.width,
        "height": job.image.height,
    }


def _sse(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


async def _stream(run_job, job: ParseJob, completion_id: str, created: int, model: str, include_usage: bool):
    """Server-sent events of one chat completion, with the answer's pieces as they are generated.

    The pieces come from the model's worker thread through ``on_text``; the final chunk carries
    the finish reason and the parsed objects, then (with ``include_usage``) a usage chunk. When
    the client goes away the generator is closed and ``on_text`` raises, which stops the decoding
    of this request."""
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue = asyncio.Queue()
    state = {"closed": False}

    def on_text(piece: str) -> None:
        if state["closed"]:
            raise ConnectionError("the client closed the stream")
        loop.call_soon_threadsafe(pieces.put_nowait, piece)

    task = asyncio.ensure_future(run_job(dataclasses.replace(job, on_text=on_text)))
    task.add_done_callback(lambda _: pieces.put_nowait(None))
    base = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
    if include_usage:
        base["usage"] = None

    def chunk(delta: dict, finish: str | None = None, **extra) -> str:
        return _sse(dict(base, choices=[{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra))

    sent = ""
    try:
        yield chunk({"role": "assistant", "content": ""})
        while (piece := await pieces.get()) is not None:
            sent += piece
            yield chunk({"content": piece})
        try:
            result = task.result()[0]
        except RequestError as exc:
            yield _sse({"error": _error_body(exc.status, exc.message, exc.code, exc.param)["error"]})
            yield "data: [DONE]\n\n"
            return
        text = result.get("raw_text", "")
        if text != sent and text.startswith(sent):  # a backend that does not stream gives the rest here
            yield chunk({"content": text[len(sent):]})
        yield chunk({}, _finish_reason(result), sceneparser=_extension(result, job))
        if include_usage and result.get("usage"):
            yield _sse(dict(base, choices=[], usage=result["usage"]))
        yield "data: [DONE]\n\n"
    finally:
        state["closed"] = True


def config_dict(cfg: ServeConfig) -> dict:
    return asdict(cfg)

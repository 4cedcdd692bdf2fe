"""The FastAPI application: ``/v1/parse``, OpenAI-compatible ``/v1/chat/completions``,
``/v1/models`` and ``/health``, in front of a :class:`~sceneparser.serve.batching.DynamicBatcher`.

:func:`create_app` takes the *batch function* (``list[ParseJob] -> list[list[result dict]]``,
see :mod:`sceneparser.serve.jobs`) rather than a model, so the HTTP layer is testable on its own
and the model stays behind one callable. Every client error is a 4xx with an OpenAI-style JSON
body ``{"error": {"message", "type", "code", "param"}}``; the server never fetches URLs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import asdict
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
from sceneparser.serve.chat import chat_job, extension, finish_reason, stream_completion
from sceneparser.serve.config import ServeConfig
from sceneparser.serve.errors import RequestError
from sceneparser.serve.images import decode_base64_image, open_upload
from sceneparser.serve.intake import BodyTooLargeError, IntakeMiddleware, error_response
from sceneparser.serve.schemas import (
    ChatCompletionRequest,
    ParseJob,
    ParseRequest,
    chat_generation_options,
    check_queries,
)

log = logging.getLogger("sceneparser.serve")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


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
            job = await chat_job(req, cfg, read_image_bytes)
        job = dataclasses.replace(job, max_new_tokens=options["max_new_tokens"], temperature=options["temperature"],
                                  top_p=options["top_p"], seed=options["seed"], logprobs=options["logprobs"])
        created = int(time.time())
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if req.stream:
            return StreamingResponse(
                stream_completion(run_job, job, completion_id, created, cfg.model_name, options["include_usage"]),
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
                 "finish_reason": finish_reason(result),
                 "logprobs": {"content": result["logprobs"]} if result.get("logprobs") is not None else None}
            ],
            "sceneparser": extension(result, job),
        }
        if result.get("usage"):
            out["usage"] = result["usage"]
        return out

    return app


class _Unavailable(Exception):
    pass


_STARTED = int(time.time())


def config_dict(cfg: ServeConfig) -> dict:
    return asdict(cfg)

"""The OpenAI-compatible chat route's pieces: a chat request -> :class:`ParseJob`, the completion's
finish reason and ``sceneparser`` extension, and the server-sent-event stream of an answer as it
is generated."""

from __future__ import annotations

import asyncio
import dataclasses
import json

from sceneparser.serve.config import ServeConfig
from sceneparser.serve.errors import RequestError, error_body
from sceneparser.serve.images import decode_base64_image
from sceneparser.serve.schemas import ChatCompletionRequest, ImageURL, ParseJob, check_text, looks_like_question


async def chat_job(req: ChatCompletionRequest, cfg: ServeConfig, read_image) -> ParseJob:
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


def finish_reason(result: dict) -> str:
    """OpenAI's finish reason: ``length`` when a token limit cut the answer, else ``stop``."""
    return "length" if (result.get("timing") or {}).get("finish_reason") in ("length", "context", "prompt_too_long") else "stop"


def extension(result: dict, job: ParseJob) -> dict:
    """The ``sceneparser`` field of a chat completion: the parsed objects in pixels."""
    return {
        "objects": result.get("objects", []),
        "status": result.get("status"),
        "reason": result.get("reason"),
        "width": job.image.width,
        "height": job.image.height,
    }


def sse(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


async def stream_completion(run_job, job: ParseJob, completion_id: str, created: int, model: str, include_usage: bool):
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
        return sse(dict(base, choices=[{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra))

    sent = ""
    try:
        yield chunk({"role": "assistant", "content": ""})
        while (piece := await pieces.get()) is not None:
            sent += piece
            yield chunk({"content": piece})
        try:
            result = task.result()[0]
        except RequestError as exc:
            yield sse({"error": error_body(exc.status, exc.message, exc.code, exc.param)["error"]})
            yield "data: [DONE]\n\n"
            return
        text = result.get("raw_text", "")
        if text != sent and text.startswith(sent):  # a backend that does not stream gives the rest here
            yield chunk({"content": text[len(sent):]})
        yield chunk({}, finish_reason(result), sceneparser=extension(result, job))
        if include_usage and result.get("usage"):
            yield sse(dict(base, choices=[], usage=result["usage"]))
        yield "data: [DONE]\n\n"
    finally:
        state["closed"] = True

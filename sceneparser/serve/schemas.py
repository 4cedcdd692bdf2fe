"""Request and response shapes of the HTTP service (pydantic v2) and query validation.

``ParseRequest`` is the JSON body of ``POST /v1/parse``; ``ChatCompletionRequest`` is the subset
of OpenAI's chat-completions request the service understands. The decoding fields
(``max_tokens``/``max_completion_tokens``, ``temperature``, ``top_p``, ``seed``, ``n``,
``stream_options``) are checked by :func:`chat_generation_options`, which answers 400 naming the
field, as ``vllm serve`` does; other unknown fields that OpenAI clients send are accepted and
ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from sceneparser.serve.images import RequestError

# ChatML control tokens (<|im_start|>, <|image_pad|>, <|vision_end|>, ...) and fragments of them.
_CONTROL_TOKEN = re.compile(r"<\|[^<>]{0,64}\|>|<\||\|>")
# C0 control characters except tab, newline and carriage return.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class ParseRequest(BaseModel):
    """JSON body of ``POST /v1/parse``."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(description="the image as base64, or as a data URL 'data:image/png;base64,...'")
    query: Union[str, list[str], None] = Field(
        default=None, description="an object category ('mug'), or a list of them; omit with scene=true"
    )
    scene: bool = Field(default=False, description="parse every object in the scene instead of one query")
    min_score: Union[float, None] = Field(
        default=None, ge=0.0, le=1.0,
        description="drop objects, parts and affordances whose confidence score is below this (0..1)",
    )


class ImageURL(BaseModel):
    model_config = ConfigDict(extra="allow")
    url: str
    detail: str | None = None


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text"]
    text: str


class ImagePart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["image_url"]
    image_url: Union[ImageURL, str]


ContentPart = Annotated[Union[TextPart, ImagePart], Field(discriminator="type")]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Union[str, list[ContentPart], None] = None


class ChatCompletionRequest(BaseModel):
    """The part of OpenAI's chat-completions request this service uses."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: Any = Field(default=None, description='{"include_usage": true} adds a usage chunk (stream only)')
    n: Any = Field(default=1, description="must be 1")
    max_tokens: Any = Field(default=None, description="answer token cap (capped by the server's own limit)")
    max_completion_tokens: Any = Field(default=None, description="the same as max_tokens (wins when both are set)")
    temperature: Any = Field(default=None, description="0 or omitted: greedy (the reference); > 0 samples")
    top_p: Any = Field(default=None, description="nucleus sampling mass in (0, 1] (with temperature > 0)")
    seed: Any = Field(default=None, description="seed of a sampled answer")
    logprobs: Any = Field(default=None, description="true: the log-probability of every answer token (not with stream)")
    top_logprobs: Any = Field(default=None, description="must be 0 or omitted")
    scene: bool = Field(default=False, description="extension: parse the whole scene, ignoring the text")


@dataclass(frozen=True)
class ParseJob:
    """One request for the batch queue: an image and what to ask about it.

    Exactly one of ``queries`` (object categories), ``question`` (a full user question, as an
    OpenAI client sends it) or ``scene=True`` says what to parse.
    """

    image: Any  # PIL.Image.Image (RGB)
    queries: tuple[str, ...] = ()
    scene: bool = False
    question: str | None = None
    max_new_tokens: int | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    on_text: Callable[[str], None] | None = None  # streamed answer pieces (chat with stream=true)
    logprobs: bool = False  # return each answer token's log-probability (chat with logprobs=true)

    def generation_options(self) -> dict:
        """Per-request decoding options for :meth:`SceneParser.parse_many` items."""
        opts = {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature, "top_p": self.top_p,
                "seed": self.seed, "on_text": self.on_text}
        return {k: v for k, v in opts.items() if v is not None}


def _int_field(value: Any, param: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(400, f"'{param}' must be an integer, got {str(value)[:40]!r}", param=param)
    if value < minimum:
        raise RequestError(400, f"'{param}' must be at least {minimum}, got {value}", param=param)
    return value


def _number_field(value: Any, param: str, lo: float, hi: float, *, open_low: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise RequestError(400, f"'{param}' must be a number, got {str(value)[:40]!r}", param=param)
    if value > hi or value < lo or (open_low and value == lo):
        low = f"({lo}" if open_low else f"[{lo}"
        raise RequestError(400, f"'{param}' must be in {low}, {hi}], got {value}", param=param)
    return float(value)


def chat_generation_options(req: "ChatCompletionRequest", *, max_new_tokens: int) -> dict:
    """The decoding options of a chat request, checked (400 naming the field when invalid).

    Returns ``max_new_tokens`` (the request's cap, at most the server's ``max_new_tokens``),
    ``temperature``, ``top_p``, ``seed`` and ``include_usage``."""
    if req.n is not None and _int_field(req.n, "n", minimum=1) != 1:
        raise RequestError(400, "n > 1 is not supported: this server returns one choice per request", param="n")
    cap = max_new_tokens
    for name in ("max_tokens", "max_completion_tokens"):
        value = getattr(req, name)
        if value is not None:
            cap = min(_int_field(value, name, minimum=1), max_new_tokens)
    temperature = 0.0 if req.temperature is None else _number_field(req.temperature, "temperature", 0.0, 2.0)
    top_p = 1.0 if req.top_p is None else _number_field(req.top_p, "top_p", 0.0, 1.0, open_low=True)
    seed = None if req.seed is None else _int_field(req.seed, "seed", minimum=-(2**63))
    if req.logprobs not in (None, False, True):
        raise RequestError(400, "'logprobs' must be true or false", param="logprobs")
    if req.logprobs and req.stream:
        raise RequestError(400, "logprobs are not supported with stream=true", param="logprobs")
    if req.top_logprobs not in (None, 0):
        raise RequestError(400, "top_logprobs is not supported (only the chosen token's log-probability)",
                           param="top_logprobs")
    include_usage = False
    if req.stream_options is not None:
        if not req.stream:
            raise RequestError(400, "'stream_options' is only allowed with stream=true", param="stream_options")
        if not isinstance(req.stream_options, dict):
            raise RequestError(400, "'stream_options' must be an object", param="stream_options")
        flag = req.stream_options.get("include_usage", False)
        if not isinstance(flag, bool):
            raise RequestError(400, "'stream_options.include_usage' must be true or false", param="stream_options")
        include_usage = flag
    return {"max_new_tokens": cap, "temperature": temperature, "top_p": top_p, "seed": seed,
            "include_usage": include_usage, "logprobs": bool(req.logprobs)}


def check_text(text: str, *, max_chars: int, param: str) -> str:
    """Strip and validate one piece of user text (a query or a question)."""
    if not isinstance(text, str):
        raise RequestError(422, f"'{param}' must be a string", param=param)
    text = text.strip()
    if not text:
        raise RequestError(422, f"'{param}' is empty", param=param)
    if len(text) > max_chars:
        raise RequestError(
            413 if len(text) > 8 * max_chars else 422,
            f"'{param}' is {len(text)} characters, over the limit of {max_chars}",
            code="query_too_long",
            param=param,
        )
    if _CONTROL_TOKEN.search(text):
        raise RequestError(
            400,
            f"'{param}' contains reserved chat-control tokens such as '<|im_start|>' or '<|image_pad|>'; "
            "remove them",
            code="reserved_tokens",
            param=param,
        )
    if _CONTROL_CHARS.search(text):
        raise RequestError(400, f"'{param}' contains control characters", code="invalid_text", param=param)
    return text


def check_queries(
    query: str | list[str] | None, scene: bool, *, max_chars: int, max_queries: int
) -> tuple[str, ...]:
    """Validate the ``query`` field: one string, or a non-empty list of strings, unless ``scene``."""
    if query is None or query == [] or (isinstance(query, str) and not query.strip() and scene):
        if scene:
            return ()
        raise RequestError(
            422, "missing 'query': give an object category (e.g. 'mug') or set scene=true", param="query"
        )
    items = [query] if isinstance(query, str) else list(query)
    if len(items) > max_queries:
        raise RequestError(422, f"{len(items)} queries in one request, over the limit of {max_queries}", param="query")
    return tuple(check_text(q, max_chars=max_chars, param="query") for q in items)


def looks_like_question(text: str) -> bool:
    """Whether chat text is a full question (sent verbatim) rather than an object category.

    A full question has a line break, ends like a sentence, or is longer than eight words;
    ``"mug"`` or ``"coffee mug"`` is a category and gets the reference question template.
    """
    t = text.strip()
    return "\n" in t or t.endswith((".", "?", "!", ":")) or len(t.split()) > 8

"""Request and response shapes of the HTTP service (pydantic v2) and query validation.

``ParseRequest`` is the JSON body of ``POST /v1/parse``; ``ChatCompletionRequest`` is the subset
of OpenAI's chat-completions request the service understands (unknown fields that OpenAI clients
send, such as ``temperature`` or ``seed``, are accepted and ignored, as ``vllm serve`` does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

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
    n: int = 1
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

    @property
    def num_prompts(self) -> int:
        return len(self.queries) if self.queries else 1


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

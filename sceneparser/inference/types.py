"""The backend contract: what a generation backend takes, what it returns, and how it is configured.

Like lm-evaluation-harness keeps its abstract model apart from its request instances, this
module holds only types: :class:`GenerationRequest` (one question on one image),
:class:`GenerationSettings` (decoding options; the defaults are the reference's, see
docs/reference.md, *decoding*), :class:`GenerationOutput` (what one request produced) and the
abstract :class:`Backend`. The transformers backend
(:mod:`sceneparser.inference.transformers_backend`) and the vLLM backend
(:mod:`sceneparser.inference.vllm_backend`) implement it;
:class:`~sceneparser.inference.api.SceneParser` is the one caller that turns their text into
parsed results.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Hashable, Sequence

from sceneparser.errors import InputError

DEFAULT_STOP_STRINGS: tuple[str, ...] = ("<0><0><0><0>",)
DEFAULT_STOP_TOKENS: tuple[str, ...] = ("<|im_end|>", "<|endoftext|>")


@dataclass(frozen=True)
class GenerationRequest:
    """One question on one image, with optional per-request decoding options.

    Requests with the same ``image_key`` (default: the same image object) share their prefix.
    ``max_new_tokens`` lowers the settings' cap for this request (it never raises it);
    ``temperature`` 0 (the default, and the reference) decodes greedily, above 0 samples with
    ``top_p`` nucleus filtering from a generator seeded with ``seed``. ``on_text`` receives the
    answer as it is generated, in pieces (their concatenation is the final text); if it raises,
    generation of this request stops (finish reason ``cancelled``).
    """

    image: Any
    question: str
    image_key: Hashable | None = None
    max_new_tokens: int | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    on_text: Callable[[str], None] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.max_new_tokens is not None and (not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1):
            raise InputError("max_new_tokens must be a positive integer")
        if not 0.0 <= float(self.temperature) <= 100.0:
            raise InputError("temperature must be between 0 and 100")
        if not 0.0 < float(self.top_p) <= 1.0:
            raise InputError("top_p must be in (0, 1]")

    @property
    def key(self) -> Hashable:
        return self.image_key if self.image_key is not None else id(self.image)


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding settings; the defaults are the reference's."""

    max_new_tokens: int = 2048
    min_new_tokens: int = 0
    max_context: int = 4096
    repetition_penalty: float = 1.05
    stop_strings: tuple[str, ...] = DEFAULT_STOP_STRINGS
    stop_tokens: tuple[str, ...] = DEFAULT_STOP_TOKENS
    batch_size: int = 8
    prefix_reuse: bool = True
    layout: str = "inference"
    system: str | None = None

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise InputError("max_new_tokens must be at least 1")
        if self.min_new_tokens < 0 or self.min_new_tokens > self.max_new_tokens:
            raise InputError("min_new_tokens must be between 0 and max_new_tokens")
        if self.batch_size < 1:
            raise InputError("batch_size must be at least 1")
        if self.repetition_penalty <= 0:
            raise InputError("repetition_penalty must be positive")
        if self.layout not in ("inference", "training"):
            raise InputError("layout must be 'inference' or 'training'")
        object.__setattr__(self, "stop_strings", tuple(self.stop_strings or ()))
        object.__setattr__(self, "stop_tokens", tuple(self.stop_tokens or ()))

    @classmethod
    def from_kwargs(cls, **kwargs) -> "GenerationSettings":
        names = {f.name for f in fields(cls)}
        unknown = set(kwargs) - names
        if unknown:
            raise InputError(f"unknown generation settings: {sorted(unknown)} (known: {sorted(names)})")
        return cls(**kwargs)


@dataclass
class GenerationOutput:
    """What one request produced. ``finish_reason``: ``stop`` (stop token), ``stop_string``,
    ``length`` (max_new_tokens), ``context`` (max_context reached), ``prompt_too_long`` or
    ``cancelled`` (the request's ``on_text`` raised) or ``error`` (see :attr:`error`). :attr:`hit_limit` says whether a token limit
    cut the answer (OpenAI's ``finish_reason: "length"``)."""

    text: str
    token_ids: list[int]
    num_prompt_tokens: int
    finish_reason: str
    prefill_s: float = 0.0
    decode_s: float = 0.0
    #: log-probability of each generated token under the model's own distribution (before
    #: repetition penalty or sampling), when the backend can give it
    token_logprobs: list[float] | None = None
    #: where each generated token starts in ``text`` (characters; a token cut with a stop string
    #: starts at or after ``len(text)``), aligned with ``token_logprobs``
    token_offsets: list[int] | None = None
    #: why the backend could not answer (a remote server that failed after its retries); the
    #: result is then ``failed`` with this reason, and ``eval`` asks again on its next run
    error: str | None = None

    @property
    def num_output_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def hit_limit(self) -> bool:
        return self.finish_reason in ("length", "context", "prompt_too_long")



class Backend(abc.ABC):
    """A generation backend: requests in, one :class:`GenerationOutput` per request out, in order.

    Implementations decode greedily with their :attr:`settings` and keep special tokens in the
    text (coordinate tokens such as ``<12>`` are the answer); a stop string that ended generation
    is cut from the text. Images arrive decoded (8-bit RGB PIL, from
    :func:`sceneparser.images.open_image`); requests with the same ``key`` may share work.
    """

    #: decoding settings in force
    settings: GenerationSettings

    @abc.abstractmethod
    def generate(self, requests: Sequence[GenerationRequest], *, progress: bool = False) -> list[GenerationOutput]:
        """One output per request, in the order of ``requests``."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the backend holds (engines, GPU memory). Optional."""


__all__ = [
    "DEFAULT_STOP_STRINGS",
    "DEFAULT_STOP_TOKENS",
    "Backend",
    "GenerationOutput",
    "GenerationRequest",
    "GenerationSettings",
]

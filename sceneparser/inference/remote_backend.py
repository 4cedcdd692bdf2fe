"""Remote backend: any OpenAI-compatible chat-completions server (``vllm serve``, SGLang,
``sceneparser serve``) behind the :class:`~sceneparser.inference.types.Backend` contract.

Optional extra ``sceneparser[remote]`` (the official ``openai`` client, imported when the backend
is built). Each request is sent as the reference prompt: the system turn ``"You are a helpful
assistant"`` (sent explicitly, since vLLM's Qwen2.5-VL template would otherwise add its own, with a
full stop), then one user turn with the image and the question. The image is resized here with the
reference ``smart_resize`` + PIL bicubic to the pixel range the model expects (``min_pixels``,
``max_pixels``) and sent losslessly as PNG, so the server's own resize is the identity and the
model sees the pixels an in-process run gives it. Decoding follows the reference settings (greedy,
``repetition_penalty`` 1.05 and ``skip_special_tokens`` false as vLLM/SGLang extra parameters, stop
at ``<|im_end|>`` and ``<0><0><0><0>``); the text is parsed by the caller
(:class:`~sceneparser.inference.api.SceneParser`) against the ORIGINAL image size.

Failures: the client retries 429, 5xx, timeouts and connection errors with exponential backoff
(``max_retries``); a request that still fails, or whose answer is not a chat completion (no
choice, no content), becomes a :class:`GenerationOutput` with ``error`` set — the sample is then
``failed`` with that reason and ``sceneparser eval`` asks again on its next run. A wrong API key,
a missing model or a missing route (401/403/404) stops the run with a clear error instead.
Log-probabilities are requested for confidence scores; a server that refuses them is asked again
without, and scores are then ``None``.
"""

from __future__ import annotations

import base64
import concurrent.futures
import io
import threading
from typing import Any, Sequence

from PIL import Image

from sceneparser.errors import ModelLoadError, require
from sceneparser.images import to_rgb
from sceneparser.inference.types import Backend, GenerationOutput, GenerationRequest, GenerationSettings
from sceneparser.inference.vllm_backend import STOP_STRINGS
from sceneparser.model.processor import MAX_PIXELS, MIN_PIXELS, smart_resize
from sceneparser.prompts import SYSTEM_PROMPT_INFERENCE

__all__ = ["OpenAIBackend", "image_data_url", "offsets_from_logprobs"]


def image_data_url(image: Image.Image, *, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS) -> str:
    """``image`` resized as the reference does (smart_resize + bicubic), as a PNG data URL."""
    img = to_rgb(image)
    w, h = img.size
    rh, rw = smart_resize(h, w, factor=28, min_pixels=min_pixels, max_pixels=max_pixels)
    if (rw, rh) != (w, h):
        img = img.resize((rw, rh), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def offsets_from_logprobs(content: Sequence[Any], text: str) -> tuple[list[int], list[float]] | None:
    """Token start offsets (characters of ``text``) and log-probabilities from an OpenAI
    ``choices[0].logprobs.content`` list; ``None`` when the tokens do not spell ``text``."""
    offsets, logprobs = [], []
    data = bytearray()
    chars = 0  # characters started so far (bytes that are not UTF-8 continuation bytes)
    for item in content:
        token = getattr(item, "token", None) if not isinstance(item, dict) else item.get("token")
        raw = getattr(item, "bytes", None) if not isinstance(item, dict) else item.get("bytes")
        lp = getattr(item, "logprob", None) if not isinstance(item, dict) else item.get("logprob")
        if lp is None or token is None:
            return None
        piece = bytes(raw) if raw is not None else token.encode("utf-8")
        offsets.append(chars)
        chars += sum(1 for b in piece if (b & 0xC0) != 0x80)
        data += piece
        logprobs.append(float(lp))
    spelled = data.decode("utf-8", errors="replace")
    if not spelled.startswith(text):  # a stop string may follow the text; anything else is a mismatch
        return None
    return offsets, logprobs


class OpenAIBackend(Backend):
    """Generation on an OpenAI-compatible chat-completions server, ``concurrency`` requests at once."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        concurrency: int = 8,
        timeout: float = 600.0,
        max_retries: int = 4,
        min_pixels: int = MIN_PIXELS,
        max_pixels: int = MAX_PIXELS,
        max_new_tokens: int = 2048,
        logprobs: bool = True,
        system: str = SYSTEM_PROMPT_INFERENCE,
        client: Any = None,
    ):
        openai = require("openai", "remote")
        self._errors = openai
        if concurrency < 1:
            raise ModelLoadError("--concurrency must be at least 1")
        self.client = client or openai.OpenAI(
            base_url=base_url.rstrip("/"), api_key=api_key or "EMPTY", max_retries=max_retries, timeout=timeout
        )
        self.base_url = base_url
        self.concurrency = int(concurrency)
        self.min_pixels, self.max_pixels = int(min_pixels), int(max_pixels)
        self.system = system
        self.settings = GenerationSettings(max_new_tokens=int(max_new_tokens), stop_strings=STOP_STRINGS[1:])
        self._logprobs = bool(logprobs)
        self._lock = threading.Lock()
        self.model = model or self._served_model()

    def _served_model(self) -> str:
        """The first model the server lists (``GET /v1/models``)."""
        try:
            models = self.client.models.list()
        except self._errors.AuthenticationError:
            raise ModelLoadError(f"{self.base_url}: the API key was refused (401); pass --api-key") from None
        except self._errors.APIError as exc:
            raise ModelLoadError(f"{self.base_url}: cannot list models ({type(exc).__name__}: {exc})") from None
        data = list(getattr(models, "data", None) or [])
        if not data:
            raise ModelLoadError(f"{self.base_url}: the server lists no model; pass --remote-model NAME")
        return data[0].id

    def generate(self, requests: Sequence[GenerationRequest], *, progress: bool = False) -> list[GenerationOutput]:
        if not requests:
            return []
        urls: dict = {}  # each image is resized and encoded once, whatever number of questions it has
        for r in requests:
            if r.key not in urls:
                urls[r.key] = image_data_url(r.image, min_pixels=self.min_pixels, max_pixels=self.max_pixels)
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            return list(pool.map(lambda r: self._one(r, urls[r.key]), requests))

    def _body(self, request: GenerationRequest, image_url: str) -> dict:
        cap = min(request.max_new_tokens or self.settings.max_new_tokens, self.settings.max_new_tokens)
        greedy = request.temperature <= 0
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": self.system},
                {"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": image_url}},
                    {"type": "text", "text": request.question},
                ]},
            ],
            "max_tokens": cap,
            "temperature": 0.0 if greedy else float(request.temperature),
            "stop": list(STOP_STRINGS),
            "extra_body": {"repetition_penalty": 1.05, "skip_special_tokens": False},
        }
        if greedy:
            body["extra_body"]["top_k"] = 1
        else:
            body["top_p"] = float(request.top_p)
        if request.seed is not None:
            body["seed"] = int(request.seed)
        return body

    def _one(self, request: GenerationRequest, image_url: str) -> GenerationOutput:
        e = self._errors
        body = self._body(request, image_url)
        try:
            resp = self._create(body)
        except (e.AuthenticationError, e.PermissionDeniedError, e.NotFoundError) as exc:
            raise ModelLoadError(f"{self.base_url}: {exc.status_code} {_message(exc)}") from None
        except e.APIStatusError as exc:
            return _failed(f"server answered {exc.status_code}: {_message(exc)}")
        except e.APIError as exc:  # connection errors and timeouts after the retries; invalid bodies
            return _failed(f"{type(exc).__name__}: {exc}")
        choices = getattr(resp, "choices", None) or []
        if not choices or getattr(choices[0], "message", None) is None:
            return _failed("the server returned no choice")
        choice = choices[0]
        text = choice.message.content or ""
        usage = getattr(resp, "usage", None)
        out = GenerationOutput(
            text=text,
            token_ids=[],
            num_prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            finish_reason="length" if choice.finish_reason == "length" else "stop",
        )
        content = getattr(getattr(choice, "logprobs", None), "content", None)
        aligned = offsets_from_logprobs(content, text) if content else None
        if aligned is not None:
            out.token_offsets, out.token_logprobs = aligned
        if usage is not None and getattr(usage, "completion_tokens", None) is not None:
            out.token_ids = [-1] * int(usage.completion_tokens)  # ids are not sent; the count is
        return out

    def _create(self, body: dict):
        if self._logprobs:
            try:
                return self.client.chat.completions.create(**body, logprobs=True)
            except self._errors.BadRequestError as exc:
                if "logprob" not in _message(exc).lower():
                    raise
                with self._lock:
                    self._logprobs = False  # this server does not give them: scores stay None
        return self.client.chat.completions.create(**body)


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if body.get("message"):
            return str(body["message"])
    return str(getattr(exc, "message", exc))


def _failed(reason: str) -> GenerationOutput:
    return GenerationOutput(text="", token_ids=[], num_prompt_tokens=0, finish_reason="error", error=reason)

"""The Python API, and the one path from (image, question) to a parsed answer.

>>> parser = SceneParser.from_pretrained()                        # doctest: +SKIP
>>> result = parser.parse("examples/scene.jpg", "mug")            # doctest: +SKIP
>>> result.hierarchy.objects[0].parts[0].affordances[0].point     # doctest: +SKIP

A query is an object category or phrase; it is put into the reference evaluation question
(:func:`sceneparser.prompts.object_question`). ``scene=True`` (or no query) asks for every object
with :func:`sceneparser.prompts.scene_question`. ``question=`` asks a whole question verbatim (the
HTTP service's chat route and ``sceneparser eval`` use it). Several questions on one image share
the image prefix (see :mod:`sceneparser.inference.transformers_backend`).

Every front end (the CLI, the HTTP service, the demo and ``sceneparser eval``) goes through
:meth:`SceneParser.parse_many`: images are opened by :func:`sceneparser.images.open_image`, the
backend (any :class:`~sceneparser.inference.types.Backend`) generates, and
:func:`sceneparser.parsing.parse_prediction` reads the text against the image's own size.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from sceneparser import prompts
from sceneparser.errors import InputError
from sceneparser.hierarchy import Hierarchy
from sceneparser.images import DEFAULT_MAX_IMAGE_PIXELS, open_image
from sceneparser.inference.remote_backend import OpenAIBackend
from sceneparser.inference.transformers_backend import TransformersBackend
from sceneparser.inference.types import Backend, GenerationOutput, GenerationRequest, GenerationSettings
from sceneparser.interop.supervision import to_supervision
from sceneparser.model.loading import load_model_dir, resolve_model_path
from sceneparser.model.processor import MAX_PIXELS, MIN_PIXELS
from sceneparser.parsing import STATUS_FAILED, ParsedPrediction, parse_prediction
from sceneparser.scores import answer_scores
from sceneparser.viz import draw_hierarchy, format_tree

_NO_DEFAULT = object()


@dataclass
class ParseResult:
    """One parsed (image, question): pixel-coordinate hierarchy, reference prediction, raw text.

    ``query`` is the category asked (``None`` for a scene query or a verbatim question);
    ``prediction`` is the reference answer dict (``{"objects": [...]}``, bin coordinates turned
    into pixels, never filtered); ``hierarchy`` is the same answer typed, with confidence scores
    (:mod:`sceneparser.scores`) and without what ``min_score`` removed; ``status`` is ``ok``,
    ``repaired`` or ``failed`` with ``reason``. ``backend_error`` says why a backend could not
    answer (a remote server that kept failing); ``token_logprobs``/``token_offsets`` are the
    backend's per-token log-probabilities and their positions in ``raw_text``.
    """

    query: str | None
    question: str
    scene: bool
    raw_text: str
    prediction: dict
    status: str
    reason: str | None
    hierarchy: Hierarchy
    image_size: tuple[int, int]
    image: str | None = None
    timing: dict = field(default_factory=dict)
    backend_error: str | None = None
    token_logprobs: list[float] | None = field(default=None, repr=False)
    token_offsets: list[int] | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def to_dict(self, raw: bool = True) -> dict:
        d = {
            "image": self.image,
            "image_size": list(self.image_size),
            "query": self.query,
            "scene": self.scene,
            "question": self.question,
            "status": self.status,
            "reason": self.reason,
            "objects": self.hierarchy.to_pixel_dict()["objects"],
            "timing": dict(self.timing),
        }
        if raw:
            d["raw_text"] = self.raw_text
        return d

    def to_json(self, indent: int | None = None, raw: bool = True) -> str:
        return json.dumps(self.to_dict(raw=raw), ensure_ascii=False, indent=indent)

    def draw(self, image, **options):
        """A copy of ``image`` (PIL image or path) with this result drawn on it."""
        return draw_hierarchy(image, self.hierarchy, **options)

    def tree(self) -> str:
        return format_tree(self.hierarchy, title=self.query if not self.scene else "scene")

    def to_supervision(self):
        """``(sv.Detections, sv.KeyPoints)`` of this result (:mod:`sceneparser.interop.supervision`;
        ``sceneparser.interop.supervision.from_supervision`` turns them back into a hierarchy)."""
        return to_supervision(self.hierarchy)


@dataclass
class _Job:
    """One question on one opened image."""

    image: Any  # PIL image, RGB
    image_name: str | None
    key: Any
    query: str | None
    question: str
    scene: bool
    options: dict = field(default_factory=dict)  # per-request GenerationRequest options


#: parse_many item keys passed to the backend as per-request decoding options
REQUEST_OPTIONS = ("max_new_tokens", "temperature", "top_p", "seed", "on_text")


def _check_text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InputError(f"a {what} must be a string, not {type(value).__name__}")
    if not value.strip():
        if what == "query":
            raise InputError("empty query: give an object category such as 'mug', or use scene=True")
        raise InputError(f"empty {what}")
    return value


def _timing(wall: float, n: int, out: GenerationOutput) -> dict:
    return {
        "wall_s": round(wall, 6),
        "num_queries_in_call": n,
        "prefill_s": round(out.prefill_s, 6),
        "decode_s": round(out.decode_s, 6),
        "num_prompt_tokens": out.num_prompt_tokens,
        "num_output_tokens": out.num_output_tokens,
        "finish_reason": out.finish_reason,
    }


class SceneParser:
    """Parse images into scene -> object -> part -> affordance hierarchies with any :class:`Backend`."""

    def __init__(
        self,
        backend: Backend,
        *,
        parse_mode: str = "reference",
        exif_transpose: bool = False,
        max_image_pixels: int | None | object = _NO_DEFAULT,
        template: str | None = None,
        scene_template: str | None = None,
        model_path: str | None = None,
        min_score: float | None = None,
    ):
        if not isinstance(backend, Backend):
            raise InputError(
                f"backend must implement sceneparser.inference.types.Backend, got {type(backend).__name__}"
            )
        if parse_mode not in ("reference", "repair"):
            raise InputError("parse_mode must be 'reference' or 'repair'")
        self.backend = backend
        self.parse_mode = parse_mode
        self.exif_transpose = exif_transpose
        self.max_image_pixels = DEFAULT_MAX_IMAGE_PIXELS if max_image_pixels is _NO_DEFAULT else max_image_pixels
        self.template = template
        self.scene_template = scene_template
        self.model_path = model_path
        if min_score is not None and not 0.0 <= float(min_score) <= 1.0:
            raise InputError("min_score must be between 0 and 1")
        self.min_score = min_score

    # ---- construction ------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike | None = None,
        device: Any = None,
        dtype: Any = None,
        *,
        parse_mode: str = "reference",
        exif_transpose: bool = False,
        max_image_pixels: int | None | object = _NO_DEFAULT,
        template: str | None = None,
        scene_template: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        min_score: float | None = None,
        **generation,
    ) -> "SceneParser":
        """Load a model directory, a hub id (via the huggingface_hub cache) or, with no path,
        the shipped default model, with the transformers backend. ``**generation`` sets decoding
        options (:class:`~sceneparser.inference.types.GenerationSettings`: ``max_new_tokens``,
        ``repetition_penalty``, ``stop_strings``, ``batch_size``, ``prefix_reuse``, ``layout``, ...)."""
        settings = GenerationSettings.from_kwargs(**generation)
        local = resolve_model_path(path, cache_dir=cache_dir)
        model, processor = load_model_dir(local, device=device, dtype=dtype)
        return cls(
            TransformersBackend(model, processor, settings),
            parse_mode=parse_mode,
            exif_transpose=exif_transpose,
            max_image_pixels=max_image_pixels,
            template=template,
            scene_template=scene_template,
            model_path=str(local),
            min_score=min_score,
        )

    @classmethod
    def from_server(
        cls,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        concurrency: int = 8,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        max_new_tokens: int = 2048,
        parse_mode: str = "reference",
        exif_transpose: bool = False,
        max_image_pixels: int | None | object = _NO_DEFAULT,
        min_score: float | None = None,
        **client_options,
    ) -> "SceneParser":
        """Parse with a model served by an OpenAI-compatible server (``vllm serve``, SGLang,
        ``sceneparser serve``) at ``base_url`` (e.g. ``http://127.0.0.1:8000/v1``); ``model`` defaults
        to the first model it lists. Needs ``pip install 'sceneparser[remote]'``. See
        :class:`~sceneparser.inference.remote_backend.OpenAIBackend`."""
        backend = OpenAIBackend(
            base_url, model=model, api_key=api_key, concurrency=concurrency,
            min_pixels=MIN_PIXELS if min_pixels is None else min_pixels,
            max_pixels=MAX_PIXELS if max_pixels is None else max_pixels,
            max_new_tokens=max_new_tokens, **client_options,
        )
        return cls(backend, parse_mode=parse_mode, exif_transpose=exif_transpose,
                   max_image_pixels=max_image_pixels, min_score=min_score, model_path=base_url)

    @classmethod
    def from_model(cls, model, processor, *, parse_mode: str = "reference", **generation) -> "SceneParser":
        """Wrap an in-memory model + processor (e.g. right after training)."""
        return cls(TransformersBackend(model, processor, GenerationSettings.from_kwargs(**generation)), parse_mode=parse_mode)

    # ---- parsing -----------------------------------------------------------------------

    def open_image(self, image, *, name: str | None = None):
        """``image`` (path, bytes, file or PIL image) opened by :func:`sceneparser.images.open_image`
        with this parser's EXIF and pixel-limit settings."""
        return open_image(image, max_pixels=self.max_image_pixels, exif_transpose=self.exif_transpose, name=name)

    def _jobs(self, item: dict, loaded: dict) -> tuple[list[_Job], bool]:
        """Jobs for one item; also whether its query was a list."""
        image, query, question = item.get("image"), item.get("query"), item.get("question")
        scene = bool(item.get("scene", False))
        if sum(x is not None and x is not False for x in (query, question, scene or None)) > 1:
            raise InputError("give either a query, a question or scene=True, not several")
        path_key = os.fspath(image) if isinstance(image, (str, os.PathLike)) else None
        name = item.get("name")
        if name is None and path_key is not None:
            name = str(path_key)
        if path_key is not None and path_key in loaded:
            img = loaded[path_key]
        else:
            img = self.open_image(image)
            if path_key is not None:
                loaded[path_key] = img
        key = item.get("key", id(img))
        opts = {k: item[k] for k in REQUEST_OPTIONS if item.get(k) is not None}
        if question is not None:
            return [_Job(img, name, key, None, _check_text(question, "question"), False, opts)], False
        if query is None:
            q = prompts.scene_question(self.scene_template)
            return [_Job(img, name, key, None, q, True, opts)], False
        as_list = isinstance(query, (list, tuple))
        queries = list(query) if as_list else [query]
        tmpl = item.get("template") or self.template
        jobs = [
            _Job(img, name, key, _check_text(q, "query"), prompts.object_question(q, tmpl), False, opts)
            for q in queries
        ]
        return jobs, as_list

    def parse(
        self,
        image,
        query: str | Sequence[str] | None = None,
        scene: bool = False,
        *,
        question: str | None = None,
        template: str | None = None,
    ):
        """Parse one image. ``query``: a category (-> one :class:`ParseResult`), a list of categories
        (-> a list, sharing the image prefix) or ``None``/``scene=True`` (every object);
        ``question``: a whole question asked verbatim (-> one result).

        ``image`` is a path, bytes, a file object or a PIL image. Coordinates in the result are
        pixels of the image as loaded (EXIF orientation ignored unless ``exif_transpose``)."""
        item = {"image": image, "query": query, "scene": scene, "question": question, "template": template}
        jobs, as_list = self._jobs(item, {})
        results = self._run(jobs)
        return results if as_list else results[0]

    def parse_many(self, items: Iterable[Any], *, progress: bool = False) -> list[ParseResult]:
        """Parse many items in batches, flattened in input order.

        An item is ``(image, query)`` with ``query`` a string, a list of strings or ``None``
        (scene), or a dict ``{"image": ..., "query": ..., "scene": bool, "question": str,
        "template": str, "name": str, "key": hashable}`` (``name`` is reported as
        ``result.image``; items with the same ``key``, by default the same image object or path,
        share the image prefix, across items too). Per-request decoding options may be given too:
        ``max_new_tokens`` (lowers the cap), ``temperature``/``top_p``/``seed`` (sampling; the
        default is greedy, as the reference) and ``on_text`` (a callback that receives the answer
        as it is generated) — see :class:`~sceneparser.inference.types.GenerationRequest`.
        """
        jobs: list[_Job] = []
        loaded: dict = {}  # each image path is decoded once and its prefix shared
        for item in items:
            if isinstance(item, dict):
                if "image" not in item:
                    raise InputError("a parse_many dict item needs an 'image' key")
                jobs += self._jobs(item, loaded)[0]
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                jobs += self._jobs({"image": item[0], "query": item[1]}, loaded)[0]
            else:
                raise InputError("parse_many items are (image, query) pairs or dicts with an 'image' key")
        return self._run(jobs, progress=progress)

    def _run(self, jobs: list[_Job], progress: bool = False) -> list[ParseResult]:
        if not jobs:
            return []
        t0 = time.perf_counter()
        requests = [GenerationRequest(j.image, j.question, image_key=j.key, **j.options) for j in jobs]
        outs = self.backend.generate(requests, progress=progress)
        if len(outs) != len(requests):
            raise RuntimeError(f"backend {type(self.backend).__name__} returned {len(outs)} outputs for {len(requests)} requests")
        wall = time.perf_counter() - t0
        results = []
        for job, out in zip(jobs, outs):
            w, h = job.image.size
            if out.error is not None:
                pred = ParsedPrediction([], STATUS_FAILED, f"backend error: {out.error}")
            else:
                pred = parse_prediction(out.text, w, h, mode=self.parse_mode)
            hierarchy = Hierarchy.from_prediction(pred).with_scores(
                answer_scores(out.text, out.token_offsets, out.token_logprobs)
            )
            if self.min_score is not None:
                hierarchy = hierarchy.filtered(self.min_score)
            results.append(
                ParseResult(
                    query=job.query,
                    question=job.question,
                    scene=job.scene,
                    raw_text=out.text,
                    prediction=pred,
                    status=pred.status,
                    reason=pred.reason,
                    hierarchy=hierarchy,
                    image_size=(w, h),
                    image=job.image_name,
                    timing=_timing(wall, len(jobs), out),
                    backend_error=out.error,
                    token_logprobs=out.token_logprobs,
                    token_offsets=out.token_offsets,
                )
            )
        return results


__all__ = ["ParseResult", "SceneParser"]

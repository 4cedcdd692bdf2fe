"""The Python API: ``SceneParser.from_pretrained(path).parse(image, query)``.

>>> parser = SceneParser.from_pretrained("path/to/model")          # doctest: +SKIP
>>> result = parser.parse("kitchen.jpg", "mug")                    # doctest: +SKIP
>>> result.hierarchy.objects[0].parts[0].affordances[0].point      # doctest: +SKIP
>>> result.draw(result_image := ...)                               # doctest: +SKIP

A query is an object category or phrase; it is put into the reference evaluation question
(``prompts.object_question``). ``scene=True`` (or no query) asks for every object with
``prompts.scene_question()``. Several queries on one image share the image prefix (see
:mod:`sceneparser.inference.backends`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from sceneparser.errors import InputError

_NO_DEFAULT = object()


@dataclass
class ParseResult:
    """One parsed (image, query): pixel-coordinate hierarchy, reference prediction, raw text."""

    query: str | None
    question: str
    scene: bool
    raw_text: str
    prediction: dict
    status: str
    reason: str | None
    hierarchy: Any  # sceneparser.hierarchy.Hierarchy
    image_size: tuple[int, int]
    image: str | None = None
    timing: dict = field(default_factory=dict)

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
        from sceneparser.viz import draw_hierarchy

        return draw_hierarchy(image, self.hierarchy, **options)

    def tree(self) -> str:
        from sceneparser.viz import format_tree

        return format_tree(self.hierarchy, title=self.query if not self.scene else "scene")


@dataclass
class _Job:
    image: Any  # loaded PIL image
    image_name: str | None
    key: Any
    query: str | None
    question: str
    scene: bool


def _check_query(query: Any) -> str:
    if not isinstance(query, str):
        raise InputError(f"a query must be a string, not {type(query).__name__}")
    if not query.strip():
        raise InputError("empty query: give an object category such as 'mug', or use scene=True")
    return query


class SceneParser:
    """Parse images into scene -> object -> part -> affordance hierarchies."""

    def __init__(
        self,
        backend,
        *,
        parse_mode: str = "reference",
        exif_transpose: bool = False,
        max_image_pixels: int | None | object = _NO_DEFAULT,
        template: str | None = None,
        scene_template: str | None = None,
        model_path: str | None = None,
    ):
        from sceneparser.model.processor import DEFAULT_MAX_IMAGE_PIXELS

        if parse_mode not in ("reference", "repair"):
            raise InputError("parse_mode must be 'reference' or 'repair'")
        self.backend = backend
        self.parse_mode = parse_mode
        self.exif_transpose = exif_transpose
        self.max_image_pixels = DEFAULT_MAX_IMAGE_PIXELS if max_image_pixels is _NO_DEFAULT else max_image_pixels
        self.template = template
        self.scene_template = scene_template
        self.model_path = model_path

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
        **generation,
    ) -> "SceneParser":
        """Load a model directory, a hub id (via the huggingface_hub cache) or, with no path,
        the shipped default model. ``**generation`` sets decoding options (see
        :class:`~sceneparser.inference.backends.GenerationSettings`: ``max_new_tokens``,
        ``repetition_penalty``, ``stop_strings``, ``batch_size``, ``prefix_reuse``, ``layout``, ...)."""
        from sceneparser.inference.backends import GenerationSettings, TransformersBackend
        from sceneparser.model.loading import load_model_dir, resolve_model_path

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
        )

    @classmethod
    def from_model(cls, model, processor, *, parse_mode: str = "reference", **generation) -> "SceneParser":
        """Wrap an in-memory model + processor (e.g. right after training)."""
        from sceneparser.inference.backends import GenerationSettings, TransformersBackend

        return cls(TransformersBackend(model, processor, GenerationSettings.from_kwargs(**generation)), parse_mode=parse_mode)

    # ---- parsing -----------------------------------------------------------------------

    def load_image(self, image):
        """An image (path, bytes, file or PIL image) as RGB, with this parser's EXIF and size rules."""
        from sceneparser.model.processor import load_image

        return load_image(image, exif_transpose=self.exif_transpose, max_image_pixels=self.max_image_pixels)

    def _jobs(
        self, image, query, scene: bool, template: str | None, name: str | None = None, loaded: dict | None = None
    ) -> tuple[list[_Job], bool]:
        """Jobs for one image; also whether the caller asked for a list."""
        from sceneparser import prompts

        if scene and query is not None:
            raise InputError("give either a query or scene=True, not both")
        path_key = os.fspath(image) if isinstance(image, (str, os.PathLike)) else None
        if name is None and path_key is not None:
            name = str(path_key)
        if loaded is not None and path_key is not None and path_key in loaded:
            img = loaded[path_key]
        else:
            img = self.load_image(image)
            if loaded is not None and path_key is not None:
                loaded[path_key] = img
        key = id(img)
        if query is None:
            q = prompts.scene_question(self.scene_template)
            return [_Job(img, name, key, None, q, True)], False
        as_list = isinstance(query, (list, tuple))
        queries = list(query) if as_list else [query]
        tmpl = template if template is not None else self.template
        jobs = [
            _Job(img, name, key, _check_query(q), prompts.object_question(q, tmpl), False) for q in queries
        ]
        return jobs, as_list

    def parse(self, image, query: str | Sequence[str] | None = None, scene: bool = False, *, template: str | None = None):
        """Parse one image. ``query``: a category (-> one :class:`ParseResult`), a list of categories
        (-> a list, sharing the image prefix) or ``None``/``scene=True`` (every object).

        ``image`` is a path, bytes, a file object or a PIL image. Coordinates in the result are
        pixels of the image as loaded (EXIF orientation ignored unless ``exif_transpose``)."""
        jobs, as_list = self._jobs(image, query, scene, template)
        results = self._run(jobs)
        return results if as_list else results[0]

    def parse_many(self, items: Iterable[Any], *, progress: bool = False) -> list[ParseResult]:
        """Parse many ``(image, query)`` pairs in batches, flattened in input order.

        An item is ``(image, query)`` with ``query`` a string, a list of strings or ``None``
        (scene), or a dict ``{"image": ..., "query": ..., "scene": bool, "template": str,
        "name": str}`` (``name`` is reported as ``result.image``). Queries on one image (the same
        object or the same path) share the image prefix, across items too.
        """
        jobs: list[_Job] = []
        loaded: dict = {}  # each image path is decoded once and its prefix shared
        for item in items:
            name = None
            if isinstance(item, dict):
                image = item.get("image")
                query, scene, template = item.get("query"), bool(item.get("scene", False)), item.get("template")
                name = item.get("name")
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                (image, query), scene, template = item, False, None
            else:
                raise InputError("parse_many items are (image, query) pairs or dicts with an 'image' key")
            jobs += self._jobs(image, query, scene, template, name=name, loaded=loaded)[0]
        return self._run(jobs, progress=progress)

    def _run(self, jobs: list[_Job], progress: bool = False) -> list[ParseResult]:
        from sceneparser.hierarchy import Hierarchy
        from sceneparser.inference.backends import GenerationRequest
        from sceneparser.parsing import parse_prediction

        if not jobs:
            return []
        t0 = time.perf_counter()
        requests = [GenerationRequest(j.image, j.question, image_key=j.key) for j in jobs]
        if hasattr(self.backend, "generate_detailed"):
            outs = self.backend.generate_detailed(requests, progress=progress)
            texts = [o.text for o in outs]
        else:  # any backend with the plain generate(requests) -> list[str] interface
            texts, outs = self.backend.generate(requests), [None] * len(jobs)
        wall = time.perf_counter() - t0
        results = []
        for job, text, out in zip(jobs, texts, outs):
            w, h = job.image.size
            pred = parse_prediction(text, w, h, mode=self.parse_mode)
            timing = {"wall_s": round(wall, 6), "num_queries_in_call": len(jobs)}
            if out is not None:
                timing.update(
                    {
                        "prefill_s": round(out.prefill_s, 6),
                        "decode_s": round(out.decode_s, 6),
                        "num_prompt_tokens": out.num_prompt_tokens,
                        "num_output_tokens": out.num_output_tokens,
                        "finish_reason": out.finish_reason,
                    }
                )
            results.append(
                ParseResult(
                    query=job.query,
                    question=job.question,
                    scene=job.scene,
                    raw_text=text,
                    prediction=pred,
                    status=pred.status,
                    reason=pred.reason,
                    hierarchy=Hierarchy.from_prediction(pred),
                    image_size=(w, h),
                    image=job.image_name,
                    timing=timing,
                )
            )
        return results


__all__ = ["ParseResult", "SceneParser"]

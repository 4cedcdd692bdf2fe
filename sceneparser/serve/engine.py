"""The model side of the service: a :class:`~sceneparser.inference.api.SceneParser` behind the
batch function the :class:`~sceneparser.serve.batching.DynamicBatcher` calls.

:func:`make_batch_fn` flattens a batch of :class:`~sceneparser.serve.schemas.ParseJob` (one per
HTTP request, each with one or more prompts) into ONE ``SceneParser.parse_many`` call, so all
requests of a batch decode together and the queries of one request share their image prefix.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from sceneparser.serve.schemas import ParseJob

# parse_many's "template" replaces "[OBJ]" with the query; with this query the replacement is
# the identity, so a full question passes through unchanged (after the JSON-only prefix).
_IDENTITY_QUERY = "[OBJ]"


def load_parser(model: str | None, *, device=None, dtype=None, max_new_tokens: int | None = None,
                batch_size: int | None = None, max_image_pixels: int | None = None, exif_transpose: bool = False):
    """``SceneParser.from_pretrained`` with the service's options (None keeps the API default)."""
    from sceneparser.inference.api import SceneParser

    generation: dict[str, Any] = {}
    if max_new_tokens is not None:
        generation["max_new_tokens"] = int(max_new_tokens)
    if batch_size is not None:
        generation["batch_size"] = max(1, int(batch_size))
    options: dict[str, Any] = {"exif_transpose": exif_transpose}
    if max_image_pixels is not None:
        options["max_image_pixels"] = int(max_image_pixels)
    return SceneParser.from_pretrained(model, device=device, dtype=dtype, **options, **generation)


def question_item(image, question: str) -> dict:
    """A ``parse_many`` item that asks ``question`` verbatim (the JSON-only prefix is kept or added)."""
    from sceneparser.prompts import JSON_ONLY_PREFIX

    body = question[len(JSON_ONLY_PREFIX):] if question.startswith(JSON_ONLY_PREFIX) else question
    return {"image": image, "query": _IDENTITY_QUERY, "template": body}


_KEEP = object()


def result_to_dict(result, *, query: Any = _KEEP) -> dict:
    """The JSON of one ParseResult as the service returns it (pixel coordinates); ``query``
    replaces the result's query when given."""
    d = result.to_dict(raw=True)
    if query is not _KEEP:
        d["query"] = query
    timing = d.get("timing") or {}
    prompt, completion = timing.get("num_prompt_tokens"), timing.get("num_output_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        d["usage"] = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    d.pop("image", None)
    return d


def make_batch_fn(parser) -> Callable[[Sequence[ParseJob]], list[list[dict]]]:
    """``jobs -> [[result dict per prompt] per job]`` over one ``parser.parse_many`` call."""

    def run(jobs: Sequence[ParseJob]) -> list[list[dict]]:
        items: list[Any] = []
        counts: list[int] = []  # prompts per job, to regroup the flat results
        for job in jobs:
            if job.question is not None:
                items.append(question_item(job.image, job.question))
                counts.append(1)
            elif job.scene or not job.queries:
                items.append({"image": job.image, "query": None, "scene": True})
                counts.append(1)
            else:
                items.append({"image": job.image, "query": list(job.queries)})
                counts.append(len(job.queries))
        results = parser.parse_many(items)
        if len(results) != sum(counts):
            raise RuntimeError(f"parse_many returned {len(results)} results for {sum(counts)} prompts")
        out: list[list[dict]] = []
        pos = 0
        for job, n in zip(jobs, counts):
            chunk = results[pos:pos + n]
            pos += n
            if job.question is not None:  # asked verbatim: there is no category query
                out.append([result_to_dict(r, query=None) for r in chunk])
            else:
                out.append([result_to_dict(r) for r in chunk])
        return out

    return run

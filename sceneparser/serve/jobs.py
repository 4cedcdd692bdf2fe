"""The model side of the service: :class:`~sceneparser.serve.schemas.ParseJob` batches through one
:class:`~sceneparser.inference.api.SceneParser`.

:func:`make_batch_fn` flattens a batch of jobs (one per HTTP request, each with one or more
prompts) into ONE :meth:`SceneParser.parse_many` call, so all requests of a batch decode together
and the queries of one request share their image prefix. A job's free-form ``question`` is asked
as it is (with the JSON-only prefix in front, see :func:`sceneparser.prompts.json_question`).
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Sequence

from sceneparser.inference.api import ParseResult, SceneParser
from sceneparser.prompts import json_question
from sceneparser.serve.schemas import ParseJob


def load_parser(model: str | None, *, device=None, dtype=None, max_new_tokens: int | None = None,
                batch_size: int | None = None, max_image_pixels: int | None = None,
                exif_transpose: bool = False, min_score: float | None = None) -> SceneParser:
    """``SceneParser.from_pretrained`` with the service's options (None keeps the API default)."""
    generation: dict[str, Any] = {}
    if max_new_tokens is not None:
        generation["max_new_tokens"] = int(max_new_tokens)
    if batch_size is not None:
        generation["batch_size"] = max(1, int(batch_size))
    options: dict[str, Any] = {"exif_transpose": exif_transpose, "min_score": min_score}
    if max_image_pixels is not None:
        options["max_image_pixels"] = int(max_image_pixels)
    return SceneParser.from_pretrained(model, device=device, dtype=dtype, **options, **generation)


def token_logprobs(result: ParseResult) -> list[dict] | None:
    """OpenAI's ``logprobs.content``: each answer token's text, bytes and log-probability."""
    if result.token_logprobs is None or result.token_offsets is None:
        return None
    text, offs = result.raw_text, result.token_offsets
    ends = list(offs[1:]) + [len(text)]
    return [
        {"token": text[a:b], "logprob": lp, "bytes": list(text[a:b].encode("utf-8")), "top_logprobs": []}
        for a, b, lp in zip(offs, ends, result.token_logprobs)
        if a < len(text)
    ]


def result_to_dict(result: ParseResult, *, logprobs: bool = False) -> dict:
    """The JSON of one result as the service returns it (pixel coordinates, ``usage`` added;
    ``logprobs`` adds the answer tokens' log-probabilities)."""
    d = result.to_dict(raw=True)
    if logprobs:
        d["logprobs"] = token_logprobs(result)
    timing = d.get("timing") or {}
    prompt, completion = timing.get("num_prompt_tokens"), timing.get("num_output_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        d["usage"] = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    d.pop("image", None)
    return d


def image_key(image) -> tuple:
    """A key equal for equal pixels: requests that send the same image share its prefix (the vision
    tower and the image prefill run once per batch), as ``vllm serve`` does with prefix caching."""
    return (image.size, hashlib.blake2b(image.tobytes(), digest_size=16).digest())


def job_items(job: ParseJob) -> list[dict]:
    """The ``parse_many`` item of one job (its queries share the image prefix, and so do other jobs
    of the batch with the same pixels), with the job's per-request decoding options."""
    opts = dict(job.generation_options(), key=image_key(job.image))
    if job.question is not None:
        return [{"image": job.image, "question": json_question(job.question), **opts}]
    if job.scene or not job.queries:
        return [{"image": job.image, "scene": True, **opts}]
    return [{"image": job.image, "query": list(job.queries), **opts}]


def make_batch_fn(parser: SceneParser) -> Callable[[Sequence[ParseJob]], list[list[dict]]]:
    """``jobs -> [[result dict per prompt] per job]`` over one ``parser.parse_many`` call."""

    def run(jobs: Sequence[ParseJob]) -> list[list[dict]]:
        items = [job_items(job) for job in jobs]
        counts = [1 if "query" not in it[0] else len(it[0]["query"]) for it in items]
        results = parser.parse_many(i for it in items for i in it)
        if len(results) != sum(counts):
            raise RuntimeError(f"parse_many returned {len(results)} results for {sum(counts)} prompts")
        out: list[list[dict]] = []
        pos = 0
        for job, n in zip(jobs, counts):
            out.append([result_to_dict(r, logprobs=job.logprobs) for r in results[pos:pos + n]])
            pos += n
        return out

    return run

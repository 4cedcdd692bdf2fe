"""The demo's ``predict(image, query, scene) -> (annotated image, JSON dict)`` over a SceneParser.

The page hands over the uploaded file's path untouched; it is opened here by the parser
(:func:`sceneparser.images.open_image`), exactly as the CLI, the HTTP service and ``eval`` open
images, so every route gives the same pixels and the same answer.
"""

from __future__ import annotations

from typing import Callable

from sceneparser.inference.api import SceneParser
from sceneparser.serve.jobs import result_to_dict
from sceneparser.viz import draw_hierarchy


def split_queries(text: str) -> list[str]:
    """``"mug, door"`` -> ``["mug", "door"]`` (empty pieces dropped, order and duplicates kept)."""
    return [q.strip() for q in (text or "").split(",") if q.strip()]


def make_predict(parser: SceneParser) -> Callable:
    """Wrap ``parser`` for :func:`sceneparser.demo.app.build_demo`.

    Several comma-separated categories are parsed in one call (sharing the image prefix) and
    drawn together; the JSON holds every object plus one entry per query with its raw text.
    ``image`` is a path, bytes or a PIL image; problems with it raise
    :class:`~sceneparser.images.ImageError`, shown on the page.
    """

    def predict(image, query: str, scene: bool):
        image = parser.open_image(image)
        queries = split_queries(query)
        if scene or not queries:
            results = [parser.parse(image, scene=True)]
        else:
            results = parser.parse(image, queries)
        dicts = [result_to_dict(r) for r in results]
        objects = [obj for d in dicts for obj in d["objects"]]
        statuses = [d["status"] for d in dicts]
        status = "failed" if "failed" in statuses else ("repaired" if "repaired" in statuses else "ok")
        payload = {
            "image_size": [image.width, image.height],
            "query": None if scene or not queries else (queries if len(queries) > 1 else queries[0]),
            "scene": bool(scene or not queries),
            "status": status,
            "reason": "; ".join(d["reason"] for d in dicts if d.get("reason")) or None,
            "objects": objects,
            "results": dicts,
        }
        annotated = results[0].draw(image) if len(results) == 1 else draw_hierarchy(image, {"objects": objects})
        return annotated, payload

    return predict

"""``final_metrics.json``: the four published numbers (docs/reference.md, *final-metrics*)."""

from __future__ import annotations

import json

from sceneparser.errors import InputError

__all__ = ["PUBLIC_METRICS", "extract_final_metrics", "final_metrics_text"]

PUBLIC_METRICS = ("L1", "L2", "L3", "ParseRate")


def extract_final_metrics(result: dict) -> dict:
    """``{"L1": L1.f1, "L2": L2.f1, "L3": L3.f1, "ParseRate": v}`` from a metrics result.

    A value that is a dict with an ``f1`` key gives its ``f1``; any other value is taken as is.
    A missing key raises :class:`~sceneparser.errors.InputError`.
    """
    if not isinstance(result, dict):
        raise InputError(f"a metrics result must be a JSON object, got {type(result).__name__}")
    out = {}
    for name in PUBLIC_METRICS:
        if name not in result:
            raise InputError(f"missing metric key {name!r} in the metrics result")
        value = result[name]
        out[name] = value["f1"] if isinstance(value, dict) and "f1" in value else value
    return out


def final_metrics_text(final: dict) -> str:
    """The file text the reference writes (indent 2, ``ensure_ascii=False``, no trailing newline)."""
    return json.dumps(final, ensure_ascii=False, indent=2)

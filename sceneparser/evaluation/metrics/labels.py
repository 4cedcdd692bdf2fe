"""Part names and actions: normalisation, optional alias maps (canonical evaluation), caching."""

from __future__ import annotations

import json
from pathlib import Path

from sceneparser.errors import InputError
from sceneparser.evaluation.metrics.primitives import normalize_label

CACHE_LIMIT = 50_000


def load_alias_map(path) -> dict:
    """``{"alias_map": {alias: canonical}}`` JSON -> normalised map (missing file: InputError)."""
    if not path:
        return {}
    p = Path(path)
    if not p.exists():
        raise InputError(f"mapping file not found: {path}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        items = data.get("alias_map", {}).items()
        return {normalize_label(k): normalize_label(v) for k, v in items}
    except (ValueError, AttributeError) as exc:
        raise InputError(f"{path}: expected a JSON object {{\"alias_map\": {{alias: canonical}}}} ({exc})") from exc


class LabelMap:
    """Raw label -> ``(normalised, canonical)``; string labels are cached (``cache`` is public for speed).

    ``canonical`` is the alias map's value for the normalised label when canonical evaluation
    is on, else the normalised label itself.
    """

    __slots__ = ("cache", "alias", "canonical")

    def __init__(self, alias: dict | None = None):
        self.cache: dict = {}
        self.alias = alias
        self.canonical = alias is not None

    def __call__(self, value) -> tuple:
        if value.__class__ is str:
            hit = self.cache.get(value)
            if hit is not None:
                return hit
        n = str(value or "").strip().lower()
        out = (n, self.alias.get(n, n) if self.canonical else n)
        if value.__class__ is str and len(self.cache) < CACHE_LIMIT:
            self.cache[value] = out
        return out

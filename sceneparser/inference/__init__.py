"""sceneparser.inference: ``SceneParser`` (the Python API) and the generation backends.

``from sceneparser.inference import SceneParser`` works without importing torch until used.
"""

from __future__ import annotations

_LAZY = {
    "SceneParser": "sceneparser.inference.api",
    "ParseResult": "sceneparser.inference.api",
    "TransformersBackend": "sceneparser.inference.backends",
    "GenerationRequest": "sceneparser.inference.backends",
    "GenerationSettings": "sceneparser.inference.backends",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sceneparser.inference' has no attribute {name!r}")

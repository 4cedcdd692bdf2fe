"""sceneparser.inference: ``SceneParser`` (the Python API), the backend contract and its backends.

``from sceneparser.inference import SceneParser`` works without importing torch until a model
is loaded. Layout: :mod:`~sceneparser.inference.types` (the contract: requests, settings,
outputs, :class:`Backend`), :mod:`~sceneparser.inference.transformers_backend`,
:mod:`~sceneparser.inference.vllm_backend`, :mod:`~sceneparser.inference.api` (``SceneParser``).
"""

from __future__ import annotations

import importlib

_LAZY = {
    "SceneParser": "sceneparser.inference.api",
    "ParseResult": "sceneparser.inference.api",
    "Backend": "sceneparser.inference.types",
    "GenerationOutput": "sceneparser.inference.types",
    "GenerationRequest": "sceneparser.inference.types",
    "GenerationSettings": "sceneparser.inference.types",
    "TransformersBackend": "sceneparser.inference.transformers_backend",
    "VLLMBackend": "sceneparser.inference.vllm_backend",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sceneparser.inference' has no attribute {name!r}")

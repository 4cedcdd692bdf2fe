"""sceneparser: hierarchical scene parsing (scene -> object -> part -> affordance).

``import sceneparser`` runs before every ``import sceneparser.<module>``, so it stays cheap:
``sceneparser.SceneParser`` is resolved on first use (module ``__getattr__``), which keeps the
inference stack (and, on use, torch and transformers) out of ``sceneparser --help`` and
``sceneparser metrics``.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["SceneParser", "__version__"]


def __getattr__(name: str):
    if name == "SceneParser":
        from sceneparser.inference.api import SceneParser

        return SceneParser
    raise AttributeError(f"module 'sceneparser' has no attribute {name!r}")

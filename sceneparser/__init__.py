"""sceneparser: hierarchical scene parsing (scene -> object -> part -> affordance).

The heavy pieces (torch, transformers) are imported lazily: ``import sceneparser`` is cheap,
and ``sceneparser.SceneParser`` pulls in the inference stack on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["SceneParser", "__version__"]


def __getattr__(name: str):
    if name == "SceneParser":
        from sceneparser.inference.api import SceneParser

        return SceneParser
    raise AttributeError(f"module 'sceneparser' has no attribute {name!r}")

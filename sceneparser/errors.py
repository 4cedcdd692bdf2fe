"""Exceptions that carry a message meant for the user.

Code anywhere in the package raises :class:`SceneParserError` (or a subclass) with a
sentence a user can act on; the CLI prints it without a traceback and exits with
``exit_code``.
"""

from __future__ import annotations


class SceneParserError(Exception):
    """An error caused by the user's input or environment, with an actionable message."""

    exit_code: int = 2


class InputError(SceneParserError, ValueError):
    """Bad input data (a file, a record, an image, an argument)."""


class ModelLoadError(SceneParserError, OSError):
    """A model directory or hub id that cannot be loaded (missing files, wrong layout)."""


class MissingDependencyError(SceneParserError, ImportError):
    """An optional extra is needed: the message names the ``pip install`` command."""


#: top-level module of each optional dependency -> the extra of ``pyproject.toml`` that installs it
OPTIONAL_MODULES = {
    "accelerate": "train", "peft": "train", "deepspeed": "train", "tensorboard": "train",
    "fastapi": "serve", "starlette": "serve", "uvicorn": "serve", "multipart": "serve",
    "python_multipart": "serve", "httpx": "serve",
    "gradio": "demo",
    "vllm": "vllm",
    "openai": "remote",
    "pycocotools": "coco", "faster_coco_eval": "coco",
    "supervision": "supervision",
    "datasets": "hf", "pyarrow": "hf",
    "matplotlib": "report",
}


def missing_extra(exc: ImportError) -> MissingDependencyError | None:
    """The :class:`MissingDependencyError` an ImportError of an optional dependency stands for
    (``None`` for anything else, which is a real bug)."""
    names = [(getattr(exc, "name", None) or "").split(".")[0]]
    text = str(exc)
    names += [m for m in OPTIONAL_MODULES if f"'{m}'" in text or f" {m}" in text or f"{m}>=" in text]
    for name in names:
        if name in OPTIONAL_MODULES:
            extra = OPTIONAL_MODULES[name]
            return MissingDependencyError(f"this needs the optional package '{name}': pip install 'sceneparser[{extra}]'")
    return None


def require(module: str, extra: str):
    """Import an optional dependency lazily, or raise a clear MissingDependencyError."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"this needs the optional package '{module}': pip install 'sceneparser[{extra}]' ({exc})"
        ) from exc

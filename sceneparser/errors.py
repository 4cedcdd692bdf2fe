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

    exit_code = 3


def require(module: str, extra: str):
    """Import an optional dependency lazily, or raise a clear MissingDependencyError."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"'{module}' is needed for this feature: pip install 'sceneparser[{extra}]' ({exc})"
        ) from exc

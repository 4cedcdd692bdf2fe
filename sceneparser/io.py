"""Atomic writes: the one place that writes a file through a temporary file and a rename.

A reader never sees a half-written file: the data goes to a temporary file in the same folder
(``.NAME.<random>.tmp``), is flushed and fsynced, then renamed over ``path``. If anything fails
the temporary file is removed and ``path`` keeps its old content (or stays absent).

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> write_json(d / "a.json", {"x": 1}, indent=None)
>>> (d / "a.json").read_text()
'{"x": 1}'
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

__all__ = ["atomic_open", "write_bytes", "write_text", "write_json", "write_jsonl"]


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once, at import: changing it later would race with other threads


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", *, fsync: bool = True) -> Iterator[IO]:
    """Open a temporary file next to ``path``; on a clean exit it replaces ``path`` atomically.

    ``mode`` is ``"w"`` (UTF-8 text) or ``"wb"``. Parent folders are created.
    """
    if mode not in ("w", "wb"):
        raise ValueError("atomic_open mode must be 'w' or 'wb'")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8", "newline": ""})) as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb", fsync=fsync) as fh:
        fh.write(data)


def write_text(path: str | os.PathLike, text: str, *, fsync: bool = True) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w", fsync=fsync) as fh:
        fh.write(text)


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2, fsync: bool = True) -> None:
    """Write ``obj`` as JSON (``ensure_ascii=False``) to ``path`` atomically."""
    write_text(path, json.dumps(obj, ensure_ascii=False, indent=indent), fsync=fsync)


def write_jsonl(path: str | os.PathLike, rows: Iterable[Any], *, fsync: bool = True) -> int:
    """Write ``rows`` as JSON lines (``ensure_ascii=False``) to ``path`` atomically; returns the count."""
    n = 0
    with atomic_open(path, "w", fsync=fsync) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False))
            fh.write("\n")
            n += 1
    return n

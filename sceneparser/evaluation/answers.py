"""Crash-safe, append-only answer files for ``sceneparser eval``.

One answer is one JSON line (the reference answer schema, docs/evaluation.md, plus our extra
fields). A run appends each finished batch with a single ``os.write`` of complete lines followed
by ``fsync``, so a kill at any moment leaves every earlier line intact and at most one torn line
at the end of the file. Opening a file for writing again drops that torn tail (it belonged to the
batch in flight, which is answered again); reading a file another process may still be writing
ignores it without touching the file.

A sample is identified by :func:`sample_key` = ``(record_index, image_path, category)``: the
record index tells apart two val lines that name the same image.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Iterator

from sceneparser.errors import InputError

try:  # advisory lock so two runs never append to the same shard file (POSIX only)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

SampleKey = tuple  # (record_index: int, image_path: str, category: str | None)


def sample_key(answer: dict) -> SampleKey:
    """The identity of one answered sample: ``(record_index, image_path, category)``."""
    return (int(answer.get("record_index", -1)), str(answer.get("image_path")), answer.get("category"))


def encode_line(answer: dict) -> bytes:
    """One answer as a complete UTF-8 JSON line (``ensure_ascii=False``, as the reference)."""
    return (json.dumps(answer, ensure_ascii=False) + "\n").encode("utf-8")


def _split_complete(data: bytes) -> tuple[list[bytes], int]:
    """Complete lines of ``data`` and the byte length they cover (a torn tail is excluded)."""
    end = data.rfind(b"\n") + 1  # 0 when there is no newline at all
    return data[:end].splitlines(), end


def _decode(lines: list[bytes], path: Path) -> list[dict]:
    out = []
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(
                f"{path}:{lineno}: not a valid answer line ({exc}); the file was not written by "
                "sceneparser eval or was edited. Re-run with --overwrite to start this output "
                "directory afresh."
            ) from None
        if not isinstance(obj, dict):
            raise InputError(f"{path}:{lineno}: an answer line must be a JSON object; re-run with --overwrite")
        out.append(obj)
    return out


def read_answers(path: str | os.PathLike) -> list[dict]:
    """All complete answers in ``path`` (missing file: none). A torn last line is ignored."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    lines, _ = _split_complete(data)
    return _decode(lines, path)


class AnswerWriter:
    """The single writer of one answer file; use as a context manager.

    On open it takes an exclusive advisory lock (a second writer gets a clear error), drops a
    torn tail left by a killed run, and exposes the answers already in the file as
    :attr:`existing`. :meth:`append` writes a batch as complete lines in one ``os.write`` and
    makes it durable (``fsync``) before returning.
    """

    def __init__(self, path: str | os.PathLike, *, fsync: bool = True):
        self.path = Path(path)
        self.fsync = fsync
        self.existing: list[dict] = []
        self.dropped_tail_bytes = 0
        self._fd: int | None = None

    def __enter__(self) -> "AnswerWriter":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    raise InputError(
                        f"{self.path} is being written by another sceneparser eval process; "
                        "wait for it to finish or use another --out / --shard-index"
                    ) from None
            size = os.fstat(fd).st_size
            data = os.pread(fd, size, 0) if size else b""
            lines, end = _split_complete(data)
            self.existing = _decode(lines, self.path)
            if end < size:  # torn tail from a killed run: it is answered again
                os.ftruncate(fd, end)
                self.dropped_tail_bytes = size - end
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def append(self, answers: Iterable[dict]) -> int:
        """Append complete lines for ``answers`` in one write; returns the number written."""
        if self._fd is None:
            raise RuntimeError("AnswerWriter is not open")
        chunks = [encode_line(a) for a in answers]
        if not chunks:
            return 0
        data = memoryview(b"".join(chunks))
        while data:  # os.write on a regular file writes everything; loop for safety
            n = os.write(self._fd, data)
            data = data[n:]
        if self.fsync:
            os.fsync(self._fd)
        return len(chunks)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing also releases the lock
            self._fd = None


def iter_answer_files(directory: str | os.PathLike) -> Iterator[Path]:
    """The shard answer files under ``directory`` in a stable order."""
    directory = Path(directory)
    if directory.is_dir():
        yield from sorted(directory.glob("answers.shard-*.jsonl"))


def shard_file_name(shard_index: int, num_shards: int) -> str:
    return f"answers.shard-{shard_index}-of-{num_shards}.jsonl"

"""The training TSV layout (docs/reference.md, *training-data*): writer, random-access reader and validator.

Three files per split, in one directory::

    images.tsv               "<self byte offset>\\t<base64 image bytes>\\n"
    annotations.tsv          "<byte offset of the image line>\\t<annotation JSON>\\n"
    annotations.tsv.lineidx  "<byte offset of the annotation line>\\n"

All offsets are byte offsets; the files are read and written in binary and decoded as UTF-8
(so non-ASCII names work under any locale). The reader also accepts TSVs made by the
reference converter, including the legacy ``b'...'`` wrapper around the base64 column.

:class:`TSVReader` opens its file handles lazily and re-opens them after a ``fork`` (one
handle per DataLoader worker) and drops them when pickled. Images are decoded with the package's
one loader, :func:`sceneparser.images.open_image`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

from sceneparser.errors import InputError
from sceneparser.images import open_image

IMAGES_TSV = "images.tsv"
ANNOTATIONS_TSV = "annotations.tsv"
LINEIDX = "annotations.tsv.lineidx"
TSV_FILES = (IMAGES_TSV, ANNOTATIONS_TSV, LINEIDX)
TMP_PREFIX = ".tsv-writing-"  # the writer's private folder in the output directory
_OWNER_LOCK = ".owner.lock"  # inside it: locked by the writer (and its forked workers) while alive
_UNOWNED_GRACE_S = 60.0  # a folder without a lock file (older versions) counts as stale after this


@dataclasses.dataclass
class TSVRow:
    """One row: the stored image bytes (original file bytes or a JPEG re-encode) + annotation."""

    image_bytes: bytes
    annotation: dict
    index: int = -1
    image_offset: int = -1

    def image(self):
        """The image as 8-bit RGB through :func:`sceneparser.images.open_image` (no pixel limit, no
        EXIF transpose, as the reference); raises :class:`sceneparser.images.ImageError`."""
        return open_image(self.image_bytes, max_pixels=None, name=f"in row {self.index}" if self.index >= 0 else None)


def _write_all(fd: int, pieces: list) -> None:
    total = sum(len(p) for p in pieces)
    n = os.writev(fd, pieces)
    if n != total:  # short write: finish the rest piece by piece
        data = b"".join(bytes(p) for p in pieces)[n:]
        while data:
            data = data[os.write(fd, data):]


def _copy_range(src_fd: int, dst_fd: int, offset: int, length: int) -> None:
    """Copy ``length`` bytes of ``src_fd`` at ``offset`` to the end position of ``dst_fd``."""
    copy = getattr(os, "copy_file_range", None)
    while length > 0 and copy is not None:
        try:
            n = copy(src_fd, dst_fd, length, offset)
        except OSError:
            break
        if n <= 0:
            break
        offset += n
        length -= n
    while length > 0:  # portable fallback
        data = os.pread(src_fd, min(length, 1 << 20), offset)
        if not data:
            raise OSError(f"spill file ended early ({length} bytes missing)")
        _write_all(dst_fd, [data])
        offset += len(data)
        length -= len(data)


def _strip_b64_column(col: bytes) -> bytes:
    col = col.strip()
    if col.startswith(b"b'") and col.endswith(b"'"):  # legacy str(bytes) wrapper
        col = col[2:-1]
    return col


# --------------------------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------------------------


class TSVWriter:
    """Writes the three files under temporary names and renames them into place on commit.

    The three files are one commit (the lineidx is renamed last), so this is the one writer that
    does not go through :mod:`sceneparser.io`, which replaces a single file. A crash or an exception never leaves a partial set of files under the final names.
    The private folder (``.tsv-writing-*``) of a writer that was killed (no Python code runs on
    SIGKILL) is removed by the next writer into the same ``out_dir`` (:func:`remove_stale_tmp_dirs`).
    ``fsync=True`` also syncs the data to disk before the rename (power-loss safety, slower).
    Use as a context manager: an exception inside the block removes the temporary files and
    leaves any previous output untouched.
    """

    def __init__(self, out_dir: str | os.PathLike, *, fsync: bool = False):
        self.out_dir = Path(out_dir)
        self.fsync = fsync
        self.out_dir.mkdir(parents=True, exist_ok=True)
        #: temporary folders of killed writers found in ``out_dir`` and removed
        self.removed_stale: list[Path] = remove_stale_tmp_dirs(self.out_dir)
        self._tmp_dir = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=self.out_dir))
        self._owner = _claim(self._tmp_dir)
        self._fh = {name: open(self._tmp_dir / name, "wb") for name in (ANNOTATIONS_TSV, LINEIDX)}
        # images.tsv is written unbuffered at the fd level (large payloads, zero-copy splicing)
        self._fh[IMAGES_TSV] = open(self._tmp_dir / IMAGES_TSV, "wb", buffering=0)
        self._img_fd = self._fh[IMAGES_TSV].fileno()
        self.img_offset = 0
        self.ann_offset = 0
        self.count = 0
        self._done = False

    def write(self, image_b64: bytes | str, annotation_json: bytes | str) -> None:
        """Append one row. ``image_b64`` is the base64 text; ``annotation_json`` the JSON text."""
        if isinstance(image_b64, str):
            image_b64 = image_b64.encode("ascii")
        if isinstance(annotation_json, str):
            annotation_json = annotation_json.encode("utf-8")
        if b"\n" in annotation_json:
            raise ValueError("annotation JSON must be a single line")
        head = str(self.img_offset).encode("ascii") + b"\t"
        _write_all(self._img_fd, [head, image_b64, b"\n"])
        self._finish_row(head, len(head) + len(image_b64) + 1, annotation_json)

    def write_spliced(self, src_fd: int, src_offset: int, length: int, annotation_json: bytes) -> None:
        """Append one row whose image column (base64 text + ``\\n``) is ``length`` bytes of
        file ``src_fd`` at ``src_offset``; the kernel copies them (no user-space copy)."""
        head = str(self.img_offset).encode("ascii") + b"\t"
        _write_all(self._img_fd, [head])
        _copy_range(src_fd, self._img_fd, src_offset, length)
        self._finish_row(head, len(head) + length, annotation_json)

    def _finish_row(self, head: bytes, img_line_len: int, annotation_json: bytes) -> None:
        self._fh[ANNOTATIONS_TSV].write(head + annotation_json + b"\n")
        self._fh[LINEIDX].write(str(self.ann_offset).encode("ascii") + b"\n")
        self.img_offset += img_line_len
        self.ann_offset += len(head) + len(annotation_json) + 1
        self.count += 1

    @property
    def tmp_dir(self) -> Path:
        """The private directory holding the files until :meth:`commit` (removed afterwards)."""
        return self._tmp_dir

    def write_row(self, image_bytes: bytes, annotation: dict) -> None:
        """Append one row from raw image bytes and an annotation dict."""
        self.write(base64.b64encode(image_bytes), json.dumps(annotation, ensure_ascii=False))

    def commit(self) -> list[Path]:
        """Flush (and with ``fsync=True`` sync to disk) and move the files into ``out_dir`` (lineidx last)."""
        if self._done:
            raise RuntimeError("writer already closed")
        for fh in self._fh.values():
            fh.flush()
            if self.fsync:
                os.fsync(fh.fileno())
            fh.close()
        final = []
        for name in TSV_FILES:  # the lineidx (the dataset's index) is renamed last
            dst = self.out_dir / name
            os.replace(self._tmp_dir / name, dst)
            final.append(dst)
        shutil.rmtree(self._tmp_dir, ignore_errors=True)
        self._owner.close()
        self._done = True
        return final

    def abort(self) -> None:
        if self._done:
            return
        for fh in self._fh.values():
            fh.close()
        shutil.rmtree(self._tmp_dir, ignore_errors=True)
        self._owner.close()
        self._done = True

    def __enter__(self) -> "TSVWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            if not self._done:
                self.commit()
        else:
            self.abort()


def _claim(tmp_dir: Path):
    """Mark ``tmp_dir`` as owned by this process for as long as it lives.

    POSIX: an exclusive ``flock`` on ``tmp_dir/.owner.lock``. The kernel drops it when the last
    process holding the file open ends, however it ends (kill -9 included); forked workers
    inherit it, so a folder whose workers still write is never taken for stale. Elsewhere: the
    owner's pid is written into the file.
    """
    fh = open(tmp_dir / _OWNER_LOCK, "w+b")
    if fcntl is not None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    else:  # pragma: no cover - not POSIX
        fh.write(str(os.getpid()).encode("ascii"))
        fh.flush()
    return fh


def _owner_alive(tmp_dir: Path) -> bool:
    lock = tmp_dir / _OWNER_LOCK
    try:
        fh = open(lock, "rb")
    except FileNotFoundError:
        # made by an older version (no lock file), or its writer died between creating the folder
        # and the lock file: stale once nothing has been written into it for a while
        try:
            return time.time() - tmp_dir.stat().st_mtime < _UNOWNED_GRACE_S
        except OSError:
            return False
    with fh:
        if fcntl is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            return False  # the lock is released when fh closes
        try:  # pragma: no cover - not POSIX
            os.kill(int(fh.read().strip() or b"0"), 0)
        except (ValueError, ProcessLookupError):
            return False
        except OSError:
            return True
        return True


def remove_stale_tmp_dirs(out_dir: str | os.PathLike) -> list[Path]:
    """Remove the ``.tsv-writing-*`` folders in ``out_dir`` whose writer is dead (a killed run).

    A folder whose writer (or one of its forked workers) still runs is left alone, so two
    conversions into one folder never delete each other's files. Returns the removed folders.
    """
    removed = []
    try:
        candidates = sorted(p for p in Path(out_dir).iterdir() if p.name.startswith(TMP_PREFIX) and p.is_dir())
    except OSError:
        return removed
    for d in candidates:
        if not _owner_alive(d):
            shutil.rmtree(d, ignore_errors=True)
            if not d.exists():
                removed.append(d)
    return removed


# --------------------------------------------------------------------------------------------
# Reader
# --------------------------------------------------------------------------------------------


class TSVReader:
    """Random access to a TSV split through its lineidx.

    ``TSVReader(tsv_dir)`` or ``TSVReader(images_tsv=..., annotations_tsv=..., lineidx=...)``.
    ``len(reader)`` rows; ``reader.read(i)`` -> :class:`TSVRow`. Fork- and pickle-safe.
    """

    def __init__(
        self,
        tsv_dir: str | os.PathLike | None = None,
        *,
        images_tsv: str | os.PathLike | None = None,
        annotations_tsv: str | os.PathLike | None = None,
        lineidx: str | os.PathLike | None = None,
    ):
        if tsv_dir is not None:
            d = Path(tsv_dir)
            images_tsv = images_tsv or d / IMAGES_TSV
            annotations_tsv = annotations_tsv or d / ANNOTATIONS_TSV
            lineidx = lineidx or d / LINEIDX
        if images_tsv is None or annotations_tsv is None:
            raise InputError("TSVReader needs a TSV directory or the images/annotations TSV paths")
        self.images_tsv = Path(images_tsv)
        self.annotations_tsv = Path(annotations_tsv)
        self.lineidx = Path(lineidx) if lineidx is not None else Path(str(annotations_tsv) + ".lineidx")
        for p in (self.images_tsv, self.annotations_tsv, self.lineidx):
            if not p.is_file():
                raise InputError(
                    f"TSV file not found: {p} (make it with `sceneparser convert --json-file X.jsonl --out-dir DIR`)"
                )
        self.offsets = self._read_lineidx(self.lineidx)
        self._img_fh = None
        self._ann_fh = None
        self._pid = None

    @staticmethod
    def _read_lineidx(path: Path) -> list[int]:
        out = []
        with open(path, "rb") as fh:
            for n, line in enumerate(fh, start=1):
                line = line.strip()
                if not line:
                    continue
                try:
                    out.append(int(line))
                except ValueError:
                    raise InputError(f"{path}: line {n} is not a byte offset: {line[:40]!r}") from None
        return out

    def __len__(self) -> int:
        return len(self.offsets)

    def _handles(self):
        pid = os.getpid()
        if self._pid != pid or self._ann_fh is None:
            # after a fork the parent's handles share file positions: open our own
            self._img_fh = open(self.images_tsv, "rb")
            self._ann_fh = open(self.annotations_tsv, "rb")
            self._pid = pid
        return self._img_fh, self._ann_fh

    def read_annotation_line(self, i: int) -> tuple[int, dict]:
        """``(image_offset, annotation)`` of row ``i`` without touching the image file."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"row {i} out of range for {len(self)} rows")
        _, ann_fh = self._handles()
        ann_fh.seek(self.offsets[i])
        line = ann_fh.readline()
        try:
            off, ann = line.rstrip(b"\r\n").split(b"\t", 1)
            return int(off), json.loads(ann.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"{self.annotations_tsv}: malformed annotation row {i} at byte {self.offsets[i]}: {exc}") from None

    def read_image_bytes(self, image_offset: int) -> bytes:
        img_fh, _ = self._handles()
        img_fh.seek(image_offset)
        line = img_fh.readline()
        cols = line.rstrip(b"\r\n").split(b"\t", 1)
        if len(cols) != 2:
            raise InputError(f"{self.images_tsv}: no image line at byte {image_offset}")
        try:
            return base64.b64decode(_strip_b64_column(cols[1]), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InputError(f"{self.images_tsv}: bad base64 at byte {image_offset}: {exc}") from None

    def read(self, i: int) -> TSVRow:
        off, ann = self.read_annotation_line(i)
        return TSVRow(self.read_image_bytes(off), ann, index=i if i >= 0 else len(self) + i, image_offset=off)

    def __getitem__(self, i: int) -> TSVRow:
        return self.read(i)

    def __iter__(self) -> Iterator[TSVRow]:
        for i in range(len(self)):
            yield self.read(i)

    def close(self) -> None:
        for fh in (self._img_fh, self._ann_fh):
            if fh is not None:
                fh.close()
        self._img_fh = self._ann_fh = None
        self._pid = None

    def __enter__(self) -> "TSVReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_img_fh"] = state["_ann_fh"] = state["_pid"] = None
        return state

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class TSVValidation:
    rows: int
    images: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def _looks_like_image(data: bytes) -> bool:
    return data[:3] == b"\xff\xd8\xff" or data[:8] == b"\x89PNG\r\n\x1a\n" or data[:4] in (b"GIF8", b"RIFF", b"II*\x00", b"MM\x00*") or data[:2] == b"BM"


def validate_tsv(tsv_dir: str | os.PathLike, *, decode_images: bool = False, max_problems: int = 50) -> TSVValidation:
    """Re-read the three files and check every offset and row.

    Checks: each lineidx offset is the start of an annotation line, in order and covering every
    line; each annotation line is ``<int>\\t<JSON object>`` with valid UTF-8; each image line's
    first column is its own byte offset; every annotation points at an image line; every image
    column is valid base64 of image bytes (``decode_images`` also decodes them with
    :func:`sceneparser.images.open_image`).
    """
    d = Path(tsv_dir)
    problems: list[str] = []

    def bad(msg: str) -> None:
        if len(problems) < max_problems:
            problems.append(msg)
        elif len(problems) == max_problems:
            problems.append("... more problems not shown")

    for name in TSV_FILES:
        if not (d / name).is_file():
            return TSVValidation(0, 0, [f"missing file: {d / name}"])
    try:
        offsets = TSVReader._read_lineidx(d / LINEIDX)
    except InputError as exc:
        return TSVValidation(0, 0, [str(exc)])

    image_offsets: set[int] = set()
    n_images = 0
    pos = 0
    with open(d / IMAGES_TSV, "rb") as fh:
        for n, line in enumerate(fh, start=1):
            n_images += 1
            if not line.endswith(b"\n"):
                bad(f"{IMAGES_TSV}: line {n} is not terminated (truncated file?)")
            cols = line.rstrip(b"\r\n").split(b"\t", 1)
            if len(cols) != 2 or cols[0] != str(pos).encode():
                bad(f"{IMAGES_TSV}: line {n} does not start with its own byte offset {pos}")
            else:
                try:
                    data = base64.b64decode(_strip_b64_column(cols[1]), validate=True)
                    if not _looks_like_image(data):
                        bad(f"{IMAGES_TSV}: line {n} does not hold image bytes")
                    elif decode_images:
                        open_image(data, max_pixels=None, name=f"on line {n}")
                except Exception as exc:  # noqa: BLE001 - any decode failure is a problem to report
                    bad(f"{IMAGES_TSV}: line {n}: undecodable image column ({type(exc).__name__}: {exc})")
            image_offsets.add(pos)
            pos += len(line)

    n_rows = 0
    pos = 0
    with open(d / ANNOTATIONS_TSV, "rb") as fh:
        for n, line in enumerate(fh, start=1):
            if n_rows < len(offsets) and offsets[n_rows] != pos:
                bad(f"{LINEIDX}: entry {n_rows + 1} is {offsets[n_rows]}, but annotation line {n} starts at byte {pos}")
            n_rows += 1
            if not line.endswith(b"\n"):
                bad(f"{ANNOTATIONS_TSV}: line {n} is not terminated (truncated file?)")
            cols = line.rstrip(b"\r\n").split(b"\t", 1)
            try:
                img_off = int(cols[0])
                ann = json.loads(cols[1].decode("utf-8"))
                if not isinstance(ann, dict) or not isinstance(ann.get("objects", []), list):
                    bad(f"{ANNOTATIONS_TSV}: line {n}: annotation is not an object with an 'objects' list")
                if img_off not in image_offsets:
                    bad(f"{ANNOTATIONS_TSV}: line {n}: image offset {img_off} is not the start of an image line")
            except (ValueError, IndexError, UnicodeDecodeError) as exc:
                bad(f"{ANNOTATIONS_TSV}: line {n}: malformed row ({type(exc).__name__}: {exc})")
            pos += len(line)
    if n_rows != len(offsets):
        bad(f"{LINEIDX} has {len(offsets)} entries but {ANNOTATIONS_TSV} has {n_rows} lines")
    return TSVValidation(n_rows, n_images, problems)


__all__ = [
    "ANNOTATIONS_TSV",
    "IMAGES_TSV",
    "LINEIDX",
    "TSVReader",
    "TSVRow",
    "TSVValidation",
    "TSVWriter",
    "remove_stale_tmp_dirs",
    "validate_tsv",
]

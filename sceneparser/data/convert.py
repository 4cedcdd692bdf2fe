"""Benchmark JSONL -> training TSV (docs/reference.md, *training-data*), lossless by default.

Differences from the reference converter (all deliberate; the annotation JSON is the same):

* the ORIGINAL image bytes are stored (no lossy JPEG q75 re-encode); ``reencode_jpeg_quality=75``
  gives the reference's bytes for 8-bit RGB, L, P and CMYK images (PIL ``convert("RGB")`` + JPEG
  with default subsampling);
* every skipped record is reported with its line and reason (summary + ``skipped.jsonl``), and
  repaired fields are reported as warnings (``warnings.jsonl``);
* the output is written under temporary names and renamed at the end, so an interrupted run
  leaves no inconsistent files; ``validate=True`` re-reads the three files afterwards;
* 16-bit images are scaled to 8 bits and stored as an RGB PNG (the reference's ``convert("RGB")``
  clips them); malformed boxes become ``null`` instead of crashing later.

Every conversion to RGB (the 16-bit PNG, the JPEG re-encode) and every full decode
(``verify_images=True``) goes through the package's one image loader,
:func:`sceneparser.images.open_image` / :func:`~sceneparser.images.to_rgb`, so a stored image has
the pixels every other entry point would give it: 16-bit values ``v`` become ``rint(v / 257)``
(before, this module used ``v >> 8``, which is one lower for about a quarter of the values), and
8-bit RGB, L, P and CMYK images are PIL's ``convert("RGB")``, byte for byte as the reference.

Images are checked cheaply by default (header, size, the end-of-image marker of JPEG/PNG, so
missing, empty, truncated and non-image files are caught); ``verify_images=True`` also decodes
every image fully (and so refuses what the loader refuses, e.g. an aspect ratio over 200).

What the cheap check costs and catches, beyond that (no pixel is decoded):

* **pixel limit**: an image whose header declares more than ``max_image_pixels`` pixels
  (default: the loader's :data:`~sceneparser.images.DEFAULT_MAX_IMAGE_PIXELS`) is skipped before
  anything is decoded (a PNG that declares 900 Mpixels in a few bytes would otherwise be stored, and
  every reader would refuse or choke on it);
* **JPEG compressed data**: one regular-expression pass over the entropy-coded data for markers
  that cannot occur there (only ``FF00`` stuffing, restart markers, fill bytes and the segments
  allowed between progressive scans can). A body overwritten with other bytes almost always
  shows one, and PIL's full decode then refuses the image. A scan runs at memory speed (well under
  a millisecond for a typical photo). What it cannot see: damage that keeps the marker structure
  (e.g. a zeroed block), which only a full decode can find, and often not even that;
* **PNG**: the CRC of every chunk (``zlib.crc32``, also memory speed).

Damage found this way is a *warning* (``warnings.jsonl``, "corrupt JPEG data" / "corrupt PNG
data"), not a skip: the cheap check cannot tell whether a decoder recovers. With
``verify_images=True`` the full decode decides (a refused image is skipped).

Duplicate records (the same image file, however its path is spelled, and the same annotation)
are reported in ``warnings.jsonl`` ("duplicate record ... as line N") and kept. The image is
identified by its normalised path, not its bytes: hashing every image cost more CPU than the
base64 encoding (+30% of the conversion's CPU time in ``benchmarks/bench_convert.py``), and the
duplicates seen in practice are the same line twice (e.g. concatenated JSONL files).
"""

from __future__ import annotations

import base64
import collections
import concurrent.futures as cf
import dataclasses
import hashlib
import io
import json
import multiprocessing as mp
import os
import re
import sys
import time
import warnings
import zlib
from pathlib import Path
from typing import Any, Iterable, Iterator

from PIL import Image, UnidentifiedImageError

from sceneparser.data.records import (
    Problem,
    decode_line,
    iter_lines,
    validate_and_annotate,
    validate_record,
)
from sceneparser.data.tsv import TSVWriter, validate_tsv
from sceneparser.data.workers import die_with_parent
from sceneparser.errors import InputError
from sceneparser.images import DEFAULT_MAX_IMAGE_PIXELS, ImageError, open_image
from sceneparser.io import write_jsonl

SKIPPED_JSONL = "skipped.jsonl"
WARNINGS_JSONL = "warnings.jsonl"

# --------------------------------------------------------------------------------------------
# Image inspection
# --------------------------------------------------------------------------------------------

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class ImageProblem(Exception):
    """The image cannot be used (message says why)."""


@dataclasses.dataclass
class ImageInfo:
    format: str
    width: int
    height: int
    mode: str  # "RGB", "L", "CMYK", "P", "RGBA", "I;16" ... (best effort)
    bit_depth: int = 8
    damage: str | None = None  # what the cheap check found wrong in the compressed data (None: nothing)


def _jpeg_info(data: bytes) -> ImageInfo:
    n = len(data)
    i = 2
    info = None
    sos = -1
    while i + 4 <= n:
        if data[i] != 0xFF:
            raise ImageProblem("corrupt JPEG (bad marker structure)")
        while i < n and data[i] == 0xFF:
            i += 1
        if i >= n:
            break
        marker = data[i]
        i += 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            continue
        if marker == 0xD9:
            break
        if i + 2 > n:
            break
        seglen = int.from_bytes(data[i:i + 2], "big")
        if seglen < 2:
            raise ImageProblem("corrupt JPEG (bad segment length)")
        if marker in _SOF and info is None:
            if i + 8 > n:
                break
            precision = data[i + 2]
            h = int.from_bytes(data[i + 3:i + 5], "big")
            w = int.from_bytes(data[i + 5:i + 7], "big")
            nc = data[i + 7]
            mode = {1: "L", 3: "RGB", 4: "CMYK"}.get(nc, f"{nc}-channel")
            info = ImageInfo("JPEG", w, h, mode, precision)
        if marker == 0xDA:
            sos = i
            break
        i += seglen
    if info is None:
        raise ImageProblem("truncated or corrupt JPEG (no frame header)")
    if sos < 0:
        raise ImageProblem("truncated JPEG (no image data)")
    if data.rfind(b"\xff\xd9", sos) < 0:
        raise ImageProblem("truncated JPEG (no end-of-image marker)")
    info.damage = _jpeg_scan_damage(data, sos)
    return info


# In entropy-coded data 0xFF is followed by 0x00 (stuffing), a restart marker (D0-D7) or another
# 0xFF (fill); any other byte starts a marker.
_ENTROPY_MARKER = re.compile(rb"\xff(?![\x00\xd0-\xd7\xff])")
# Segments that may stand between the scans of a progressive (or multi-scan) JPEG: DHT, DAC, DQT,
# DNL, DRI, DHP, EXP, APPn, COM, and SOS itself.
_BETWEEN_SCANS = {0xC4, 0xCC, 0xDA, 0xDB, 0xDC, 0xDD, 0xDE, 0xDF, 0xFE, *range(0xE0, 0xF0)}


def _jpeg_scan_damage(data: bytes, sos: int) -> str | None:
    """Why the compressed data after the first SOS header (``sos``: its length field) is damaged,
    or None. Stops at the first end-of-image marker (an MPO's further images are not checked)."""
    n = len(data)
    i = sos + int.from_bytes(data[sos:sos + 2], "big")
    while True:
        m = _ENTROPY_MARKER.search(data, i)
        if m is None or m.start() + 1 >= n:
            return None  # no end-of-image marker after the scans: reported as truncated elsewhere
        j = m.start()
        marker = data[j + 1]
        if marker == 0xD9:
            return None
        if marker not in _BETWEEN_SCANS:
            return f"corrupt JPEG data (marker 0xFF{marker:02X} inside the compressed data at byte {j})"
        if j + 4 > n:
            return None
        seglen = int.from_bytes(data[j + 2:j + 4], "big")
        if seglen < 2:
            return f"corrupt JPEG data (bad segment length at byte {j})"
        i = j + 2 + seglen


_PNG_SIG = b"\x89PNG\r\n\x1a\n"


def _png_info(data: bytes) -> ImageInfo:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise ImageProblem("corrupt PNG (no IHDR)")
    w = int.from_bytes(data[16:20], "big")
    h = int.from_bytes(data[20:24], "big")
    depth = data[24]
    ctype = data[25]
    mode = {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}.get(ctype, "?")
    if data.rfind(b"IEND") < 0:
        raise ImageProblem("truncated PNG (no IEND chunk)")
    return ImageInfo("PNG", w, h, mode, depth, damage=_png_chunk_damage(data))


def _png_chunk_damage(data: bytes) -> str | None:
    """The first chunk whose CRC does not match or that runs past the end of the file, or None."""
    view = memoryview(data)
    n = len(data)
    i = len(_PNG_SIG)
    while i + 12 <= n:
        length = int.from_bytes(data[i:i + 4], "big")
        name = data[i + 4:i + 8].decode("latin-1")
        end = i + 12 + length
        if end > n:
            return f"corrupt PNG data ({name!r} chunk at byte {i} runs past the end of the file)"
        if zlib.crc32(view[i + 4:end - 4]) != int.from_bytes(data[end - 4:end], "big"):
            return f"corrupt PNG data (CRC mismatch in the {name!r} chunk at byte {i})"
        if name == "IEND":
            return None
        i = end
    return None


def _pil_info(data: bytes, max_pixels: int | None) -> ImageInfo:
    """Format, size and mode of an image in a format other than JPEG and PNG (decodes it, after
    checking the size in its header against ``max_pixels``)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit replaces it
            im = Image.open(io.BytesIO(data))
        with im:
            _check_pixels(im.width, im.height, max_pixels)
            im.load()
            depth = 16 if im.mode.startswith("I;16") or im.mode == "I" else 8
            return ImageInfo(im.format or "?", im.width, im.height, im.mode, depth)
    except ImageProblem:
        raise
    except UnidentifiedImageError:
        raise ImageProblem("not a readable image (unknown or corrupt format)") from None
    except Image.DecompressionBombError as exc:
        raise ImageProblem(f"too many pixels ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - PIL raises many kinds
        raise ImageProblem(f"not a readable image ({type(exc).__name__}: {exc})") from None


def _check_pixels(w: int, h: int, max_pixels: int | None) -> None:
    if max_pixels is not None and w * h > max_pixels:
        raise ImageProblem(f"too many pixels ({w}x{h} = {w * h:,}, over the limit of {max_pixels:,}; "
                           "--max-image-pixels raises it)")


def inspect_image(data: bytes, *, full_decode: bool = False, max_pixels: int | None = None) -> ImageInfo:
    """Header-level check (fast) or a full decode; raises :class:`ImageProblem`.

    ``max_pixels``: refuse an image whose header declares more pixels, before decoding anything.
    Damage the cheap check finds in the compressed data is returned in ``ImageInfo.damage``.
    """
    if not data:
        raise ImageProblem("image file is empty (0 bytes)")
    if data[:3] == b"\xff\xd8\xff":
        info = _jpeg_info(data)
    elif data[:8] == _PNG_SIG:
        info = _png_info(data)
    else:
        info = _pil_info(data, max_pixels)
    _check_pixels(info.width, info.height, max_pixels)
    if full_decode:
        _decode_rgb(data)
    if info.width <= 0 or info.height <= 0:
        raise ImageProblem(f"image has no pixels ({info.width}x{info.height})")
    return info


def _decode_rgb(data: bytes):
    """The image fully decoded as 8-bit RGB by :func:`sceneparser.images.open_image` (no pixel limit)."""
    try:
        return open_image(data, max_pixels=None)
    except ImageError as exc:
        raise ImageProblem(f"not a readable image ({exc})") from None


def _to_8bit_png(data: bytes) -> bytes:
    """A 16-bit image scaled to 8 bits (not clipped, as the loader scales it) and stored losslessly as PNG."""
    buf = io.BytesIO()
    _decode_rgb(data).save(buf, format="PNG")
    return buf.getvalue()


def reencode_jpeg(data: bytes, quality: int) -> bytes:
    """The reference's bytes for 8-bit images: RGB (PIL ``convert("RGB")``, 16-bit scaled as the
    loader does) then JPEG at ``quality`` (PIL defaults else)."""
    buf = io.BytesIO()
    _decode_rgb(data).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# One record
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Options:
    image_root: str | None
    reencode_quality: int | None
    verify_images: bool
    keep_pseudo_flag: bool
    max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS


def _process(line: int, raw: bytes, opt: _Options) -> tuple:
    """-> ("ok", line, b64, ann_json, warnings, digest) | ("skip", line, image_path, problems).

    ``digest``: a hash of the image's normalised path and the annotation (finds duplicate records)."""
    obj, problems = decode_line(raw, line)
    if obj is None:
        return ("skip", line, None, [p.to_dict() for p in problems])
    image_path = obj.get("image_path") if type(obj) is dict else None
    if type(image_path) is not str or not image_path.strip():
        _, problems = validate_record(obj, line, copy=False)  # reports the record-level error
        return ("skip", line, image_path if type(image_path) is str else None, [p.to_dict() for p in problems])
    path = image_path if os.path.isabs(image_path) else os.path.join(opt.image_root, image_path)
    extra: list[Problem] = []

    def skip(field: str, msg: str) -> tuple:
        _, probs = validate_record(obj, line, copy=False)
        probs = [p for p in probs if p.severity == "error"] + [Problem(line, field, msg)]
        return ("skip", line, image_path, [p.to_dict() for p in probs])

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return skip("image_path", f"image not found: {path}")
    except OSError as exc:
        return skip("image_path", f"cannot read image {path}: {exc.strerror or exc}")
    try:
        info = inspect_image(data, full_decode=opt.verify_images, max_pixels=opt.max_pixels)
        if info.damage:
            how = "it decodes, but pixels may be wrong" if opt.verify_images else \
                "stored without a full decode (--verify-images decodes it and skips it if it fails)"
            extra.append(Problem(line, "image_path", f"{info.damage}, {how}: {path}", "warning"))
        if opt.reencode_quality is not None:
            data = reencode_jpeg(data, opt.reencode_quality)
        elif info.bit_depth > 8:
            data = _to_8bit_png(data)
            extra.append(Problem(line, "image_path", f"{info.bit_depth}-bit {info.format} image scaled to 8 bits and stored as PNG", "warning"))
        if opt.reencode_quality is None:
            if info.mode == "CMYK":
                extra.append(Problem(line, "image_path", "CMYK JPEG stored as is (readers convert it to RGB)", "warning"))
            elif info.mode == "P":
                extra.append(Problem(line, "image_path", "palette image stored as is (readers convert it to RGB)", "warning"))
    except ImageProblem as exc:
        return skip("image_path", f"{exc}: {path}")
    except Exception as exc:  # noqa: BLE001 - e.g. a decoder bug: report, never crash the run
        return skip("image_path", f"cannot decode image ({type(exc).__name__}: {exc}): {path}")
    rec, problems, ann = validate_and_annotate(obj, line, size=(info.width, info.height), keep_pseudo_flag=opt.keep_pseudo_flag)
    if rec is None:
        return ("skip", line, image_path, [p.to_dict() for p in problems])
    try:
        ann_json = json.dumps(ann, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return ("skip", line, image_path, [p.to_dict() for p in problems if p.severity == "error"] + [
            Problem(line, "objects", "a string holds an unpaired surrogate (\\ud800-\\udfff) and cannot be stored as UTF-8").to_dict()])
    except (TypeError, ValueError) as exc:
        return ("skip", line, image_path, [Problem(line, "objects", f"annotation cannot be serialised: {exc}").to_dict()])
    warns = [p.to_dict() for p in extra + problems] if (extra or problems) else []
    key = os.path.normpath(os.path.abspath(path)).encode("utf-8", "surrogateescape") + b"\0" + ann_json
    return ("ok", line, base64.b64encode(data), ann_json, warns, hashlib.blake2b(key, digest_size=16).digest())


def _process_chunk(chunk: list[tuple[int, bytes]], opt: _Options) -> list[tuple]:
    return [_process(line, raw, opt) for line, raw in chunk]


# Per worker process: its spill file (set by the pool initializer; one per process, so workers
# never share a file). Image payloads go there and the parent splices them into images.tsv with
# copy_file_range instead of receiving megabytes through pipes.
_SPILL: dict[str, Any] = {}


def _init_worker(spill_dir: str, parent_pid: int) -> None:
    # a worker must not outlive a killed parent (see sceneparser.data.workers)
    die_with_parent(parent_pid)
    path = os.path.join(spill_dir, f"spill-{os.getpid()}.b64")
    _SPILL["path"] = path
    _SPILL["fh"] = open(path, "ab", buffering=1 << 20)


def _read_range(path: str, start: int, end: int, first_line: int) -> list[tuple[int, bytes]]:
    """The non-blank lines of ``path[start:end]`` with their 1-based line numbers."""
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read(end - start)
    out = []
    for k, raw in enumerate(data.split(b"\n")):
        raw = raw.rstrip(b"\r")
        if raw.strip():
            out.append((first_line + k, raw))
    return out


def _line_ranges(path: Path, lines_per_chunk: int) -> Iterator[tuple[int, int, int]]:
    """``(start, end, first_line)`` byte ranges of ``lines_per_chunk`` lines each (the parent
    only finds newlines; workers read and parse the lines themselves)."""
    start = 0
    first_line = 1
    pos = 0
    n = 0
    block = 1 << 20
    with open(path, "rb") as fh:
        buf = b""
        base = 0
        while True:
            data = fh.read(block)
            if not data:
                break
            buf = data
            base = pos
            i = 0
            while True:
                j = buf.find(b"\n", i)
                if j < 0:
                    break
                n += 1
                i = j + 1
                if n == lines_per_chunk:
                    end = base + i
                    yield start, end, first_line
                    start, first_line, n = end, first_line + lines_per_chunk, 0
            pos += len(data)
    if pos > start:
        yield start, pos, first_line


def _process_range_spilled(path: str, start: int, end: int, first_line: int, opt: _Options) -> list[tuple]:
    return _process_chunk_spilled(_read_range(path, start, end, first_line), opt)


def _process_chunk_spilled(chunk: list[tuple[int, bytes]], opt: _Options) -> list[tuple]:
    fh = _SPILL["fh"]
    out = []
    for line, raw in chunk:
        r = _process(line, raw, opt)
        if r[0] == "ok":
            pos = fh.tell()
            fh.write(r[2])
            fh.write(b"\n")
            r = ("spilled", r[1], (_SPILL["path"], pos, len(r[2]) + 1), r[3], r[4], r[5])
        out.append(r)
    fh.flush()
    return out


# --------------------------------------------------------------------------------------------
# Whole file
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ConvertSummary:
    json_file: Path
    out_dir: Path
    processed: int
    written: int
    skipped: int
    warnings: int
    skip_reasons: dict[str, int]
    warning_reasons: dict[str, int]
    seconds: float
    files: list[Path]
    validation: list[str] | None = None  # problems found by validate (None: not run)
    removed_temp_dirs: list[str] = dataclasses.field(default_factory=list)  # left by killed runs

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["json_file"] = str(self.json_file)
        d["out_dir"] = str(self.out_dir)
        d["files"] = [str(f) for f in self.files]
        return d


def _reason_key(message: str) -> str:
    """Group messages by their kind (drop the path / value after the first colon)."""
    head = message.split(":", 1)[0]
    return head.split(" (", 1)[0].strip()


def _chunks(lines: Iterable[tuple[int, bytes]], size: int) -> Iterator[list[tuple[int, bytes]]]:
    buf: list[tuple[int, bytes]] = []
    for item in lines:
        buf.append(item)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def convert_jsonl(
    json_file: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    image_root: str | os.PathLike | None = None,
    workers: int = 1,
    reencode_jpeg_quality: int | None = None,
    verify_images: bool = False,
    keep_pseudo_flag: bool = False,
    validate: bool = False,
    progress: bool = False,
    chunk_size: int = 32,
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
) -> ConvertSummary:
    """Convert a benchmark JSONL into ``out_dir/{images.tsv, annotations.tsv, annotations.tsv.lineidx}``.

    Rows keep the JSONL order (minus skipped records). Also writes ``out_dir/skipped.jsonl``
    (one line per skipped record: line, image_path, reasons) and ``out_dir/warnings.jsonl``.
    Images whose header declares more than ``max_image_pixels`` pixels are skipped (``None`` or 0:
    no limit). Temporary folders left in ``out_dir`` by a killed run are removed (``removed_temp_dirs``),
    and worker processes end when this process dies.
    """
    t0 = time.perf_counter()
    json_file = Path(json_file)
    if not json_file.is_file():
        raise InputError(f"JSONL file not found: {json_file}")
    if reencode_jpeg_quality is not None and not 1 <= int(reencode_jpeg_quality) <= 100:
        raise InputError(f"--reencode-jpeg-quality must be in 1..100, got {reencode_jpeg_quality}")
    if max_image_pixels is not None and int(max_image_pixels) < 0:
        raise InputError(f"--max-image-pixels must be >= 0 (0: no limit), got {max_image_pixels}")
    if max_image_pixels is not None and int(max_image_pixels) == 0:
        max_image_pixels = None
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the output directory {out}: {exc}") from exc
    opt = _Options(
        str(image_root) if image_root is not None else str(Path.cwd()),
        int(reencode_jpeg_quality) if reencode_jpeg_quality is not None else None,
        verify_images,
        keep_pseudo_flag,
        int(max_image_pixels) if max_image_pixels is not None else None,
    )
    skipped: list[dict] = []
    warns: list[dict] = []
    skip_reasons: collections.Counter = collections.Counter()
    warn_reasons: collections.Counter = collections.Counter()
    processed = 0

    bar = None
    if progress:
        from tqdm import tqdm

        with open(json_file, "rb") as fh:
            total = sum(buf.count(b"\n") for buf in iter(lambda: fh.read(1 << 20), b""))
        bar = tqdm(total=total, desc="convert", unit="rec", dynamic_ncols=True, file=sys.stderr)

    def results() -> Iterator[tuple]:
        if workers <= 1:
            for c in _chunks(iter_lines(json_file), chunk_size):
                yield from _process_chunk(c, opt)
            return
        ctx = mp.get_context("fork") if hasattr(os, "fork") else mp.get_context()
        max_inflight = max(2, workers * 4)
        with cf.ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(str(writer.tmp_dir), os.getpid())
        ) as ex:
            pending: collections.deque = collections.deque()
            for start, end, first in _line_ranges(json_file, chunk_size):
                pending.append(ex.submit(_process_range_spilled, str(json_file), start, end, first, opt))
                while len(pending) >= max_inflight:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()

    writer = TSVWriter(out)
    spill_fds: dict[str, int] = {}
    seen: dict[bytes, int] = {}  # digest of (image path, annotation) -> first line
    try:
        for res in results():
            processed += 1
            if res[0] == "ok" or res[0] == "spilled":
                _, line, payload, ann_json, w, digest = res
                first = seen.setdefault(digest, line)
                if first != line:
                    w = w + [Problem(line, "", f"duplicate record: the same image file and objects as line {first}",
                                     "warning").to_dict()]
                if res[0] == "ok":
                    writer.write(payload, ann_json)
                else:
                    path, pos, length = payload
                    fd = spill_fds.get(path)
                    if fd is None:
                        fd = spill_fds[path] = os.open(path, os.O_RDONLY)
                    writer.write_spliced(fd, pos, length, ann_json)
                for p in w:
                    warns.append(p)
                    warn_reasons[_reason_key(p["message"])] += 1
            else:
                _, line, image_path, probs = res
                errors = [p for p in probs if p["severity"] == "error"]
                skipped.append({"line": line, "image_path": image_path,
                                "reasons": [f"{p['field']}: {p['message']}" if p["field"] else p["message"] for p in errors]})
                for p in errors:
                    skip_reasons[_reason_key(p["message"])] += 1
            if bar is not None:
                bar.update(1)
        files = writer.commit()
    except BaseException:
        for fd in spill_fds.values():
            os.close(fd)
        spill_fds.clear()
        writer.abort()
        raise
    finally:
        for fd in spill_fds.values():
            os.close(fd)
        if bar is not None:
            bar.close()
    write_jsonl(out / SKIPPED_JSONL, skipped, fsync=False)  # as the TSV files (TSVWriter's default)
    write_jsonl(out / WARNINGS_JSONL, warns, fsync=False)
    summary = ConvertSummary(
        json_file=json_file,
        out_dir=out,
        processed=processed,
        written=writer.count,
        skipped=len(skipped),
        warnings=len(warns),
        skip_reasons=dict(skip_reasons.most_common()),
        warning_reasons=dict(warn_reasons.most_common()),
        seconds=0.0,
        files=files + [out / SKIPPED_JSONL, out / WARNINGS_JSONL],
        removed_temp_dirs=[str(p) for p in writer.removed_stale],
    )
    if validate:
        summary.validation = validate_tsv(out, decode_images=verify_images).problems
    summary.seconds = round(time.perf_counter() - t0, 3)
    return summary


__all__ = ["ConvertSummary", "ImageInfo", "ImageProblem", "convert_jsonl", "inspect_image", "reencode_jpeg"]

"""Benchmark JSONL + images as a Hugging Face ``datasets.Dataset`` and as Parquet shards.

``pip install 'sceneparser[hf]'`` (``datasets``, ``pyarrow``; imported only when used).

One row per valid record (the order of the JSONL), with the columns

* ``image_path`` -- the record's ``image_path``;
* ``image`` -- the image file's bytes, unchanged (what the training TSV stores by default);
* ``annotation`` -- the converter's annotation as JSON text, exactly the text of the TSV's
  annotation column (:func:`sceneparser.data.records.record_to_annotation`);
* ``record`` -- the validated record as JSON text (for ground truth and re-scoring).

So a row holds what a TSV row holds, and the trainer builds the same targets from either, bit for
bit. The TSV stays the reference layout; Parquet is for the ``datasets`` ecosystem and the Hub.

* :func:`records_to_dataset` -- an in-memory ``datasets.Dataset``;
* :func:`write_parquet` -- Parquet shards ``train-00000-of-0000N.parquet`` (``datasets``
  reads them with ``load_dataset("parquet", data_files=...)``), small row groups for random access;
* :func:`load_parquet` -- the shards as a ``datasets.Dataset``, or an ``IterableDataset`` with
  ``streaming=True``; :func:`iter_rows` walks either as TSV-like rows;
* :class:`ParquetReader` -- what the trainer reads (``sceneparser train --data`` may name a Parquet folder):
  ``len`` and ``read(i)`` like :class:`~sceneparser.data.tsv.TSVReader`, one row group read from
  disk at a time, so the data set never has to fit in memory;
* :class:`DatasetReader` -- the same over any ``datasets.Dataset`` with these columns.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from sceneparser.data.records import Problem, load_records, record_to_annotation
from sceneparser.data.tsv import TSVRow
from sceneparser.errors import InputError, require
from sceneparser.io import atomic_open

__all__ = [
    "COLUMNS",
    "DatasetReader",
    "ParquetReader",
    "iter_rows",
    "is_parquet_dir",
    "load_parquet",
    "parquet_files",
    "records_to_dataset",
    "write_parquet",
]

COLUMNS = ("image_path", "image", "annotation", "record")
ROW_GROUP_SIZE = 32


def _pa():
    return require("pyarrow", "hf"), require("pyarrow.parquet", "hf")


def _rows(json_file, image_root, keep_pseudo_flag: bool, problems: list[Problem]) -> Iterator[dict]:
    report = load_records(json_file, image_root, check_images=True)
    problems.extend(report.errors)
    for rec in report.records:
        try:
            image = rec.resolved_path.read_bytes()
        except OSError as exc:
            problems.append(Problem(rec.line, "image_path", f"cannot read the image: {exc}"))
            continue
        yield {
            "image_path": rec.image_path,
            "image": image,
            "annotation": json.dumps(rec.annotation(keep_pseudo_flag), ensure_ascii=False),
            "record": json.dumps(rec.data, ensure_ascii=False),
        }


def _schema():
    pa, _ = _pa()
    return pa.schema([("image_path", pa.string()), ("image", pa.binary()), ("annotation", pa.string()),
                      ("record", pa.string())])


def records_to_dataset(json_file: str | os.PathLike, image_root: str | os.PathLike | None = None, *,
                       keep_pseudo_flag: bool = False):
    """A ``datasets.Dataset`` of the valid records of a benchmark JSONL and their image bytes (in memory).

    Records that are invalid or whose image is missing are left out; ``dataset.info.description``
    counts them.
    """
    datasets = require("datasets", "hf")
    pa, _ = _pa()
    problems: list[Problem] = []
    table = pa.Table.from_pylist(list(_rows(json_file, image_root, keep_pseudo_flag, problems)), schema=_schema())
    info = datasets.DatasetInfo(description=f"sceneparser benchmark records from {json_file}; "
                                            f"{len(problems)} lines left out")
    return datasets.Dataset(table, info=info)


@dataclasses.dataclass
class ParquetSummary:
    files: list[Path]
    rows: int
    problems: list[Problem]


def write_parquet(json_file: str | os.PathLike, out_dir: str | os.PathLike, image_root: str | os.PathLike | None = None,
                  *, rows_per_shard: int = 1000, keep_pseudo_flag: bool = False) -> ParquetSummary:
    """Write the valid records of a benchmark JSONL as Parquet shards in ``out_dir`` (each atomically)."""
    _, pq = _pa()
    if rows_per_shard < 1:
        raise InputError("rows_per_shard must be >= 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stale = parquet_files(out, required=False)
    problems: list[Problem] = []
    batch: list[dict] = []
    tmp_names: list[Path] = []

    def flush() -> None:
        pa, _ = _pa()
        path = out / f".shard-{len(tmp_names):05d}.parquet"
        with atomic_open(path, "wb") as fh:
            pq.write_table(pa.Table.from_pylist(batch, schema=_schema()), fh, row_group_size=ROW_GROUP_SIZE)
        tmp_names.append(path)
        batch.clear()

    n = 0
    for row in _rows(json_file, image_root, keep_pseudo_flag, problems):
        batch.append(row)
        n += 1
        if len(batch) >= rows_per_shard:
            flush()
    if batch or not tmp_names:
        flush()
    for p in stale:
        p.unlink()
    files = []
    for i, tmp in enumerate(tmp_names):
        final = out / f"train-{i:05d}-of-{len(tmp_names):05d}.parquet"
        os.replace(tmp, final)
        files.append(final)
    return ParquetSummary(files, n, problems)


def parquet_files(folder: str | os.PathLike, *, required: bool = True) -> list[Path]:
    """The Parquet shards of ``folder`` in name order."""
    files = sorted(Path(folder).glob("*.parquet"))
    if required and not files:
        raise InputError(f"no .parquet files in {folder}")
    return files


def is_parquet_dir(path: str | os.PathLike) -> bool:
    """A folder of Parquet shards (and no training TSV)."""
    p = Path(path)
    return p.is_dir() and not (p / "images.tsv").exists() and any(p.glob("*.parquet"))


def load_parquet(folder: str | os.PathLike, *, streaming: bool = False, cache_dir: str | None = None):
    """The shards of ``folder`` as a ``datasets.Dataset`` (``streaming=True``: an ``IterableDataset``)."""
    datasets = require("datasets", "hf")
    files = [str(f) for f in parquet_files(folder)]
    return datasets.load_dataset("parquet", data_files={"train": files}, split="train", streaming=streaming,
                                 cache_dir=cache_dir)


def _row(item: dict, index: int) -> TSVRow:
    try:
        annotation = json.loads(item["annotation"])
    except (TypeError, KeyError, json.JSONDecodeError) as exc:
        raise InputError(f"row {index}: unreadable annotation ({exc})") from None
    return TSVRow(image_bytes=item["image"], annotation=annotation, index=index)


def iter_rows(dataset: Iterable[dict]) -> Iterator[TSVRow]:
    """TSV-like rows (``image_bytes``, ``annotation``) of a ``Dataset`` or a streaming ``IterableDataset``."""
    for i, item in enumerate(dataset):
        yield _row(item, i)


class DatasetReader:
    """``len`` / ``read(i)`` over a ``datasets.Dataset`` with :data:`COLUMNS` (a trainer reader)."""

    def __init__(self, dataset):
        missing = {"image", "annotation"} - set(dataset.column_names)
        if missing:
            raise InputError(f"the dataset lacks the column(s) {sorted(missing)} (see sceneparser.data.hf)")
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def read(self, i: int) -> TSVRow:
        return _row(self.dataset[int(i)], int(i))


class ParquetReader:
    """``len`` / ``read(i)`` over a folder of Parquet shards, a row group at a time (fork-safe)."""

    def __init__(self, folder: str | os.PathLike):
        _, pq = _pa()
        self.folder = Path(folder)
        self.files = parquet_files(folder)
        self._groups: list[tuple[int, int, int]] = []  # (first row, file index, row group)
        n = 0
        for fi, f in enumerate(self.files):
            meta = pq.ParquetFile(f).metadata
            names = set(meta.schema.names)
            if not {"image", "annotation"} <= names:
                raise InputError(f"{f} lacks the 'image' / 'annotation' columns (write it with sceneparser.data.hf)")
            for g in range(meta.num_row_groups):
                self._groups.append((n, fi, g))
                n += meta.row_group(g).num_rows
        self._n = n
        self._starts = [s for s, _, _ in self._groups]
        self._pid: int | None = None
        self._handles: dict[int, Any] = {}
        self._cache: tuple[int, list, list] | None = None

    def __len__(self) -> int:
        return self._n

    def _file(self, fi: int):
        if self._pid != os.getpid():  # a forked worker opens its own handles
            self._pid, self._handles, self._cache = os.getpid(), {}, None
        if fi not in self._handles:
            _, pq = _pa()
            self._handles[fi] = pq.ParquetFile(self.files[fi])
        return self._handles[fi]

    def read(self, i: int) -> TSVRow:
        i = int(i)
        if not 0 <= i < self._n:
            raise IndexError(f"row {i} out of range (0..{self._n - 1})")
        k = bisect.bisect_right(self._starts, i) - 1
        start, fi, g = self._groups[k]
        if self._cache is None or self._cache[0] != k or self._pid != os.getpid():
            table = self._file(fi).read_row_group(g, columns=["image", "annotation"])
            self._cache = (k, table.column("image").to_pylist(), table.column("annotation").to_pylist())
        _, images, anns = self._cache
        return _row({"image": images[i - start], "annotation": anns[i - start]}, i)

    def __getstate__(self) -> dict:  # no open handles in a pickled copy
        state = dict(self.__dict__)
        state.update(_handles={}, _cache=None, _pid=None)
        return state


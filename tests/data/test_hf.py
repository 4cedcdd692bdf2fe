"""Benchmark JSONL as a datasets.Dataset / Parquet shards; the trainer reads them with the TSV's targets."""

from __future__ import annotations

import json

import pytest

from sceneparser.data.convert import convert_jsonl
from sceneparser.data.hf import (DatasetReader, ParquetReader, is_parquet_dir, iter_rows, load_parquet,
                                 records_to_dataset, write_parquet)
from sceneparser.data.synth import generate_dataset
from sceneparser.data.targets import build_target, categories
from sceneparser.data.tsv import TSVReader

pytest.importorskip("pyarrow")
datasets = pytest.importorskip("datasets")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    generate_dataset(root / "synth", num_images=11, seed=3, image_size=(112, 112), val_fraction=0.0)
    jsonl = root / "synth" / "train.jsonl"
    # one extra record whose image is missing: left out by both paths
    with open(jsonl, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"image_path": "images/missing.jpg", "objects": []}) + "\n")
    convert_jsonl(jsonl, root / "tsv", image_root=root / "synth", workers=1)
    summary = write_parquet(jsonl, root / "parquet", root / "synth", rows_per_shard=4)
    return root, jsonl, summary


def _same_rows(rows_a, rows_b):
    assert len(rows_a) == len(rows_b)
    for a, b in zip(rows_a, rows_b):
        assert a.image_bytes == b.image_bytes
        assert a.annotation == b.annotation
        w, h = a.image().size
        for cat in categories(a.annotation):
            for pseudo in ("drop", "keep", "mix(0.3)"):
                assert build_target(a.annotation, w, h, cat, pseudo=pseudo, seed=1, epoch=0, index=a.index) == \
                    build_target(b.annotation, w, h, cat, pseudo=pseudo, seed=1, epoch=0, index=b.index)


def test_parquet_shards_hold_the_tsv_rows(data):
    root, _, summary = data
    assert [f.name for f in summary.files] == ["train-00000-of-00003.parquet", "train-00001-of-00003.parquet",
                                               "train-00002-of-00003.parquet"]
    assert summary.rows == 11 and len(summary.problems) == 1 and "image not found" in summary.problems[0].message
    assert is_parquet_dir(root / "parquet") and not is_parquet_dir(root / "tsv")
    tsv = TSVReader(root / "tsv")
    pq = ParquetReader(root / "parquet")
    _same_rows([tsv.read(i) for i in range(len(tsv))], [pq.read(i) for i in range(len(pq))])
    assert pq.read(5).annotation == tsv.read(5).annotation  # random access after a later group


def test_datasets_map_style_and_streaming(data):
    root, jsonl, _ = data
    tsv = TSVReader(root / "tsv")
    expected = [tsv.read(i) for i in range(len(tsv))]
    ds = records_to_dataset(jsonl, root / "synth")
    assert ds.column_names == ["image_path", "image", "annotation", "record"] and len(ds) == 11
    reader = DatasetReader(ds)
    _same_rows(expected, [reader.read(i) for i in range(len(reader))])
    cache = str(root / "cache")
    _same_rows(expected, list(iter_rows(load_parquet(root / "parquet", cache_dir=cache))))
    streamed = load_parquet(root / "parquet", streaming=True, cache_dir=cache)
    assert isinstance(streamed, datasets.IterableDataset)
    _same_rows(expected, list(iter_rows(streamed)))


def test_trainer_reads_parquet_with_the_same_samples(data):
    from sceneparser.model.tiny import build_tiny
    from sceneparser.training.config import DataSection
    from sceneparser.training.dataset import build_dataset
    from sceneparser.training.stage import apply_pixel_limits

    root, _, _ = data
    _, processor = build_tiny(seed=0)
    apply_pixel_limits(processor, 3136, 12544)
    section = DataSection(pseudo="mix(0.3)")
    a = build_dataset(root / "tsv", processor, section, seed=5)
    b = build_dataset(root / "parquet", processor, section, seed=5)
    assert isinstance(b.reader, ParquetReader) and len(a) == len(b)
    for i in range(len(a)):
        sa, sb = a[i], b[i]
        for key in ("input_ids", "labels", "mm_token_type_ids", "pixel_values", "image_grid_thw"):
            assert sa[key].equal(sb[key]), (i, key)

import base64
import shutil

import pytest

from sceneparser.data.targets import build_target, categories
from sceneparser.data.tsv import TSVReader, TSVWriter
from sceneparser.errors import InputError
from sceneparser.training.config import DataSection
from sceneparser.training.dataset import IGNORE_INDEX, SceneParserTrainDataset, build_dataset

PSEUDO_MARKERS = ("__placeholder_part__", "__none__")


def _dataset(tsv, processor, seed=3, **data):
    return SceneParserTrainDataset(TSVReader(tsv), processor, DataSection(**data), seed=seed)


def _split(processor, sample):
    ids = sample["input_ids"].tolist()
    labels = sample["labels"].tolist()
    first = next(i for i, v in enumerate(labels) if v != IGNORE_INDEX)
    return processor.decode(ids[:first]), processor.decode(ids[first:]), ids, labels, first


def test_labels_supervise_exactly_the_answer_and_im_end(train_tsv, tiny_processor):
    ds = _dataset(train_tsv, tiny_processor)
    reader = TSVReader(train_tsv)
    for i in range(6):
        sample = ds[i]
        prompt, supervised, ids, labels, first = _split(tiny_processor, sample)
        assert prompt.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n")
        assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")
        assert labels[first:] == ids[first:]
        from sceneparser.model.processor import chat_pieces

        n_image = int(sample["image_grid_thw"].prod()) // 4
        direct = tiny_processor.encode(chat_pieces(ds.draw_prompt(reader.read(i).annotation, i).question(),
                                                   "training", _split(tiny_processor, sample)[1][: -len("<|im_end|>\n")]), [n_image])
        assert direct == ids  # the cached prompt head tokenises exactly as the processor does
        row = reader.read(i)
        width, height = row.image().size
        query = ds.draw_prompt(row.annotation, i)
        assert query.question() in prompt
        expected = build_target(row.annotation, width, height, query.category, pseudo="drop", seed=3, epoch=0, index=i)
        assert supervised == expected + "<|im_end|>\n"
        # every image token is masked and flagged for M-RoPE
        n_image = int(sample["image_grid_thw"].prod()) // 4
        image_pos = [k for k, v in enumerate(sample["mm_token_type_ids"].tolist()) if v == 1]
        assert len(image_pos) == n_image and all(labels[k] == IGNORE_INDEX for k in image_pos)
        assert all(ids[k] == tiny_processor.image_token_id for k in image_pos)
        assert sample["pixel_values"].shape[0] == int(sample["image_grid_thw"].prod())
        assert sample["sp_meta"] == {"index": i, "used_index": i, "epoch": 0, "skipped": {}}


def test_trailing_newline_can_be_masked(train_tsv, tiny_processor):
    ds = _dataset(train_tsv, tiny_processor, supervise_trailing_newline=False)
    _, supervised, ids, labels, first = _split(tiny_processor, ds[0])
    im_end = tiny_processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    last = max(k for k, v in enumerate(ids) if v == im_end)
    assert labels[last] == im_end
    assert all(v == IGNORE_INDEX for v in labels[last + 1 :]) and last + 1 < len(ids)


def test_queries_are_deterministic_and_change_with_the_epoch(train_tsv, tiny_processor):
    a = _dataset(train_tsv, tiny_processor, seed=11)
    b = _dataset(train_tsv, tiny_processor, seed=11)
    first = [a[i]["input_ids"].tolist() for i in range(12)]
    assert first == [b[i]["input_ids"].tolist() for i in range(12)]
    b.set_epoch(1)
    assert b[0]["sp_meta"]["epoch"] == 1
    assert first != [b[i]["input_ids"].tolist() for i in range(12)]
    b.set_epoch(0)
    assert first == [b[i]["input_ids"].tolist() for i in range(12)]


def test_pseudo_mix_is_drawn_per_epoch(train_tsv, tiny_processor):
    def pseudo_count(ds, epoch):
        ds.set_epoch(epoch)
        texts = [_split(tiny_processor, ds[i])[1] for i in range(len(ds))]
        return sum(any(m in t for m in PSEUDO_MARKERS) for t in texts), texts

    drop = _dataset(train_tsv, tiny_processor, pseudo="drop")
    assert pseudo_count(drop, 0)[0] == 0
    mix = _dataset(train_tsv, tiny_processor, pseudo="mix(0.5)")
    counts = [pseudo_count(mix, e)[0] for e in range(3)]
    assert sum(counts) > 0
    keep = _dataset(train_tsv, tiny_processor, pseudo="keep")
    n_keep = pseudo_count(keep, 0)[0]
    assert all(c <= n_keep for c in counts) and min(counts) < n_keep


def test_query_mode_all_enumerates_every_category(train_tsv, tiny_processor):
    reader = TSVReader(train_tsv)
    per_image = [categories(reader.read(i).annotation) for i in range(len(reader))]
    ds = _dataset(train_tsv, tiny_processor, query_mode="all")
    assert len(ds) == sum(len(c) for c in per_image) > len(reader)
    assert ds.items[: len(per_image[0])] == [(0, c) for c in per_image[0]]
    for k, (image_index, category) in enumerate(ds.items[:5]):
        prompt, supervised, *_ = _split(tiny_processor, ds[k])
        assert f" {category}" in prompt or category in prompt
        assert f'"name": "{category}"' in supervised


@pytest.fixture()
def broken_tsv(tmp_path, train_tsv):
    """Rows: good, undecodable image, good, no objects, good, corrupt annotation JSON, good."""
    src = TSVReader(train_tsv)
    good = [src.read(i) for i in range(4)]
    out = tmp_path / "broken"
    with TSVWriter(out) as w:
        w.write_row(good[0].image_bytes, good[0].annotation)
        w.write_row(b"this is not an image", good[1].annotation)
        w.write_row(good[1].image_bytes, good[1].annotation)
        w.write_row(good[2].image_bytes, {"objects": []})
        w.write_row(good[2].image_bytes, good[2].annotation)
        w.write(base64.b64encode(good[3].image_bytes), '{"objects": [oops')
        w.write_row(good[3].image_bytes, good[3].annotation)
    return out


def test_bad_rows_are_skipped_counted_and_replaced(broken_tsv, tiny_processor):
    ds = build_dataset(broken_tsv, tiny_processor, DataSection(), seed=0)
    assert len(ds) == 7
    reasons = {}
    for i in range(len(ds)):
        sample = ds[i]  # never raises, never recurses
        meta = sample["sp_meta"]
        assert meta["index"] == i and meta["used_index"] in (0, 2, 4, 6)
        for reason, n in meta["skipped"].items():
            reasons[reason] = reasons.get(reason, 0) + n
    assert reasons.get("unreadable_image", 0) >= 1
    assert reasons.get("no_objects", 0) >= 1
    assert reasons.get("unreadable_row", 0) >= 1
    assert sum(ds.skip_counts.values()) == sum(reasons.values())


def test_everything_too_long_is_an_error_not_a_recursion(train_tsv, tiny_processor):
    ds = _dataset(train_tsv, tiny_processor, max_length=20, max_skip_retries=5)
    with pytest.raises(InputError, match="6 samples in a row"):
        ds[0]
    assert ds.skip_counts["too_long"] == 6


def test_missing_and_mismatched_files_fail_at_start(tmp_path, train_tsv, broken_tsv, tiny_processor):
    missing = tmp_path / "missing"
    shutil.copytree(train_tsv, missing)
    (missing / "annotations.tsv.lineidx").unlink()
    with pytest.raises(InputError, match="not found"):
        build_dataset(missing, tiny_processor, DataSection())

    mixed = tmp_path / "mixed"
    shutil.copytree(train_tsv, mixed)
    shutil.copy(broken_tsv / "annotations.tsv.lineidx", mixed / "annotations.tsv.lineidx")
    with pytest.raises(InputError, match="do not belong together"):
        build_dataset(mixed, tiny_processor, DataSection())

    images = tmp_path / "images_swapped"
    shutil.copytree(train_tsv, images)
    shutil.copy(broken_tsv / "images.tsv", images / "images.tsv")
    with pytest.raises(InputError, match="do not belong together"):
        build_dataset(images, tiny_processor, DataSection())

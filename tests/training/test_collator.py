import torch

from sceneparser.training.collator import IGNORE_INDEX, SceneParserCollator


def _sample(n_tokens, n_patches, label_from, skipped=None, epoch=0):
    ids = torch.arange(10, 10 + n_tokens)
    labels = ids.clone()
    labels[:label_from] = IGNORE_INDEX
    mm = torch.zeros(n_tokens, dtype=torch.long)
    mm[1 : 1 + n_patches // 4] = 1
    return {
        "input_ids": ids,
        "labels": labels,
        "mm_token_type_ids": mm,
        "pixel_values": torch.full((n_patches, 6), float(n_tokens)),
        "image_grid_thw": torch.tensor([[1, 2, n_patches // 2]]),
        "sp_meta": {"index": 0, "epoch": epoch, "skipped": skipped or {}},
    }


def test_right_padding_and_concatenation():
    a, b = _sample(5, 8, 2), _sample(9, 4, 3, skipped={"too_long": 2}, epoch=1)
    batch = SceneParserCollator(pad_token_id=0)([a, b])
    assert batch["input_ids"].shape == (2, 9)
    assert batch["input_ids"][0, 5:].tolist() == [0] * 4
    assert batch["labels"][0, 5:].tolist() == [IGNORE_INDEX] * 4
    assert batch["attention_mask"].sum(1).tolist() == [5, 9]
    assert batch["mm_token_type_ids"][0, 5:].sum() == 0
    assert torch.equal(batch["labels"][1], b["labels"])
    # images stay in sample order
    assert batch["pixel_values"].shape == (12, 6)
    assert batch["pixel_values"][:8].eq(5).all() and batch["pixel_values"][8:].eq(9).all()
    assert batch["image_grid_thw"].tolist() == [[1, 2, 4], [1, 2, 2]]
    stats = batch["sp_stats"]
    assert stats["samples"] == 2 and stats["tokens"] == 14
    assert stats["supervised_tokens"] == (5 - 2) + (9 - 3)
    assert stats["skipped"] == {"too_long": 2} and stats["epochs"] == [0, 1]


def test_pad_to_multiple_of():
    batch = SceneParserCollator(pad_token_id=3, pad_to_multiple_of=8)([_sample(5, 4, 1)])
    assert batch["input_ids"].shape == (1, 8)
    assert batch["input_ids"][0, 5:].tolist() == [3, 3, 3]


def test_deferred_pixels_equal_the_processor(train_tsv, tiny_processor):
    from sceneparser.data.tsv import TSVReader
    from sceneparser.training.config import DataSection
    from sceneparser.training.dataset import SceneParserTrainDataset

    plain = SceneParserTrainDataset(TSVReader(train_tsv), tiny_processor, DataSection(), seed=0)
    lazy = SceneParserTrainDataset(TSVReader(train_tsv), tiny_processor, DataSection(), seed=0, defer_pixels=True)
    samples = [lazy[0], plain[1], lazy[2]]
    assert "pixel_patches" in samples[0] and "pixel_values" not in samples[0]
    assert samples[0]["pixel_patches"].dtype == torch.uint8
    collate = SceneParserCollator(tiny_processor.pad_token_id, image_processor=tiny_processor.image_processor)
    batch = collate(samples)
    expected = torch.cat([plain[i]["pixel_values"] for i in range(3)])
    assert torch.equal(batch["pixel_values"], expected)
    assert torch.equal(batch["image_grid_thw"], torch.cat([plain[i]["image_grid_thw"] for i in range(3)]))
    import pytest

    with pytest.raises(ValueError, match="image_processor"):
        SceneParserCollator(tiny_processor.pad_token_id)(samples)


def test_uint8_batches_materialise_to_the_same_pixels(train_tsv, tiny_processor):
    from sceneparser.data.tsv import TSVReader
    from sceneparser.training.config import DataSection
    from sceneparser.training.dataset import SceneParserTrainDataset
    from sceneparser.model.patchify import materialise

    ip = tiny_processor.image_processor
    lazy = SceneParserTrainDataset(TSVReader(train_tsv), tiny_processor, DataSection(), seed=0, defer_pixels=True)
    samples = [lazy[i] for i in range(3)]
    as_float = SceneParserCollator(tiny_processor.pad_token_id, image_processor=ip)(samples)
    as_u8 = SceneParserCollator(tiny_processor.pad_token_id, image_processor=ip, pixel_format="uint8")(samples)
    assert "pixel_values" not in as_u8 and as_u8["pixel_patches"].dtype == torch.uint8
    assert torch.equal(materialise(ip, as_u8["pixel_patches"], as_u8["image_grid_thw"]), as_float["pixel_values"])

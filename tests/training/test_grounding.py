"""The auxiliary token-class loss (sceneparser.training.grounding) and its wiring into a stage."""

from __future__ import annotations

import json
import math

import pytest

from sceneparser.training.grounding import (
    BACKGROUND,
    NO_BOX,
    TokenClassHead,
    class_vocabulary,
    token_box_map,
    token_class_map,
)


def test_token_class_map_centres_smallest_box_and_bad_boxes():
    index = class_vocabulary(["mug", "table", "mug"])
    assert index == {"mug": 1, "table": 2}
    objects = [
        {"name": "table", "bbox": [0, 0, 99, 99]},  # covers the whole 100x100 image
        {"name": "mug", "bbox": [50, 0, 99, 49]},  # top-right quarter: smaller, wins there
        {"name": "mug", "bbox": None},  # no box: ignored
        {"name": "lamp", "bbox": [0, 0, 10, 10]},  # not in the vocabulary: ignored
        {"name": "mug", "bbox": [9, 9, 1, 1]},  # inverted: ignored
    ]
    grid = token_class_map(objects, 100, 100, 2, 2, index)
    assert grid == [2, 1, 2, 2]  # row-major: (0,0) table, (0,1) mug, (1,0) table, (1,1) table
    assert token_class_map([], 100, 100, 2, 3, index) == [BACKGROUND] * 6
    # case-insensitive categories: names are looked up through the key
    lower = {"mug": 1}
    assert token_class_map([{"name": " MUG", "bbox": [0, 0, 99, 99]}], 100, 100, 1, 1, lower) == [0]
    assert token_class_map([{"name": " MUG", "bbox": [0, 0, 99, 99]}], 100, 100, 1, 1, lower,
                           name_key=lambda n: n.strip().lower()) == [1]
    # a box that misses every token centre leaves the background
    assert token_class_map([{"name": "mug", "bbox": [0, 0, 20, 20]}], 100, 100, 2, 2, index) == [0, 0, 0, 0]


def test_token_box_map_gives_every_covered_token_its_whole_object_box():
    objects = [
        {"name": "table", "bbox": [0, 0, 99, 99]},
        {"name": "mug", "bbox": [50, 0, 99, 99]},  # smaller: wins the top-right token
        {"name": "mug", "bbox": "bad"},
        {"name": "mug", "bbox": [9, 9, 1, 1]},
    ]
    grid = token_box_map(objects, 100, 200, 2, 2)  # the image is 100 wide, 200 high
    assert grid[1] == (0.5, 0.0, 0.99, 0.495)
    assert grid[0] == (0.0, 0.0, 0.99, 0.495)
    assert grid[2] == grid[3] == NO_BOX  # the bottom row's centres (y = 150) lie below every box
    # the covering rule is the class map's: the same object wins each token
    index = class_vocabulary(["mug", "table"])
    assert token_class_map(objects, 100, 200, 2, 2, index) == [2, 1, BACKGROUND, BACKGROUND]
    assert token_box_map([], 100, 100, 1, 2) == [NO_BOX, NO_BOX]
    # boxes past the image edge are clamped to [0, 1]
    assert token_box_map([{"name": "x", "bbox": [-10, -10, 150, 150]}], 100, 100, 1, 1) == [(0.0, 0.0, 1.0, 1.0)]


def test_head_box_loss_is_l1_over_covered_tokens_and_round_trips():
    import torch

    from sceneparser.model.tiny import build_tiny

    model, processor = build_tiny(seed=0)
    hidden = model.config.vision_config.out_hidden_size
    head = TokenClassHead(hidden, 3, seed=1, boxes=True)
    head.attach(model)
    from PIL import Image

    inputs = processor.image_processor([Image.new("RGB", (112, 84), (120, 30, 200))])
    with torch.no_grad():
        feats = model.model.visual(inputs["pixel_values"], grid_thw=inputs["image_grid_thw"]).pooler_output
        n = feats.shape[0]
        labels = torch.zeros(n, dtype=torch.long)
        boxes = torch.tensor([NO_BOX] * n)
        boxes[1] = torch.tensor([0.1, 0.2, 0.5, 0.9])
        cls, box = head.losses(labels, boxes)
    want = (head.box(feats[1:2]) - boxes[1:2]).abs().mean()
    assert torch.allclose(box, want)
    assert torch.allclose(cls, torch.nn.functional.cross_entropy(head.linear(feats), labels))
    # no covered token: a zero box loss that still backpropagates
    with torch.no_grad():
        model.model.visual(inputs["pixel_values"], grid_thw=inputs["image_grid_thw"])
    assert head.losses(labels, torch.tensor([NO_BOX] * n))[1].item() == 0.0
    with torch.no_grad():
        model.model.visual(inputs["pixel_values"], grid_thw=inputs["image_grid_thw"])
    with pytest.raises(ValueError, match="token boxes"):
        head.losses(labels, torch.zeros(n + 1, 4))
    head.detach()
    # the box head is saved with the class head and restored from it
    other = TokenClassHead(hidden, 3, seed=7, boxes=True)
    other.load_state_dict(head.state_dict())
    assert torch.equal(other.box.weight, head.box.weight) and torch.equal(other.linear.weight, head.linear.weight)
    with pytest.raises(ValueError, match="box head"):
        TokenClassHead(hidden, 3).load_state_dict(head.state_dict())
    with pytest.raises(ValueError, match="boxes=True"):
        plain = TokenClassHead(hidden, 3)
        plain._captured = feats
        plain.losses(labels, boxes)


def test_head_loss_matches_cross_entropy_of_the_captured_features():
    import torch

    from sceneparser.model.tiny import build_tiny

    model, processor = build_tiny(seed=0)
    head = TokenClassHead(model.config.vision_config.out_hidden_size, 3, seed=1)
    head.attach(model)
    from PIL import Image

    image = Image.new("RGB", (112, 84), (120, 30, 200))
    inputs = processor.image_processor([image])
    with torch.no_grad():
        feats = model.model.visual(inputs["pixel_values"], grid_thw=inputs["image_grid_thw"]).pooler_output
        labels = torch.arange(feats.shape[0]) % 4
        got = head.loss(labels)
    want = torch.nn.functional.cross_entropy(head.linear(feats), labels)
    assert torch.allclose(got, want)
    with pytest.raises(RuntimeError):
        head.loss(labels)  # the captured features are used once
    head.detach()


def test_dataset_emits_one_class_per_image_token(train_tsv, tiny_processor):
    import torch

    from sceneparser.training.config import DataSection
    from sceneparser.training.dataset import build_dataset

    ds = build_dataset(train_tsv, tiny_processor, DataSection(), token_classes=True)
    assert ds.class_index and min(ds.class_index.values()) == 1
    sample = ds[0]
    _, gh, gw = sample["image_grid_thw"][0].tolist()
    assert sample["token_classes"].shape[0] == (gh // 2) * (gw // 2) == int((sample["mm_token_type_ids"] == 1).sum())
    assert int(sample["token_classes"].max()) <= len(ds.class_index)
    boxes = sample["token_boxes"]
    assert boxes.shape == (sample["token_classes"].shape[0], 4)
    covered = boxes[:, 0] >= 0
    assert torch.equal(covered, sample["token_classes"] != BACKGROUND)  # the same covering rule
    assert bool(((boxes[covered] >= 0) & (boxes[covered] <= 1)).all())
    assert bool((boxes[covered][:, 2] >= boxes[covered][:, 0]).all())
    plain = build_dataset(train_tsv, tiny_processor, DataSection())
    assert "token_classes" not in plain[0]
    folded = build_dataset(train_tsv, tiny_processor, DataSection(case_insensitive_categories=True), token_classes=True)
    assert set(folded.class_index) == {name.lower() for name in ds.class_index}


def test_token_class_loss_refuses_deepspeed(tmp_path, train_tsv, fast_overrides):
    from sceneparser.errors import InputError
    from sceneparser.training.config import load_config, resolve_stage
    from sceneparser.training.stage import train_stage

    overrides = fast_overrides + ["train.token_class_loss_weight=1.0", "runtime.deepspeed=zero2"]
    cfg, init = resolve_stage(load_config("tiny", overrides), 1)
    with pytest.raises(InputError, match="DeepSpeed"):
        train_stage(cfg, train_tsv, tmp_path / "s1", init=init, stage=1)


@pytest.mark.slow
def test_stage_with_token_class_loss_trains_saves_a_plain_model_and_resumes(tmp_path, train_tsv, fast_overrides):
    from sceneparser.model.loading import EXTRA_FILE, load_model_dir, read_extra
    from sceneparser.training.config import load_config, resolve_stage
    from sceneparser.training.stage import train_stage
    from sceneparser.training.checkpoints import TOKEN_HEAD_FILE

    aux = ["train.token_class_loss_weight=1.0", "train.token_box_loss_weight=2.0"]
    overrides = fast_overrides + aux + ["runtime.save_steps=2", "train.max_steps=2"]
    cfg, init = resolve_stage(load_config("tiny", overrides), 1)
    out = tmp_path / "s1"
    result = train_stage(cfg, train_tsv, out, init=init, stage=1)
    assert result.global_step == 2
    assert (out / "checkpoint-2" / TOKEN_HEAD_FILE).is_file()
    # a checkpoint is a complete model directory (tokenizer and processor too): probe/eval run on it
    ckpt_model, ckpt_processor = load_model_dir(out / "checkpoint-2")
    assert type(ckpt_model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    final_model, final_processor = load_model_dir(out)
    assert ckpt_processor.image_processor.max_pixels == final_processor.image_processor.max_pixels == cfg.data.max_pixels
    assert ckpt_processor.tokenizer.get_vocab() == final_processor.tokenizer.get_vocab()
    record = read_extra(out)["training"]["token_class_loss"]
    assert record["weight"] == 1.0 and record["box_weight"] == 2.0 and record["classes"]
    state = json.loads((out / "trainer_state.json").read_text())
    assert any("token_class_loss" in entry and "token_box_loss" in entry for entry in state["log_history"])
    model, _ = load_model_dir(out)  # a plain Qwen2.5-VL: no head weights in the model
    assert not any("token" in name and "head" in name for name, _ in model.named_parameters())

    (out / EXTRA_FILE).unlink()  # interrupted after checkpoint-2: resume to step 3 with the head restored
    cfg3, _ = resolve_stage(load_config("tiny", fast_overrides + aux + ["runtime.save_steps=2", "train.max_steps=3"]), 1)
    resumed = train_stage(cfg3, train_tsv, out, init=init, stage=1)
    assert resumed.global_step == 3


def test_attention_targets_pair_each_object_box_coordinate_with_the_tokens_under_it(train_tsv, tiny_processor):
    import torch

    from sceneparser.training.collator import SceneParserCollator
    from sceneparser.training.config import DataSection
    from sceneparser.training.dataset import build_dataset
    from sceneparser.training.grounding import attention_supervision_loss, attention_targets
    from sceneparser.training.roles import coordinate_roles

    ds = build_dataset(train_tsv, tiny_processor, DataSection(), defer_pixels=True)
    collate = SceneParserCollator(pad_token_id=tiny_processor.pad_token_id,
                                  image_processor=tiny_processor.image_processor, pixel_format="uint8")
    batch = collate([ds[i] for i in range(4)])
    tok = tiny_processor.tokenizer
    c0 = tok.convert_tokens_to_ids("<0>")
    img_id = tiny_processor.image_token_id
    targets = attention_targets(batch["input_ids"], batch["labels"], batch["image_grid_thw"], image_token_id=img_id,
                                first_coord_id=c0, merge_size=2, tokenizer=tok)
    assert targets
    for b, q, cells in targets:
        ids = batch["input_ids"][b]
        assert c0 <= int(ids[q + 1]) < c0 + 1000  # the query position predicts a coordinate token
        assert all(int(ids[k]) == img_id for k in cells)  # the keys are image tokens
    # exactly the four coordinates of every object box that covers a cell centre, and no part box
    for b in range(4):
        roles = dict(coordinate_roles(batch["input_ids"][b].tolist(), batch["labels"][b].tolist(), c0, tok))
        for _, q, _ in (t for t in targets if t[0] == b):
            assert roles[q + 1] in ("object_x1", "object_box")
        assert sum(1 for t in targets if t[0] == b) % 4 == 0

    # a hand-made box: the whole-image box covers every image token of the sample
    ids = batch["input_ids"][:1].clone()
    labels = batch["labels"][:1].clone()
    first = next(q for q, role in coordinate_roles(ids[0].tolist(), labels[0].tolist(), c0, tok) if role == "object_x1")
    ids[0, first : first + 4] = torch.tensor([c0, c0, c0 + 999, c0 + 999])
    labels[0, first : first + 4] = ids[0, first : first + 4]
    whole = attention_targets(ids, labels, batch["image_grid_thw"][:1], image_token_id=img_id, first_coord_id=c0,
                              merge_size=2, tokenizer=tok)
    all_image = (ids[0] == img_id).nonzero().flatten().tolist()
    assert whole[:4] == [(0, first + k - 1, all_image) for k in range(4)]

    # the loss: -log of head 0's attention mass on the cells; 0 when all of it is there
    seq = ids.shape[1]
    att = torch.full((1, 2, seq, seq), 0.0)
    att[0, 0, :, all_image] = 1.0 / len(all_image)
    loss = attention_supervision_loss([att], whole[:4])
    assert abs(loss.item()) < 1e-5
    att2 = torch.zeros_like(att)
    att2[0, 0, :, 0] = 1.0  # all mass on the first (text) token
    assert attention_supervision_loss([att2], whole[:4]).item() > 13.0  # -log(1e-6)
    assert attention_supervision_loss([att2], []).item() == 0.0


def test_attention_supervision_needs_eager_attention(tmp_path, train_tsv, fast_overrides):
    from sceneparser.errors import InputError
    from sceneparser.training.config import load_config, resolve_stage
    from sceneparser.training.stage import train_stage

    cfg, init = resolve_stage(load_config("tiny", fast_overrides + ["train.attention_supervision_weight=1.0"]), 1)
    with pytest.raises(InputError, match="eager"):
        train_stage(cfg, train_tsv, tmp_path / "s1", init=init, stage=1)


@pytest.mark.slow
def test_stage_with_attention_supervision_logs_and_lowers_its_loss(tmp_path, train_tsv, fast_overrides):
    from sceneparser.training.config import load_config, resolve_stage
    from sceneparser.training.stage import train_stage

    overrides = fast_overrides + ["train.attention_supervision_weight=1.0", "model.attn_implementation=eager",
                                  "train.max_steps=12", "runtime.logging_steps=1", "train.learning_rate=0.01"]
    cfg, init = resolve_stage(load_config("tiny", overrides), 1)
    out = tmp_path / "s1"
    result = train_stage(cfg, train_tsv, out, init=init, stage=1)
    assert result.global_step == 12
    state = json.loads((out / "trainer_state.json").read_text())
    losses = [e["attention_loss"] for e in state["log_history"] if "attention_loss" in e]
    assert len(losses) >= 10 and all(math.isfinite(v) for v in losses)
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3  # the head learns to look at the objects


def test_token_targets_give_a_box_exactly_where_there_is_a_class():
    from sceneparser.training.grounding import token_targets

    objects = [{"name": "mug", "bbox": [0, 0, 49, 99]}, {"name": "lamp", "bbox": [50, 0, 99, 99]}]
    classes, boxes = token_targets(objects, 100, 100, 1, 2, {"mug": 1})
    assert classes == [1, BACKGROUND]  # the lamp has no class ...
    assert boxes == [(0.0, 0.0, 0.49, 0.99), NO_BOX]  # ... so its token gets no box either
    assert token_box_map(objects, 100, 100, 1, 2)[1] == (0.5, 0.0, 0.99, 0.99)  # the plain map counts every box

"""Issue-18 training options: part/point attention targets and unknown-name queries in the dataset."""

from __future__ import annotations

import json

from sceneparser.training.config import DataSection, TrainSection


def _batch(train_tsv, tiny_processor, n=4):
    from sceneparser.training.collator import SceneParserCollator
    from sceneparser.training.dataset import build_dataset

    ds = build_dataset(train_tsv, tiny_processor, DataSection(), defer_pixels=True)
    collate = SceneParserCollator(pad_token_id=tiny_processor.pad_token_id,
                                  image_processor=tiny_processor.image_processor, pixel_format="uint8")
    return collate([ds[i] for i in range(n)])


def test_part_attention_targets_are_opt_in_and_cover_parts_and_points(train_tsv, tiny_processor):
    from sceneparser.training.grounding import attention_targets
    from sceneparser.training.roles import coordinate_roles

    batch = _batch(train_tsv, tiny_processor)
    tok = tiny_processor.tokenizer
    c0 = tok.convert_tokens_to_ids("<0>")
    img_id = tiny_processor.image_token_id
    kw = dict(image_token_id=img_id, first_coord_id=c0, merge_size=2, tokenizer=tok)
    objects_only = attention_targets(batch["input_ids"], batch["labels"], batch["image_grid_thw"], **kw)
    with_parts = attention_targets(batch["input_ids"], batch["labels"], batch["image_grid_thw"], parts=True, **kw)
    # the default is unchanged: the object targets come first-in-order and are all still there
    assert set(map(lambda t: (t[0], t[1]), objects_only)) <= set((t[0], t[1]) for t in with_parts)
    assert [t for t in with_parts if t in objects_only] == objects_only
    extra = [t for t in with_parts if t not in objects_only]
    assert extra
    seen = set()
    for b in range(len(batch["input_ids"])):
        roles = dict(coordinate_roles(batch["input_ids"][b].tolist(), batch["labels"][b].tolist(), c0, tok))
        n_parts = sum(1 for r in roles.values() if r == "part_box")
        n_points = sum(1 for r in roles.values() if r == "point")
        mine = [t for t in extra if t[0] == b]
        for _, q, cells in mine:
            role = roles[q + 1]
            seen.add(role)
            assert role in ("part_box", "point")
            assert cells and all(int(batch["input_ids"][b][k]) == img_id for k in cells)
            if role == "point":
                assert len(cells) == 1  # the one token that holds the point
        # every part box and every point gets a target (a small part: the cell of its centre)
        assert len(mine) == n_parts + n_points
    assert seen == {"part_box", "point"}


def test_train_section_option_defaults_off():
    assert TrainSection().attention_supervision_parts is False
    assert TrainSection().attention_supervision_gather is False
    assert DataSection().unknown_name_ratio == 0.0


def test_dataset_asks_for_unknown_names_with_empty_targets(train_tsv, tiny_processor):
    from sceneparser.training.dataset import build_dataset

    plain = build_dataset(train_tsv, tiny_processor, DataSection(), seed=3)
    ds = build_dataset(train_tsv, tiny_processor, DataSection(unknown_name_ratio=0.5), seed=3)
    classes = set(ds.vocabulary)
    assert classes
    unknown = 0
    for i in range(len(ds)):
        ann = ds.reader.read(i).annotation
        p = ds.draw_prompt(ann, i)
        if p.negative:
            unknown += 1
            assert p.category not in classes
            sample = ds[i]
            text = tiny_processor.tokenizer.decode(sample["input_ids"][sample["labels"] >= 0].tolist())
            assert json.loads(text.split("<|im_end|>")[0]) == {"objects": []}
        else:
            assert p == plain.draw_prompt(ann, i)  # the other queries are those of the default draw
    assert 0.3 * len(ds) < unknown < 0.7 * len(ds)


def test_v2_preset_loads_with_the_levers_on_and_v1_untouched():
    from sceneparser.training.config import load_config

    v2 = load_config("default_model_v2")
    assert v2.data.negative_ratio > 0 and v2.data.unknown_name_ratio > 0
    # run 8's recipe (run 7's with half the empty answers): part attention targets off (run 6 had them on), the one-gather loss on
    assert not v2.train.attention_supervision_parts and v2.model.attn_implementation == "eager"
    assert v2.train.attention_supervision_gather
    assert v2.stages[1]["train"]["max_steps"] == v2.train.max_steps == 16000
    v1 = load_config("default_model")
    assert v1.data.unknown_name_ratio == 0 and v1.data.negative_ratio == 0
    assert not v1.train.attention_supervision_parts and not v1.train.attention_supervision_gather
    assert v1.stages[1]["train"]["max_steps"] == 15000


def test_attention_loss_in_one_gather_equals_the_per_target_sum():
    import random

    import torch

    from sceneparser.training.grounding import attention_supervision_loss

    rng = random.Random(0)
    logits = torch.rand(3, 4, 30, 30, requires_grad=True)
    targets = [(rng.randrange(3), rng.randrange(30), rng.sample(range(30), rng.randint(1, 6))) for _ in range(25)]
    att = logits.softmax(-1)[:, 0]  # head 0 of the only layer
    per_target = torch.stack([-torch.log(att[b, q, cells].sum().clamp(min=1e-6)) for b, q, cells in targets]).mean()
    expected, = torch.autograd.grad(per_target, logits)
    got_loss = attention_supervision_loss([logits.softmax(-1)], targets, gather=True)
    got, = torch.autograd.grad(got_loss, logits)
    assert abs(float(got_loss.detach()) - float(per_target.detach())) < 1e-5
    assert torch.allclose(got, expected, atol=1e-7)
    # a head that puts all its mass on one text token: -log(1e-6) for every target
    att2 = torch.zeros(1, 1, 5, 5)
    att2[0, 0, :, 0] = 1.0
    assert attention_supervision_loss([att2], [(0, 4, [2, 3])], gather=True).item() > 13.0
    # the default is the per-target form, bit for bit
    plain = attention_supervision_loss([logits.softmax(-1)], targets)
    assert float(plain.detach()) == float(per_target.detach())


def test_torch_compile_option_reaches_the_trainer_arguments(tmp_path):
    from sceneparser.training.config import load_config
    from sceneparser.training.stage import training_arguments

    cfg = load_config("default_model_v2").for_stage(1)
    assert training_arguments(cfg, tmp_path, on_cpu=True).torch_compile is False  # off by default
    on = cfg.model_copy(update={"runtime": cfg.runtime.model_copy(update={"torch_compile": True})})
    assert training_arguments(on, tmp_path, on_cpu=True).torch_compile is True


def test_object_and_part_targets_split_the_targets_with_parts(train_tsv, tiny_processor):
    from sceneparser.training.grounding import attention_targets, object_and_part_targets
    from sceneparser.training.roles import coordinate_roles

    batch = _batch(train_tsv, tiny_processor)
    tok = tiny_processor.tokenizer
    c0 = tok.convert_tokens_to_ids("<0>")
    kw = dict(image_token_id=tiny_processor.image_token_id, first_coord_id=c0, merge_size=2, tokenizer=tok)
    args = (batch["input_ids"], batch["labels"], batch["image_grid_thw"])
    objects, parts = object_and_part_targets(*args, **kw)
    assert objects == attention_targets(*args, **kw)  # head 0 keeps exactly the default targets
    with_parts = attention_targets(*args, parts=True, **kw)
    assert parts == [t for t in with_parts if t not in objects] and len(objects) + len(parts) == len(with_parts)
    for b, q, _ in parts:
        roles = dict(coordinate_roles(batch["input_ids"][b].tolist(), batch["labels"][b].tolist(), c0, tok))
        assert roles[q + 1] in ("part_box", "point")


def test_part_head_needs_part_targets_and_a_head_the_model_has(tmp_path, train_tsv, fast_overrides):
    import pytest

    from sceneparser.errors import InputError
    from sceneparser.training.config import load_config, resolve_stage
    from sceneparser.training.stage import train_stage

    base = fast_overrides + ["train.attention_supervision_weight=1.0", "model.attn_implementation=eager"]
    assert TrainSection().attention_supervision_part_head is None
    cfg, init = resolve_stage(load_config("tiny", base + ["train.attention_supervision_part_head=1"]), 1)
    with pytest.raises(InputError, match="attention_supervision_parts=true"):
        train_stage(cfg, train_tsv, tmp_path / "a", init=init, stage=1)
    cfg, init = resolve_stage(load_config("tiny", base + ["train.attention_supervision_parts=true",
                                                          "train.attention_supervision_part_head=64"]), 1)
    with pytest.raises(InputError, match="attention heads"):
        train_stage(cfg, train_tsv, tmp_path / "b", init=init, stage=1)


def test_part_targets_on_their_own_head_train_and_log_their_loss(tmp_path, train_tsv, fast_overrides):
    import math

    from sceneparser.training.config import load_config, resolve_stage
    from sceneparser.training.stage import train_stage

    overrides = fast_overrides + ["train.attention_supervision_weight=1.0", "model.attn_implementation=eager",
                                  "train.attention_supervision_parts=true", "train.attention_supervision_part_head=1",
                                  "train.attention_supervision_gather=true",
                                  "train.max_steps=12", "runtime.logging_steps=1", "train.learning_rate=0.01"]
    cfg, init = resolve_stage(load_config("tiny", overrides), 1)
    out = tmp_path / "s1"
    assert train_stage(cfg, train_tsv, out, init=init, stage=1).global_step == 12
    log = [e for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    objects = [e["attention_loss"] for e in log if "attention_loss" in e]
    parts = [e["part_attention_loss"] for e in log if "part_attention_loss" in e]
    assert len(objects) >= 10 and len(parts) >= 10
    assert all(math.isfinite(v) for v in objects + parts)
    assert sum(parts[-3:]) / 3 < sum(parts[:3]) / 3  # head 1 learns to look at the parts

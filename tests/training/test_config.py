import json

import pytest
import yaml

from sceneparser.errors import InputError
from sceneparser.training import config as C


def test_presets_ship_and_validate():
    assert {"tiny", "reference"} <= set(C.preset_names())
    for name in ("tiny", "reference"):
        cfg = C.load_config(name)
        assert cfg.stage_numbers() == [1, 2, 3]
        for n in (1, 2, 3):
            assert isinstance(cfg.for_stage(n), C.TrainingConfig)


def test_reference_preset_matches_training_md_4_7():
    cfg = C.load_config("reference")
    expected = {
        1: ("drop", 3, 2e-5, 2e-5, 2e-6),
        2: ("mix(0.3)", 4, 1e-5, 1e-5, 1e-6),
        3: ("mix(0.5)", 3, 6e-6, 6e-6, 6e-7),
    }
    for n, (pseudo, epochs, lr, merger_lr, vision_lr) in expected.items():
        s = cfg.for_stage(n)
        assert s.data.pseudo == pseudo
        assert s.train.epochs == epochs
        assert (s.train.learning_rate, s.train.mm_projector_lr, s.train.vision_tower_lr) == (lr, merger_lr, vision_lr)
        assert s.train.per_device_batch_size * s.train.gradient_accumulation_steps * 8 == 128
        assert (s.train.weight_decay, s.train.warmup_ratio, s.train.max_grad_norm) == (0.01, 0.03, 1.0)
        assert s.train.lr_scheduler == "cosine" and s.train.optim == "adamw_torch"
        assert s.train.loss_normalisation == "micro_batch"
        assert s.data.max_length == 4096 and s.data.scene_prompt_ratio == 0.0
        assert (s.data.min_pixels, s.data.max_pixels) == (16 * 28 * 28, 2560 * 28 * 28)
        assert s.runtime.deepspeed == "zero2" and s.runtime.precision == "bf16" and s.runtime.gradient_checkpointing
        assert (s.runtime.save_steps, s.runtime.save_total_limit, s.runtime.logging_steps) == (500, 5, 10)
        assert s.train.tune_vision and s.train.tune_merger and s.train.tune_llm and not s.lora.enabled


def test_tiny_preset_logs_every_step():
    cfg = C.load_config("tiny")
    assert cfg.model.init == "tiny"
    assert all(cfg.for_stage(n).runtime.logging_steps == 1 for n in (1, 2, 3))
    assert [cfg.for_stage(n).data.pseudo for n in (1, 2, 3)] == ["drop", "mix(0.3)", "mix(0.5)"]


@pytest.mark.parametrize("name", ["zero2", "zero3"])
def test_deepspeed_configs_ship(name):
    path = C.deepspeed_config_path(name)
    data = json.loads(path.read_text())
    assert data["zero_optimization"]["stage"] == int(name[-1])
    assert data["train_micro_batch_size_per_gpu"] == "auto" and data["bf16"]["enabled"] == "auto"


def test_deepspeed_unknown_path_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="neither a shipped preset"):
        C.deepspeed_config_path(str(tmp_path / "nope.json"))


def test_set_overrides_apply_everywhere_and_per_stage():
    cfg = C.load_config("tiny", ["train.epochs=1", "stages.2.data.pseudo=keep", "runtime.report_to=[]"])
    assert [cfg.for_stage(n).train.epochs for n in (1, 2, 3)] == [1, 1, 1]
    assert cfg.for_stage(2).data.pseudo == "keep" and cfg.for_stage(3).data.pseudo == "mix(0.5)"
    assert cfg.for_stage(1).runtime.report_to == []


@pytest.mark.parametrize(
    "override, needle",
    [
        ("train.epoch=1", "did you mean 'train.epochs'"),
        ("trian.epochs=1", "did you mean 'train'"),
        ("stages.2.train.learning_rat=1", "did you mean 'train.learning_rate'"),
        ("data.pseudo=mix(3)", "pseudo must be"),
        ("train.per_device_batch_size=0", "per_device_batch_size"),
        ("train.epochs", "key=value"),
    ],
)
def test_config_typos_are_rejected_with_a_hint(override, needle):
    with pytest.raises(InputError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        C.load_config("tiny", [override])


def test_yaml_file_config_and_errors(tmp_path):
    good = tmp_path / "mine.yaml"
    good.write_text(yaml.safe_dump({"model": {"init": "tiny"}, "train": {"epochs": 2}}))
    cfg = C.load_config(good)
    assert cfg.name == "mine" and cfg.train.epochs == 2 and cfg.stage_numbers() == []
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {init: tiny}\nlora: {rank: 4}\n")
    with pytest.raises(InputError, match="unknown key 'lora.rank'"):
        C.load_config(bad)
    with pytest.raises(InputError, match="neither a preset"):
        C.load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML"):
        C.load_config(broken)


def test_for_stage_unknown_stage():
    with pytest.raises(InputError, match="no stage 7"):
        C.load_config("tiny").for_stage(7)


def test_parse_pseudo_and_deep_merge():
    assert C.parse_pseudo("mix(0.25)") == ("mix", 0.25)
    assert C.parse_pseudo("drop") == ("drop", 0.0)
    merged = C.deep_merge({"a": {"b": 1, "c": 2}, "d": 1}, {"a": {"b": 5}})
    assert merged == {"a": {"b": 5, "c": 2}, "d": 1}


def test_resolved_config_round_trips_through_yaml():
    cfg = C.load_config("reference").for_stage(2)
    again = C.validate_config(yaml.safe_load(cfg.to_yaml()))
    assert again == cfg

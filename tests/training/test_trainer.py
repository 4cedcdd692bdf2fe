import pytest
import torch
from torch import nn

from sceneparser.training.callbacks import EpochCallback
from sceneparser.training.collator import SceneParserCollator
from sceneparser.training.config import DataSection, TrainSection
from sceneparser.training.params import (
    apply_freezing,
    model_signature,
    no_decay_ids,
    parameter_checksum,
    parameter_groups,
    parameter_parts,
)
from sceneparser.training.trainer import RunStats, SceneParserTrainer


@pytest.fixture(scope="module")
def tiny_model():
    from sceneparser.model.tiny import build_tiny

    model, _ = build_tiny(seed=0)
    return model


def test_three_parts_cover_every_parameter_once(tiny_model):
    parts = parameter_parts(tiny_model)
    names = {part: [n for n, _ in params] for part, params in parts.items()}
    assert names["merger"] and all(".visual.merger." in n for n in names["merger"])
    assert names["vision"] and all(".visual." in n and ".merger." not in n for n in names["vision"])
    assert any("embed_tokens" in n for n in names["llm"]) and not any(".visual." in n for n in names["llm"])
    all_ids = [id(p) for params in parts.values() for _, p in params]
    assert len(all_ids) == len(set(all_ids)) == len({id(p) for p in tiny_model.parameters()})


def test_groups_learning_rates_and_decay(tiny_model):
    groups = parameter_groups(
        tiny_model, learning_rate=1e-3, mm_projector_lr=5e-4, vision_tower_lr=1e-4, weight_decay=0.01
    )
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {f"{p}.{d}" for p in ("llm", "vision", "merger") for d in ("decay", "no_decay")}
    assert by_name["llm.decay"]["lr"] == 1e-3 and by_name["merger.decay"]["lr"] == 5e-4
    assert by_name["vision.no_decay"]["lr"] == 1e-4
    assert all(g["weight_decay"] == (0.01 if g["name"].endswith(".decay") else 0.0) for g in groups)
    names = {id(p): n for n, p in tiny_model.named_parameters()}
    no_decay_names = {names[id(p)] for g in groups if g["name"].endswith("no_decay") for p in g["params"]}
    decay_names = {names[id(p)] for g in groups if g["name"].endswith(".decay") for p in g["params"]}
    assert all(n.endswith("bias") or "norm" in n or "ln_q" in n for n in no_decay_names)
    assert any("input_layernorm" in n for n in no_decay_names) and any("ln_q" in n for n in no_decay_names)
    assert not any(n.endswith("bias") or "layernorm" in n for n in decay_names)
    # the reference only exempts nn.LayerNorm and biases: RMSNorm weights decay there
    ref = no_decay_ids(tiny_model, "reference")
    rms = [p for n, p in tiny_model.named_parameters() if "input_layernorm" in n]
    assert rms and not any(id(p) in ref for p in rms)


def test_freezing(tiny_model):
    counts = apply_freezing(tiny_model, tune_vision=False, tune_merger=True, tune_llm=False)
    assert counts["vision"] == 0 and counts["llm"] == 0 and counts["merger"] > 0
    groups = parameter_groups(tiny_model, learning_rate=1e-3, weight_decay=0.0)
    assert {g["name"].split(".")[0] for g in groups} == {"merger"}
    sig = model_signature(tiny_model)
    apply_freezing(tiny_model, tune_vision=True, tune_merger=True, tune_llm=True)
    assert model_signature(tiny_model) != sig
    assert all(p.requires_grad for p in tiny_model.parameters())


def test_checksum_tracks_values(tiny_model):
    before = parameter_checksum(tiny_model)
    param = next(tiny_model.parameters())
    saved = param.detach().clone()
    with torch.no_grad():
        param.add_(1.0)
    assert parameter_checksum(tiny_model) != before
    with torch.no_grad():
        param.copy_(saved)
    assert parameter_checksum(tiny_model) == before


def test_epoch_callback_and_stats():
    class DS:
        epoch = None

        def set_epoch(self, e):
            self.epoch = e

    class State:
        epoch = 2.0000001

    ds = DS()
    EpochCallback(ds).on_epoch_begin(None, State(), None)
    assert ds.epoch == 2
    stats = RunStats()
    stats.update({"samples": 2, "tokens": 10, "supervised_tokens": 4, "skipped": {"too_long": 1}, "epochs": [0]})
    stats.update({"samples": 2, "tokens": 6, "supervised_tokens": 3, "skipped": {"too_long": 2}, "epochs": [1]})
    assert stats.to_dict() == {
        "micro_batches": 2, "samples": 4, "tokens": 16, "supervised_tokens": 7,
        "skipped": {"too_long": 3}, "epochs_seen": [0, 1],
    }


@pytest.mark.parametrize("mode", ["micro_batch", "global_tokens"])
def test_loss_normalisation(tmp_path, train_tsv, tiny_processor, mode):
    """micro_batch: the model's token mean; global_tokens: token sum / the global batch's count."""
    from transformers import TrainingArguments

    from sceneparser.model.tiny import build_tiny
    from sceneparser.training.dataset import SceneParserTrainDataset
    from sceneparser.data.tsv import TSVReader

    model, _ = build_tiny(seed=1)
    ds = SceneParserTrainDataset(TSVReader(train_tsv), tiny_processor, DataSection(), seed=0)
    batch = SceneParserCollator(tiny_processor.pad_token_id)([ds[0], ds[1]])
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", remove_unused_columns=False)
    trainer = SceneParserTrainer(model=model, args=args, train_dataset=ds, sp_train=TrainSection(loss_normalisation=mode))
    assert trainer.model_accepts_loss_kwargs == (mode == "global_tokens")
    model.eval()
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k not in ("labels", "sp_stats")}).logits
        labels = batch["labels"][:, 1:]
        token_losses = nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), reduction="none", ignore_index=-100
        )
        n = int((labels != -100).sum())
        inputs = dict(batch)
        if mode == "micro_batch":
            loss = trainer.compute_loss(model, inputs)
            expected = token_losses.sum() / n
        else:
            loss = trainer.compute_loss(model, inputs, num_items_in_batch=torch.tensor(3 * n))
            expected = token_losses.sum() / (3 * n)
    assert "sp_stats" not in inputs and trainer.sp_stats.micro_batches == 0  # eval mode: not counted
    assert torch.allclose(loss, expected, rtol=1e-4)

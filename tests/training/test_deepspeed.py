"""DeepSpeed ZeRO-2 / ZeRO-3 on the CPU (``DS_ACCELERATOR=cpu``, gloo), 2 processes, the tiny preset.

``scripts/test.sh`` installs the ``train`` extra, so these run in CI. Each torchrun call is a few
seconds of training; the first one in a fresh environment also compiles DeepSpeed's small CPU
communication op (cached under ``~/.cache/torch_extensions``).

The five ZeRO-3 bugs of issue 22 each have a test here: the LoRA merged save (1), the LoRA adapter
save (2), the interrupted curriculum (3), the recorded checksum (4), a ZeRO-3 config that saves
no weights (5).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

from sceneparser.cli import main as cli_main
from sceneparser.model.loading import load_model_dir, read_extra
from sceneparser.training.params import parameter_checksum

deepspeed = pytest.importorskip("deepspeed", reason="pip install 'sceneparser[train]' (scripts/test.sh does)")

STEPS = ["train.max_steps=4", "runtime.save_steps=2", "runtime.report_to=[]", "runtime.disable_tqdm=true"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    return {
        **os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def torchrun(*args: str, overrides=(), nproc: int = 2, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
        "--master-port", str(_free_port()), "-m", "sceneparser.cli", "train", *args, "--quiet",
    ]
    for value in overrides:
        cmd += ["--set", value]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=_env())
    if check:
        assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def _rank_checksums(out: Path) -> list[str]:
    return [json.loads((out / "rank_reports" / f"rank{r}.json").read_text())["parameter_checksum"] for r in (0, 1)]


def _assert_same_weights(a: dict, b: dict, atol: float = 0.0) -> None:
    assert set(a) == set(b), (sorted(set(a) - set(b))[:5], sorted(set(b) - set(a))[:5])
    for key in a:
        diff = (a[key].float() - b[key].float()).abs().max().item() if a[key].numel() else 0.0
        assert diff <= atol, f"{key}: max |diff| {diff}"


# --------------------------------------------------------------------------- refused before any model is loaded


def _ds_json(tmp_path: Path, stage, **zero) -> Path:
    path = tmp_path / f"ds_{stage}.json"
    path.write_text(json.dumps({
        "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
        "zero_optimization": {"stage": stage, **zero},
    }))
    return path


@pytest.mark.parametrize(
    "stage,zero,overrides,reason",
    [
        # bug 5: ZeRO-3 that gathers no weights on save used to finish with exit 0 and no model.safetensors
        (3, {"stage3_gather_16bit_weights_on_model_save": False}, [], "stage3_gather_16bit_weights_on_model_save"),
        (4, {}, [], "not a ZeRO stage"),
        (2, {}, ["train.token_class_loss_weight=0.5"], "not supported with DeepSpeed"),
        (3, {"stage3_gather_16bit_weights_on_model_save": True}, ["stages.3.train.attention_supervision_weight=1",
                                                                 "stages.3.model.attn_implementation=eager"],
         "attention_supervision_weight is not supported with DeepSpeed (stage 3)"),
    ],
)
def test_unworkable_deepspeed_config_exits_2_before_loading(tmp_path, train_tsv, capsys, monkeypatch, stage, zero,
                                                            overrides, reason):
    import sceneparser.training.stage as stage_mod

    def no_model(*a, **k):
        raise AssertionError("a model was loaded before the config was refused")

    monkeypatch.setattr(stage_mod, "load_initial_model", no_model)
    args = ["train", "--curriculum", "tiny", "--data", str(train_tsv), "--output-dir", str(tmp_path / "out"),
            "--deepspeed", str(_ds_json(tmp_path, stage, **zero)), "--quiet"]
    for value in overrides:
        args += ["--set", value]
    assert cli_main(args) == 2
    assert reason in capsys.readouterr().err
    assert not (tmp_path / "out" / "stage1" / "model.safetensors").exists()


# --------------------------------------------------------------------------- train, save, reload, resume


@pytest.mark.slow
@pytest.mark.parametrize("zero", ["zero2", "zero3"])
def test_zero_train_save_reload_and_resume(tmp_path, train_tsv, zero):
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    full = tmp_path / "full"
    common = ["--config", "tiny", "--stage", "1", "--data", str(train_tsv), "--deepspeed", zero]
    proc = torchrun(*common, "--output-dir", str(full), overrides=STEPS + ["runtime.gradient_checkpointing=true"])
    assert "is deprecated" not in proc.stderr  # DeepSpeed's collectives used to warn 27 times a step
    # the logged learning_rate is the language model's (it was the vision tower's, the first group)
    logs = json.loads((full / "trainer_state.json").read_text())["log_history"]
    lrs = [(e["learning_rate"], e["learning_rate_vision"]) for e in logs if "learning_rate_vision" in e]
    assert lrs and all(abs(lr - 10 * vision) < 1e-9 for lr, vision in lrs), lrs  # tiny: 2e-3 vs 2e-4
    assert max(lr for lr, _ in lrs) > 1e-3  # the language model's schedule (peak 2e-3), not the vision tower's

    # bug 4: the recorded checksum is the saved model's (it used to hash the local ZeRO-3 slices)
    record = read_extra(full)["training"]
    assert record["global_step"] == 4 and record["zero_stage"] == int(zero[-1])
    model, _ = load_model_dir(full)
    assert parameter_checksum(model) == record["parameter_checksum"] == _rank_checksums(full)[0]
    assert _rank_checksums(full)[0] == _rank_checksums(full)[1]

    # the saved weights are DeepSpeed's consolidated fp32 weights of the last step
    ds_state = get_fp32_state_dict_from_zero_checkpoint(str(full / "checkpoint-4"))
    ours = model.state_dict()
    _assert_same_weights({k: ours[k] for k in ds_state}, dict(ds_state))

    # resume inside the stage from checkpoint-2: bit-identical to the uninterrupted run
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(full / "checkpoint-2", resumed / "checkpoint-2")
    torchrun(*common, "--output-dir", str(resumed), overrides=STEPS + ["runtime.gradient_checkpointing=true"])
    assert read_extra(resumed)["training"]["parameter_checksum"] == record["parameter_checksum"]


@pytest.mark.slow
def test_zero3_curriculum_interrupted_and_resumed(tmp_path, train_tsv):
    """Bug 3: a rerun skips stage 1, and stage 2 resumes from its checkpoint (it used to be refused)."""
    steps = ["train.max_steps=2", "runtime.save_steps=1", "runtime.report_to=[]", "runtime.disable_tqdm=true"]
    common = ["--curriculum", "tiny", "--data", str(train_tsv), "--deepspeed", "zero3"]
    whole = tmp_path / "whole"
    torchrun(*common, "--output-dir", str(whole), overrides=steps)

    # the interrupted run: stage 1 finished, stage 2 stopped after its checkpoint-1
    cut = tmp_path / "cut"
    shutil.copytree(whole / "stage1", cut / "stage1")
    shutil.copytree(whole / "stage2" / "checkpoint-1", cut / "stage2" / "checkpoint-1")
    proc = torchrun(*common, "--output-dir", str(cut), overrides=steps, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "different model" not in proc.stderr
    for n in (2, 3):
        a = read_extra(whole / f"stage{n}")["training"]
        b = read_extra(cut / f"stage{n}")["training"]
        assert a["parameter_checksum"] == b["parameter_checksum"], n
    model, _ = load_model_dir(cut / "stage3")
    assert parameter_checksum(model) == read_extra(cut / "stage3")["training"]["parameter_checksum"]


@pytest.mark.slow
@pytest.mark.parametrize("zero", ["zero2", "zero3"])
def test_zero_lora_merged_and_adapter_saves_load_and_match(tmp_path, train_tsv, zero):
    """Bugs 1 and 2: the merged save crashed under ZeRO-3, the adapter held (0,)-shaped tensors."""
    from sceneparser.training.lora import load_adapter_model

    common = ["--config", "tiny", "--stage", "1", "--data", str(train_tsv), "--deepspeed", zero]
    lora = STEPS + ["lora.enabled=true", "lora.r=4", "lora.alpha=8", "lora.dropout=0.0"]
    merged, adapter = tmp_path / "merged", tmp_path / "adapter"
    runs = {
        "merged": torchrun(*common, "--output-dir", str(merged), overrides=lora + ["lora.save=merged"], check=False),
        "adapter": torchrun(*common, "--output-dir", str(adapter), overrides=lora + ["lora.save=adapter"], check=False),
    }
    problems = [f"{name} save: exit {proc.returncode}: {proc.stderr[-1500:]}" for name, proc in runs.items()
                if proc.returncode != 0]
    if (adapter / "adapter_model.safetensors").is_file():
        with safe_open(str(adapter / "adapter_model.safetensors"), framework="pt") as f:
            shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}
        empty = sorted(k for k, shape in shapes.items() if not shape or 0 in shape)
        if not shapes or empty:
            problems.append(f"adapter: {len(empty)} of {len(shapes)} tensors are empty, e.g. {empty[:2]}")
    assert not problems, "\n".join(problems)

    merged_model, _ = load_model_dir(merged)
    record = read_extra(merged)["training"]
    assert parameter_checksum(merged_model) == record["parameter_checksum"]
    adapter_model, _ = load_adapter_model(adapter)
    # the same training, saved two ways: the adapter (with its trained vision tower and merger) merges
    # into the merged directory's weights
    assert read_extra(adapter)["training"]["parameter_checksum"] == record["parameter_checksum"]
    _assert_same_weights(adapter_model.state_dict(), merged_model.state_dict(), atol=1e-6)

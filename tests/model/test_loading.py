"""save_model_dir / load_model_dir / resolve_model_path."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from sceneparser.errors import ModelLoadError
from sceneparser.model.loading import (
    load_model_dir,
    missing_files,
    resolve_device,
    resolve_dtype,
    resolve_model_path,
    save_model_dir,
)
from sceneparser.model.processor import chat_pieces


def test_model_dir_is_complete(tiny_model_dir):
    names = {p.name for p in tiny_model_dir.iterdir()}
    for required in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "preprocessor_config.json",
    ):
        assert required in names
    assert missing_files(tiny_model_dir) == []


def test_round_trip_gives_identical_logits(tiny_model_dir):
    from sceneparser.model.tiny import build_tiny

    model, processor = build_tiny(seed=0)
    loaded, lproc = load_model_dir(tiny_model_dir, device="cpu")
    img = Image.fromarray((np.random.RandomState(1).rand(70, 100, 3) * 255).astype("uint8"))
    a = processor([chat_pieces("Parse mug.")], [img])
    b = lproc([chat_pieces("Parse mug.")], [img])
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["pixel_values"], b["pixel_values"])
    with torch.no_grad():
        assert torch.equal(model(**a).logits, loaded(**b).logits)
    assert loaded.dtype == torch.float32 and not loaded.training


def test_extra_metadata_and_coordconv(tmp_path):
    from sceneparser.model.loading import read_extra
    from sceneparser.model.tiny import build_tiny

    model, processor = build_tiny(seed=0, in_channels=5)
    save_model_dir(model, processor, tmp_path, extra={"stage": 1})
    assert read_extra(tmp_path) == {"stage": 1}
    # the processor is configured from the MODEL config, even if the preprocessor file says otherwise
    cfg = json.loads((tmp_path / "preprocessor_config.json").read_text())
    cfg["coord_channels"] = False
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(cfg))
    _, proc = load_model_dir(tmp_path)
    assert proc.coord_channels


def test_missing_files_are_named(tiny_model_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").unlink()
    (broken / "preprocessor_config.json").unlink()
    with pytest.raises(ModelLoadError) as err:
        load_model_dir(broken)
    assert "model.safetensors" in str(err.value) and "preprocessor_config.json" in str(err.value)
    assert "tokenizer" not in str(err.value).split("missing:")[1]
    with pytest.raises(ModelLoadError, match="not found"):
        load_model_dir(tmp_path / "nowhere")


def test_corrupt_files(tiny_model_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_model_dir, bad)
    (bad / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="config"):
        load_model_dir(bad)
    shutil.copy(tiny_model_dir / "config.json", bad / "config.json")
    (bad / "model.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(ModelLoadError, match="weights"):
        load_model_dir(bad)


def test_tokenizer_weights_mismatch(tiny_model_dir, tmp_path):
    bad = tmp_path / "mismatch"
    shutil.copytree(tiny_model_dir, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["text_config"]["vocab_size"] = 100
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="do not belong together"):
        load_model_dir(bad)


def test_device_and_dtype_choice():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_dtype(None, "cpu") == torch.float32
    assert resolve_dtype(None, "cuda") == torch.bfloat16
    assert resolve_dtype("bf16", "cpu") == torch.bfloat16
    from sceneparser.errors import InputError

    with pytest.raises(InputError):
        resolve_dtype("int3", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA"):
            resolve_device("cuda")


def test_resolve_default_model_missing(monkeypatch, tmp_path):
    import sceneparser.model.loading as loading

    monkeypatch.setattr(loading, "default_model_dir", lambda: tmp_path / "default_model")
    with pytest.raises(ModelLoadError, match="no default model"):
        resolve_model_path(None)


def test_resolve_hub_id_from_a_local_cache(tiny_model_dir, tmp_path, monkeypatch):
    """A hub id resolves through huggingface_hub's cache layout (no network on our machines)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--SceneParser--SceneParser-model"
    snap = repo / "snapshots" / commit
    shutil.copytree(tiny_model_dir, snap)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    path = resolve_model_path("SceneParser/SceneParser-model", cache_dir=tmp_path / "hub")
    assert path == snap
    model, _ = load_model_dir(path)
    assert model is not None
    with pytest.raises(ModelLoadError, match="not in the local Hugging Face cache"):
        resolve_model_path("SceneParser/not-downloaded", cache_dir=tmp_path / "hub")
    with pytest.raises(ModelLoadError, match="not found"):
        resolve_model_path("./no/such/dir")


def test_model_pixel_range_reads_the_preprocessor_config(tmp_path):
    import json

    from sceneparser.model.loading import model_pixel_range

    assert model_pixel_range(tmp_path, (1, 2)) == (1, 2)  # no file: the fallback
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"min_pixels": 3136, "max_pixels": 37632}))
    assert model_pixel_range(tmp_path, (1, 2)) == (3136, 37632)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"size": {"shortest_edge": 10, "longest_edge": 20}}))
    assert model_pixel_range(tmp_path, (1, 2)) == (10, 20)
    (tmp_path / "preprocessor_config.json").write_text("{not json")
    assert model_pixel_range(tmp_path, (1, 2)) == (1, 2)


def test_missing_and_unexpected_weights_are_named_key_by_key(tmp_path, tiny_model_dir):
    import shutil

    from safetensors.torch import load_file, save_file

    from sceneparser.errors import ModelLoadError
    from sceneparser.model.loading import load_model_dir

    d = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, d)
    weights = load_file(str(d / "model.safetensors"))
    dropped = sorted(k for k in weights if k.endswith("mlp.down_proj.weight"))[0]
    del weights[dropped]
    weights["model.not_a_layer.weight"] = weights[next(iter(weights))].clone()
    save_file(weights, str(d / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ModelLoadError) as e:
        load_model_dir(d, device="cpu")
    msg = str(e.value)
    assert "missing from the files" in msg and "not used by the model" in msg
    assert "not_a_layer" in msg and dropped.split(".")[-3] in msg
    model, _ = load_model_dir(d, device="cpu", strict=False)  # an explicit opt-out still loads
    assert model is not None

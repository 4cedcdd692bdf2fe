"""export-serving: a folder a server loading it the plain transformers-5 way decodes correctly."""

from __future__ import annotations

import json

import pytest

from sceneparser import cli
from sceneparser.errors import InputError
from sceneparser.model.serving import REFERENCE_GENERATION, export_for_serving


@pytest.fixture(scope="module")
def released_layout(tmp_path_factory):
    """A checkpoint laid out like the released one: real Qwen vocabulary, Rex-Omni tokenizer files
    (vocab.json + merges.txt + tokenizer_config.json, no tokenizer.json), config and weights."""
    from safetensors.torch import save_file
    import torch

    from sceneparser.model.tokenizer import write_rex_omni_tokenizer_dir

    d = tmp_path_factory.mktemp("released")
    write_rex_omni_tokenizer_dir(d)
    (d / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl", "vocab_size": 151936}))
    save_file({"w": torch.zeros(2)}, str(d / "model.safetensors"))
    return d


def test_export_keeps_the_original_ids_for_a_plain_transformers_loader(released_layout, tmp_path):
    from transformers import AutoTokenizer

    out = tmp_path / "serve"
    record = export_for_serving(released_layout, out)
    assert record["token_ids"]["<0>"] == 150643 and record["token_ids"]["<|image_pad|>"] == 151655
    tok = AutoTokenizer.from_pretrained(str(out))  # what vLLM does with the folder
    assert tok.convert_tokens_to_ids("<0>") == 150643 and tok.convert_tokens_to_ids("<999>") == 151642
    assert tok.convert_tokens_to_ids("<|image_pad|>") == 151655
    assert tok.decode([150643 + 12, 150643 + 999], skip_special_tokens=False) == "<12><999>"
    gen = json.loads((out / "generation_config.json").read_text())
    assert {k: gen[k] for k in REFERENCE_GENERATION} == REFERENCE_GENERATION
    assert gen["eos_token_id"][0] == tok.convert_tokens_to_ids("<|im_end|>")
    assert (out / "model.safetensors").is_symlink() and (out / "config.json").is_file()
    assert "vllm serve" in record["commands"]["vllm"]
    with pytest.raises(InputError, match="not empty"):
        export_for_serving(released_layout, out)


def test_cli_exports_the_default_model(tmp_path, capsys):
    assert cli.main(["export-serving", str(tmp_path / "d"), "--copy-weights"]) == 0
    assert "vllm serve" in capsys.readouterr().out
    assert (tmp_path / "d" / "model.safetensors").is_file() and not (tmp_path / "d" / "model.safetensors").is_symlink()

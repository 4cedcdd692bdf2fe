"""The vLLM backend: reference settings everywhere; HF parity where vLLM and a GPU exist."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from sceneparser import prompts
from sceneparser.inference import vllm_backend as vb


def test_reference_sampling_and_engine_settings():
    assert vb.sampling_kwargs(77) == {
        "max_tokens": 77,
        "temperature": 0.0,
        "top_k": 1,
        "top_p": 0.8,
        "repetition_penalty": 1.05,
        "skip_special_tokens": False,
        "stop": ["<|im_end|>", "<0><0><0><0>"],
    }
    kw = vb.engine_kwargs("m", "t")
    assert kw["limit_mm_per_prompt"] == {"image": 10, "video": 10}
    assert (kw["max_model_len"], kw["gpu_memory_utilization"], kw["tensor_parallel_size"]) == (4096, 0.8, 1)
    assert kw["trust_remote_code"] is True and kw["dtype"] == "auto"
    assert kw["enable_prefix_caching"] is True and kw["tokenizer"] == "t"
    assert kw["mm_processor_kwargs"] == {"min_pixels": 12544, "max_pixels": 2007040}


def test_prepare_input_resizes_like_the_reference_and_uses_the_reference_prompt():
    from PIL import Image

    img = Image.new("RGBA", (640, 480), (10, 20, 30, 40))
    q = prompts.object_question("mug")
    inp = vb.prepare_input(img, q)
    assert inp["prompt"] == prompts.chat_text(q, layout="inference")
    assert inp["prompt"].count("<|image_pad|>") == 1
    out = inp["multi_modal_data"]["image"]
    assert out.mode == "RGB" and out.size == (644, 476)  # the reference resize: 480x640 -> 476x644
    small = vb.prepare_input(Image.new("RGB", (100, 100)), q)["multi_modal_data"]["image"]
    assert small.size == (112, 112)


def test_single_gpu_world_hides_torchrun_variables(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    with vb._single_gpu_world(1):
        assert "RANK" not in os.environ and "WORLD_SIZE" not in os.environ
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "5"
    assert os.environ["RANK"] == "1" and os.environ["CUDA_VISIBLE_DEVICES"] == "4,5"


def _vllm_ready() -> bool:
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


@pytest.mark.vllm
@pytest.mark.skipif(not _vllm_ready(), reason="needs vLLM and a CUDA GPU (pip install 'sceneparser[vllm]')")
def test_vllm_matches_transformers_backend_on_the_tiny_model(tiny_model_dir, synth_dir):
    """Greedy answers of both backends agree on the same tiny model and the same requests."""
    import json

    from PIL import Image

    from sceneparser.evaluation.runner import EvalConfig, make_backend, _Dist
    from sceneparser.inference.types import GenerationRequest

    rows = [json.loads(x) for x in (synth_dir / "val.jsonl").read_text().splitlines() if x.strip()]
    reqs_src = []
    for rec in rows[:2]:
        img = Image.open(synth_dir / rec["image_path"]).convert("RGB")
        for phrase in sorted({o["phrase"] for o in rec["objects"]})[:2]:
            reqs_src.append((img, prompts.object_question(phrase)))
    dist = _Dist(0, 1, 0, False)
    cfg = EvalConfig(model=str(tiny_model_dir), data="", out="", max_new_tokens=24, device="cuda:0", dtype="float32")
    hf = make_backend(cfg, dist)
    hf_text = [o.text for o in hf.generate([GenerationRequest(i, q) for i, q in reqs_src])]
    del hf
    vl = vb.VLLMBackend(tiny_model_dir, max_new_tokens=24, dtype="float32", gpu_memory_utilization=0.3)
    vl_text = [o.text for o in vl.generate([GenerationRequest(i, q) for i, q in reqs_src])]
    assert vl_text == hf_text


@pytest.fixture(scope="module")
def rex_dir(tmp_path_factory):
    from sceneparser.model.tokenizer import write_rex_omni_tokenizer_dir

    d = tmp_path_factory.mktemp("rex_ckpt")
    write_rex_omni_tokenizer_dir(d)
    (d / "config.json").write_text("{}")
    return d


class _FakeVLLM:
    """Stands in for the ``vllm`` module: records what the backend hands the engine."""

    def __init__(self):
        self.engine_kwargs = None
        outer = self

        class LLM:
            def __init__(self, **kw):
                outer.engine_kwargs = kw

        class SamplingParams(dict):
            def __init__(self, **kw):
                super().__init__(**kw)

        self.LLM, self.SamplingParams = LLM, SamplingParams


def test_tokenizer_cache_is_keyed_by_content_not_path(rex_dir, tmp_path):
    import shutil

    cache = tmp_path / "cache"
    first = vb.tokenizer_dir(rex_dir, cache_dir=cache)
    copy = tmp_path / "copy"
    shutil.copytree(rex_dir, copy)
    assert vb.tokenizer_dir(copy, cache_dir=cache) == first  # same content, same converted tokenizer
    cfg = json.loads((copy / "tokenizer_config.json").read_text())
    cfg["model_max_length"] = 1234
    (copy / "tokenizer_config.json").write_text(json.dumps(cfg))
    changed = vb.tokenizer_dir(copy, cache_dir=cache)
    assert changed != first and (Path(changed) / "tokenizer.json").is_file()
    from sceneparser.model.tokenizer import load_tokenizer

    tok = load_tokenizer(first)
    assert tok.convert_tokens_to_ids("<0>") == 150643 and tok.convert_tokens_to_ids("<999>") == 151642


def test_hub_id_gets_the_converted_tokenizer_and_dtype_aliases_are_normalised(rex_dir, tmp_path, monkeypatch):
    """A hub id is resolved to its cached snapshot, and vLLM gets that folder plus the converted
    tokenizer (never the checkpoint's own tokenizer, whose ids are wrong on transformers 5)."""
    import shutil
    import sys

    hub = tmp_path / "hub"
    snap = hub / "models--org--rex" / "snapshots" / ("a" * 40)
    shutil.copytree(rex_dir, snap)
    (hub / "models--org--rex" / "refs").mkdir(parents=True)
    (hub / "models--org--rex" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(hub))
    fake = _FakeVLLM()
    monkeypatch.setitem(sys.modules, "vllm", fake)
    monkeypatch.setattr(vb.tok_mod, "default_cache_dir", lambda: tmp_path / "tokcache")
    backend = vb.VLLMBackend("org/rex", dtype="bf16", max_new_tokens=33)
    kw = fake.engine_kwargs
    assert Path(kw["model"]).resolve() == snap.resolve()
    assert kw["tokenizer"] != kw["model"] and (Path(kw["tokenizer"]) / "tokenizer.json").is_file()
    assert kw["dtype"] == "bfloat16"
    assert backend.sampling_for(vb.GenerationRequest(None, "q", max_new_tokens=500))["max_tokens"] == 33
    sampled = backend.sampling_for(vb.GenerationRequest(None, "q", temperature=0.7, top_p=0.9, seed=1))
    assert sampled["temperature"] == 0.7 and sampled["seed"] == 1 and "top_k" not in sampled
    with pytest.raises(Exception, match="dtype"):
        vb.VLLMBackend("org/rex", dtype="int3")

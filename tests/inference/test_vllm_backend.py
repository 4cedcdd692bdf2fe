"""The vLLM backend: reference settings everywhere; HF parity where vLLM and a GPU exist."""

from __future__ import annotations

import importlib.util
import os

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
    assert out.mode == "RGB" and out.size == (644, 476)  # evaluation.md §3.4: 480x640 -> 476x644
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

"""A checkpoint written by transformers 4.51.3 (the reference's pin) loads through our loader and runs the same.

``tests/fixtures/golden_4513`` was made by ``scripts/make_golden_checkpoint.py`` (docs/golden_checkpoint.md):
a tiny random Qwen2.5-VL with the real 151,936-row vocabulary and a Rex-Omni-layout tokenizer,
saved by 4.51.3's ``save_pretrained``, with 4.51.3's input ids, pixel values, last-position
logits and 24 greedy tokens for a fixed 112x112 image and prompt. The vocabulary files are
rebuilt here from ``dashscope``'s Qwen BPE ranks (too large to commit).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from sceneparser.model.loading import load_model_dir

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "golden_4513"
LOGITS_ATOL = 5e-5


@pytest.fixture(scope="module")
def golden_dir(tmp_path_factory):
    pytest.importorskip("dashscope")  # the Qwen BPE ranks
    from sceneparser.model.tokenizer import write_rex_omni_tokenizer_dir

    vocab = tmp_path_factory.mktemp("golden_vocab")
    write_rex_omni_tokenizer_dir(vocab)
    d = tmp_path_factory.mktemp("golden") / "model"
    shutil.copytree(FIXTURE, d)
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(vocab / name, d / name)
    return d


@pytest.fixture(scope="module")
def loaded(golden_dir):
    return load_model_dir(golden_dir, device="cpu", dtype=torch.float32)


@pytest.fixture(scope="module")
def expected():
    return json.loads((FIXTURE / "outputs_4513.json").read_text(encoding="utf-8"))


def test_fixture_was_written_by_4513(expected):
    assert expected["transformers"] == "4.51.3"
    assert json.loads((FIXTURE / "config.json").read_text())["transformers_version"] == "4.51.3"


def test_no_missing_or_unexpected_keys(golden_dir, loaded):
    from transformers import Qwen2_5_VLForConditionalGeneration

    _, info = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(golden_dir), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    model, _ = loaded
    with safe_open(str(golden_dir / "model.safetensors"), framework="pt") as f:
        saved = {k: f.get_tensor(k).float() for k in f.keys()}
    assert len(saved) == len({id(p) for p in model.parameters()})  # every tensor found a home, none left over
    # the 4.51.3 names map onto ours and the values arrive unchanged (bf16 -> fp32 is exact)
    ours = sorted(t.detach().float().flatten()[:4].tolist() for t in {id(p): p for p in model.parameters()}.values())
    theirs = sorted(t.flatten()[:4].tolist() for t in saved.values())
    assert ours == theirs


def test_processor_reproduces_4513_inputs(loaded):
    _, processor = loaded
    golden = load_file(str(FIXTURE / "inputs.safetensors"))
    prompt = json.loads((FIXTURE / "outputs_4513.json").read_text())["prompt"]
    batch = processor(prompt, images=Image.open(FIXTURE / "image.png").convert("RGB"))
    assert batch["input_ids"].tolist() == golden["input_ids"].tolist()
    assert batch["image_grid_thw"].tolist() == golden["image_grid_thw"].tolist()
    assert torch.allclose(batch["pixel_values"].float(), golden["pixel_values"], atol=1e-6)


def test_logits_and_greedy_tokens_match_4513(loaded, expected):
    model, _ = loaded
    golden = load_file(str(FIXTURE / "inputs.safetensors"))
    inputs = {
        "input_ids": golden["input_ids"],
        "attention_mask": torch.ones_like(golden["input_ids"]),
        "pixel_values": golden["pixel_values"],
        "image_grid_thw": golden["image_grid_thw"],
        # transformers 5 finds the image tokens for the 3-D rope positions through this; without it
        # the positions (and the logits, by ~1.1 here) silently differ from 4.51.3's
        "mm_token_type_ids": (golden["input_ids"] == model.config.image_token_id).long(),
    }
    with torch.no_grad():
        logits = model(**inputs).logits[0].float()
    last = load_file(str(FIXTURE / "last_logits_4513.safetensors"))["last_logits"]
    assert (logits[-1] - last).abs().max().item() <= LOGITS_ATOL
    assert logits.argmax(-1).tolist() == expected["argmax_per_position"]
    lse = torch.tensor(expected["logsumexp_per_position"])
    assert (torch.logsumexp(logits, -1) - lse).abs().max().item() <= LOGITS_ATOL
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=len(expected["greedy_tokens"]), do_sample=False,
                             eos_token_id=None)
    assert out[0, golden["input_ids"].shape[1]:].tolist() == expected["greedy_tokens"]


# --------------------------------------------------------------------------- Pillow's bicubic filter


def test_bicubic_resize_matches_pillow_10_4():
    """Pillow 10.4, 11 and 12 resize identically; Pillow 13 changed the bicubic downscale (issue 22).

    Measured with benchmarks/bench_pillow_resize.py: 13.0 differs from 10.4 by up to 23 grey levels
    (pixel_values 0.33) on noise and 7 on examples/scene.jpg (0.8% of values) whenever a side is
    scaled down; 11.3 and 12.3 are bit-identical to 10.4. So pyproject.toml bounds ``pillow<13``
    and this test pins the pixels: noise 54x62 -> 56x56 (height scaled down) through our
    ImageProcessor equals what Pillow 10.4 produced.
    """
    import numpy as np
    import PIL

    from sceneparser.model.processor import ImageProcessor

    array = np.random.default_rng(22).integers(0, 256, (62, 54, 3), dtype=np.uint8)
    resized = np.asarray(ImageProcessor(min_pixels=3136, max_pixels=12544).resize(Image.fromarray(array)))
    expected = np.load(FIXTURE / "bicubic_noise_54x62_to_56x56_pillow104.npy")
    diff = int(np.abs(resized.astype(np.int16) - expected.astype(np.int16)).max())
    assert diff == 0, (
        f"Pillow {PIL.__version__} resizes differently from Pillow 10.4 (up to {diff} grey levels): the "
        "reference's pixels need pillow<13 (pyproject.toml)"
    )

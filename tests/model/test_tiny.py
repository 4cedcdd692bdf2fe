"""build_tiny: a tiny random Qwen2.5-VL that runs forward, generate and CoordConv."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sceneparser.model.processor import chat_pieces
from sceneparser.model.tiny import build_tiny


def _img(w=120, h=90):
    return Image.fromarray((np.random.RandomState(0).rand(h, w, 3) * 255).astype("uint8"))


def test_tiny_model_shape_and_ids():
    model, processor = build_tiny(seed=0)
    cfg = model.config
    tok = processor.tokenizer
    assert cfg.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")
    assert cfg.vision_start_token_id == tok.convert_tokens_to_ids("<|vision_start|>")
    assert cfg.get_text_config().vocab_size >= len(tok)
    assert cfg.vision_config.in_channels == 3 and not processor.coord_channels
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    assert not model.training


def test_tiny_is_deterministic_per_seed():
    a, _ = build_tiny(seed=3)
    b, _ = build_tiny(seed=3)
    c, _ = build_tiny(seed=4)
    wa, wb, wc = (m.get_input_embeddings().weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_tiny_forward_and_generate():
    model, processor = build_tiny(seed=0)
    batch = processor([chat_pieces("Parse mug.")], [_img()])
    with torch.no_grad():
        logits = model(**batch).logits
        out = model.generate(**batch, max_new_tokens=5, min_new_tokens=5, do_sample=False)
    assert logits.shape[:2] == batch["input_ids"].shape
    assert out.shape[1] == batch["input_ids"].shape[1] + 5


def test_tiny_coordconv_five_channels():
    model, processor = build_tiny(seed=0, in_channels=5)
    assert model.config.vision_config.in_channels == 5 and processor.coord_channels
    batch = processor([chat_pieces("Parse mug.")], [_img()])
    assert batch["pixel_values"].shape[1] == 5 * 2 * 14 * 14
    with torch.no_grad():
        assert torch.isfinite(model(**batch).logits).all()


def test_tiny_overrides_and_errors():
    model, _ = build_tiny(seed=0, num_hidden_layers=1, hidden_size=32, mrope_section=(2, 1, 1))
    assert model.config.get_text_config().num_hidden_layers == 1
    with pytest.raises(TypeError, match="unknown"):
        build_tiny(not_an_option=1)
    with pytest.raises(ValueError):
        build_tiny(in_channels=4)

"""build_tiny(coord_embedding_init="sinusoidal"): structured initial rows for <0>..<999> (issue 8)."""

from __future__ import annotations

import pytest
import torch

from sceneparser.model.tiny import build_tiny


def _coord_rows(model, processor, bins):
    ids = processor.tokenizer.convert_tokens_to_ids([f"<{k}>" for k in bins])
    return model.get_input_embeddings().weight[ids].detach()


def test_sinusoidal_rows_are_distinct_and_smooth_in_the_bin():
    model, processor = build_tiny(seed=0, coord_embedding_init="sinusoidal")
    rows = _coord_rows(model, processor, range(1000))
    unit = rows / rows.norm(dim=1, keepdim=True)
    near = (unit[:-1] * unit[1:]).sum(dim=1)  # cosine of neighbouring bins
    far = unit[0] @ unit[500]
    assert near.min() > 0.8 > far
    assert torch.unique(rows, dim=0).shape[0] == 1000
    # the same scale as the random rows, and tied to the output layer
    assert 0.5 < rows.std().item() / model.get_input_embeddings().weight.std().item() < 2.0
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


def test_default_init_is_unchanged_and_bad_values_fail():
    a, pa = build_tiny(seed=0)
    b, pb = build_tiny(seed=0, coord_embedding_init=None)
    assert torch.equal(_coord_rows(a, pa, range(10)), _coord_rows(b, pb, range(10)))
    with pytest.raises(ValueError, match="coord_embedding_init"):
        build_tiny(seed=0, coord_embedding_init="fourier")

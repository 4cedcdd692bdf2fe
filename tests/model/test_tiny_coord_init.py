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


def test_polynomial_rows_make_any_bin_a_linear_readout():
    from sceneparser.model.tiny import polynomial_coord_rows

    base, processor = build_tiny(seed=0, coord_embedding_init="sinusoidal")
    model, _ = build_tiny(seed=0, coord_embedding_init="sinusoidal", coord_embedding_poly=1.2)
    delta = _coord_rows(model, processor, range(1000)) - _coord_rows(base, processor, range(1000))
    # the added part lives in a 2-D subspace: a linear and a quadratic direction of the bin
    assert torch.linalg.matrix_rank(delta.double(), tol=1e-4).item() == 2

    # on zeroed rows the logits of a hidden state s * (x * d1 - d2 / 8) peak at the bin of x
    ids = processor.tokenizer.convert_tokens_to_ids([f"<{k}>" for k in range(1000)])
    with torch.no_grad():
        model.get_input_embeddings().weight[ids] = 0.0
    polynomial_coord_rows(model, processor.tokenizer, 2.0)
    rows = _coord_rows(model, processor, range(1000)).double()
    d1 = (rows[999] - rows[0]) / 2.0  # u runs from -0.5 to 0.5; the quadratic term is equal at both ends
    d2 = (rows[0] + rows[999]) * 3.0 / (4.0 * 2.0)  # 4 * (0.25 - 1/12) = 2/3
    assert abs(d1.norm().item() - 1) < 1e-4 and abs(d2.norm().item() - 1) < 1e-4 and abs(d1 @ d2) < 1e-4
    for target in (0, 250, 731, 999):
        x = target / 999 - 0.5
        logits = rows @ (50.0 * (x * d1 - d2 / 8))  # what the tied lm_head computes
        assert abs(int(logits.argmax()) - target) <= 1
    with pytest.raises(ValueError, match="coord_embedding_poly"):
        build_tiny(seed=0, coord_embedding_poly=-1.0)

"""A tiny random Qwen2.5-VL (config, tokenizer, processor) for tests and CPU benchmarks.

Built fully offline in well under two seconds (after ``import transformers``): a small in-process
BPE tokenizer with the Qwen specials and ``<0>``…``<999>``, a 2-layer text model, a 1-block vision
tower, random weights from ``seed``. ``in_channels=5`` builds a CoordConv vision tower and a
processor that appends the x/y channels.
"""

from __future__ import annotations

from typing import Any

from sceneparser.model.processor import ImageProcessor, SceneParserProcessor
from sceneparser.model.tokenizer import build_small_tokenizer

#: Defaults of the tiny model; every key can be overridden through ``build_tiny(**overrides)``.
TINY_DEFAULTS: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "rope_theta": 1e6,
    "mrope_section": (2, 3, 3),
    "vision_depth": 1,
    "vision_hidden_size": 32,
    "vision_intermediate_size": 64,
    "vision_num_heads": 2,
    "in_channels": 3,
    "window_size": 56,
    "min_pixels": 4 * 28 * 28,
    "max_pixels": 64 * 28 * 28,
    "vocab_size": None,  # len(tokenizer) rounded up to a multiple of 64
    "tokenizer_vocab_size": 400,
    "attn_implementation": "sdpa",
    # None: random rows (the default); "sinusoidal": the rows of <0>..<999> (tied input/output
    # embedding) start as sin/cos features of the bin, so neighbouring bins start close (issue 8)
    "coord_embedding_init": None,
    # > 0: add a linear and a quadratic direction of this amplitude to the rows of <0>..<999>
    # (polynomial_coord_rows), so a logit peak at any bin is a linear readout of one scalar (issue 8)
    "coord_embedding_poly": 0.0,
}


def tiny_config(tokenizer, **overrides):
    """A ``Qwen2_5_VLConfig`` of the tiny shape, wired to ``tokenizer``'s special-token ids."""
    from transformers import Qwen2_5_VLConfig

    o = dict(TINY_DEFAULTS)
    unknown = set(overrides) - set(o)
    if unknown:
        raise TypeError(f"unknown build_tiny overrides: {sorted(unknown)} (known: {sorted(o)})")
    o.update(overrides)
    if o["coord_embedding_init"] not in (None, "sinusoidal"):
        raise ValueError("coord_embedding_init must be None or 'sinusoidal'")
    if not 0.0 <= float(o["coord_embedding_poly"]) < 100.0:
        raise ValueError("coord_embedding_poly must be in [0, 100)")
    if o["in_channels"] not in (3, 5):
        raise ValueError("in_channels must be 3 (RGB) or 5 (RGB + CoordConv x/y)")
    tid = tokenizer.convert_tokens_to_ids
    vocab = o["vocab_size"] or (len(tokenizer) + 63) // 64 * 64
    head_dim = o["hidden_size"] // o["num_attention_heads"]
    if sum(o["mrope_section"]) * 2 != head_dim:
        raise ValueError(f"mrope_section {o['mrope_section']} must sum to head_dim/2 = {head_dim // 2}")
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": vocab,
            "hidden_size": o["hidden_size"],
            "intermediate_size": o["intermediate_size"],
            "num_hidden_layers": o["num_hidden_layers"],
            "num_attention_heads": o["num_attention_heads"],
            "num_key_value_heads": o["num_key_value_heads"],
            "max_position_embeddings": 32768,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": o["rope_theta"],
                "mrope_section": list(o["mrope_section"]),
            },
            "bos_token_id": tid("<|endoftext|>"),
            "eos_token_id": tid("<|im_end|>"),
            "pad_token_id": tid("<|endoftext|>"),
            "tie_word_embeddings": True,
        },
        vision_config={
            "depth": o["vision_depth"],
            "hidden_size": o["vision_hidden_size"],
            "intermediate_size": o["vision_intermediate_size"],
            "num_heads": o["vision_num_heads"],
            "out_hidden_size": o["hidden_size"],
            "window_size": o["window_size"],
            "fullatt_block_indexes": [o["vision_depth"] - 1],
            "in_channels": o["in_channels"],
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        image_token_id=tid("<|image_pad|>"),
        video_token_id=tid("<|video_pad|>"),
        vision_start_token_id=tid("<|vision_start|>"),
        vision_end_token_id=tid("<|vision_end|>"),
        tie_word_embeddings=True,
    )
    config._attn_implementation = o["attn_implementation"]
    return config, o


def build_tiny(seed: int = 0, **overrides):
    """``(model, processor)``: a tiny random ``Qwen2_5_VLForConditionalGeneration`` in eval mode."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    tok_size = overrides.pop("tokenizer_vocab_size", TINY_DEFAULTS["tokenizer_vocab_size"])
    tokenizer = build_small_tokenizer(vocab_size=tok_size)
    config, o = tiny_config(tokenizer, **overrides)
    rng_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config)
    finally:
        torch.random.set_rng_state(rng_state)  # leave the caller's RNG as it was
    if o["coord_embedding_init"] == "sinusoidal":
        sinusoidal_coord_rows(model, tokenizer)
    if o["coord_embedding_poly"]:
        polynomial_coord_rows(model, tokenizer, float(o["coord_embedding_poly"]))
    model.eval()
    image_processor = ImageProcessor(
        min_pixels=o["min_pixels"], max_pixels=o["max_pixels"], coord_channels=o["in_channels"] == 5
    )
    processor = SceneParserProcessor(image_processor, tokenizer)
    return model, processor


def sinusoidal_coord_rows(model, tokenizer, num_bins: int = 1000, scale: float | None = None) -> None:
    """Set the embedding rows of ``<0>``..``<num_bins-1>`` to sin/cos features of the bin.

    Frequencies are geometric, from half a cycle over the whole range down to a period of about
    four bins, so every bin has a distinct row and neighbouring bins have similar rows. The rows
    get the RMS of a random row (``initializer_range``). With tied embeddings this shapes both the
    coordinate inputs and the coordinate logits.
    """
    import math

    import torch

    emb = model.get_input_embeddings().weight
    hidden = emb.shape[1]
    half = hidden // 2
    if scale is None:
        std = getattr(model.config.get_text_config(), "initializer_range", 0.02)
        scale = std * math.sqrt(2.0)
    ids = tokenizer.convert_tokens_to_ids([f"<{k}>" for k in range(num_bins)])
    k = torch.arange(num_bins, dtype=torch.float64)[:, None]
    wavelengths = 2.0 * num_bins * (4.0 / (2.0 * num_bins)) ** (torch.arange(half, dtype=torch.float64) / max(1, half - 1))
    angles = 2.0 * math.pi * k / wavelengths[None, :]
    rows = torch.zeros(num_bins, hidden, dtype=torch.float64)
    rows[:, 0 : 2 * half : 2] = torch.sin(angles)
    rows[:, 1 : 2 * half : 2] = torch.cos(angles)
    with torch.no_grad():
        emb[torch.tensor(ids)] = (rows * scale).to(emb.dtype)


def polynomial_coord_rows(model, tokenizer, amplitude: float, num_bins: int = 1000, seed: int = 123) -> None:
    """Add ``amplitude * (u * d1 + 4 * (u**2 - 1/12) * d2)`` to the rows of ``<0>``..``<num_bins-1>``.

    ``u = k / (num_bins - 1) - 0.5`` and ``d1``, ``d2`` are two orthonormal random directions
    (from ``seed``). A hidden state ``s * (x * d1 - d2 / 8)`` scores bin ``k`` as
    ``amplitude * s * (x u - u^2 / 2) + const``, which peaks at ``u = x``: a peak anywhere on the
    axis is a *linear* function of one scalar, the shape of readout a small model finds fastest
    (docs/default_model.md, probe N). With tied embeddings this shapes both the
    coordinate inputs and the coordinate logits.
    """
    import torch

    emb = model.get_input_embeddings().weight
    ids = torch.tensor(tokenizer.convert_tokens_to_ids([f"<{k}>" for k in range(num_bins)]))
    gen = torch.Generator().manual_seed(seed)
    d = torch.linalg.qr(torch.randn(emb.shape[1], 2, generator=gen))[0].T
    u = torch.arange(num_bins, dtype=torch.float32)[:, None] / (num_bins - 1) - 0.5
    with torch.no_grad():
        emb[ids] += (amplitude * (u * d[0] + 4 * (u**2 - 1 / 12) * d[1])).to(emb.dtype)


__all__ = ["TINY_DEFAULTS", "build_tiny", "polynomial_coord_rows", "sinusoidal_coord_rows", "tiny_config"]

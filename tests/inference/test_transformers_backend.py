"""TransformersBackend: M-RoPE positions, batching and prefix reuse identical to unbatched
decoding and to ``model.generate``, stop handling, limits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sceneparser.errors import InputError
from sceneparser.inference.transformers_backend import TransformersBackend, mrope_positions
from sceneparser.inference.types import Backend, GenerationRequest, GenerationSettings
from sceneparser.model.processor import chat_pieces


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Many small matmuls: one torch thread avoids oversubscription on a busy 2-core runner."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny():
    from sceneparser.model.tiny import build_tiny

    return build_tiny(seed=0)


def _img(w, h, seed=0):
    return Image.fromarray((np.random.RandomState(seed).rand(h, w, 3) * 255).astype("uint8"))


QUESTIONS = [
    "Return a single JSON object only.\nParse mug in this image and return object bbox.",
    "lid",
    "Parse the kettle <|im_end|> and its spout, please, with every part you can find in it",
]


@pytest.fixture(scope="module")
def requests_3x3():
    images = [_img(120, 90, 0), _img(90, 200, 1), _img(60, 60, 2)]
    return [GenerationRequest(im, q) for im in images for q in QUESTIONS]


def test_mrope_positions_match_transformers(tiny):
    model, processor = tiny
    for w, h in [(120, 90), (90, 200), (300, 60)]:
        batch = processor([chat_pieces("Parse mug.")], [_img(w, h)])
        ref, delta = model.model.get_rope_index(
            batch["input_ids"], mm_token_type_ids=batch["mm_token_type_ids"], image_grid_thw=batch["image_grid_thw"]
        )
        ours, nxt = mrope_positions(
            batch["input_ids"][0].tolist(), processor.image_token_id, batch["image_grid_thw"].tolist(), 2
        )
        assert torch.equal(ours, ref[:, 0])
        assert nxt == int(ref.max()) + 1


def test_batched_and_prefix_reuse_identical_to_one_at_a_time(tiny, requests_3x3):
    model, processor = tiny
    common = dict(max_new_tokens=12, min_new_tokens=12, stop_strings=())
    runs = {}
    for name, opts in {
        "single": dict(batch_size=1, prefix_reuse=False),
        "batched": dict(batch_size=4, prefix_reuse=False),
        "reuse": dict(batch_size=8, prefix_reuse=True),
        "reuse_small_batches": dict(batch_size=2, prefix_reuse=True),
    }.items():
        out = TransformersBackend(model, processor, **common, **opts).generate(requests_3x3)
        runs[name] = [o.token_ids for o in out]
        assert all(len(t) == 12 for t in runs[name])
    assert runs["batched"] == runs["single"]
    assert runs["reuse"] == runs["single"]
    assert runs["reuse_small_batches"] == runs["single"]
    # different questions on one image give different prompts (the test would be vacuous otherwise)
    prompts = TransformersBackend(model, processor, **common).generate(requests_3x3[:3])
    assert len({o.num_prompt_tokens for o in prompts}) == 3


def test_matches_model_generate(tiny, requests_3x3):
    model, processor = tiny
    backend = TransformersBackend(model, processor, max_new_tokens=10, min_new_tokens=10, stop_strings=())
    ours = backend.generate(requests_3x3[:2])
    for req, out in zip(requests_3x3[:2], ours):
        batch = processor([chat_pieces(req.question)], [req.image])
        with torch.no_grad():
            ref = model.generate(
                **batch, max_new_tokens=10, min_new_tokens=10, do_sample=False, repetition_penalty=1.05
            )
        assert ref[0, batch["input_ids"].shape[1] :].tolist() == out.token_ids
        assert out.text == processor.tokenizer.decode(out.token_ids, skip_special_tokens=False)


class Scripted(torch.nn.Module):
    """Wraps a model and forces the generated tokens to follow ``script`` (one per step)."""

    def __init__(self, model, script):
        super().__init__()
        self.inner = model
        self.script = script
        self.decode_calls = 0

    @property
    def dtype(self):
        return self.inner.dtype

    def forward(self, input_ids=None, cache=None, **kw):
        out = self.inner(input_ids=input_ids, cache=cache, **kw)
        if input_ids.shape[1] == 1:
            self.decode_calls += 1
            step = self.decode_calls
        else:
            step = 0
        out.logits[:, -1, self.script[min(step, len(self.script) - 1)]] += 1e4
        return out


def _tok_ids(processor, *tokens):
    return [processor.tokenizer.convert_tokens_to_ids(t) for t in tokens]


def test_stop_token_and_stop_string(tiny):
    model, processor = tiny
    req = [GenerationRequest(_img(64, 64), "mug")]
    a, b, zero, end = _tok_ids(processor, "<5>", "<6>", "<0>", "<|im_end|>")
    out = TransformersBackend(Scripted(model, [a, b, end, a]), processor).generate(req)[0]
    assert out.finish_reason == "stop" and out.text == "<5><6>" and out.token_ids == [a, b]
    # the degenerate box stops generation and is cut from the text (the reference's vLLM stop string)
    script = [a, zero, zero, zero, zero, b, end]
    out = TransformersBackend(Scripted(model, script), processor).generate(req)[0]
    assert out.finish_reason == "stop_string" and out.text == "<5>"
    out = TransformersBackend(Scripted(model, script), processor, stop_strings=()).generate(req)[0]
    assert out.finish_reason == "stop" and out.text == "<5><0><0><0><0><6>"


def test_min_new_tokens_suppresses_the_stop_token(tiny):
    model, processor = tiny
    req = [GenerationRequest(_img(64, 64), "mug")]
    (end,) = _tok_ids(processor, "<|im_end|>")
    out = TransformersBackend(Scripted(model, [end]), processor, min_new_tokens=3, max_new_tokens=3).generate(req)[0]
    assert len(out.token_ids) == 3 and end not in out.token_ids and out.finish_reason == "length"


def test_context_limits(tiny):
    model, processor = tiny
    req = [GenerationRequest(_img(64, 64), "mug")]
    base = TransformersBackend(model, processor, max_new_tokens=5, stop_tokens=(), stop_strings=())
    prompt_len = base.generate(req)[0].num_prompt_tokens
    out = base.with_settings(max_context=prompt_len + 2).generate(req)[0]
    assert out.finish_reason == "context" and len(out.token_ids) == 2
    out = base.with_settings(max_context=prompt_len).generate(req)[0]
    assert out.finish_reason == "prompt_too_long" and out.text == ""
    assert base.generate(req)[0].finish_reason == "length"


def test_training_layout_option(tiny):
    model, processor = tiny
    req = [GenerationRequest(_img(64, 64), "mug")]
    ref = TransformersBackend(model, processor, max_new_tokens=1).generate(req)[0]
    train = TransformersBackend(model, processor, max_new_tokens=1, layout="training").generate(req)[0]
    assert train.num_prompt_tokens > ref.num_prompt_tokens  # "." after the system prompt, "\n" after the image


def test_settings_validation(tiny):
    with pytest.raises(InputError, match="unknown"):
        GenerationSettings.from_kwargs(temperature=0.7)
    with pytest.raises(InputError):
        GenerationSettings(max_new_tokens=0)
    with pytest.raises(InputError):
        GenerationSettings(layout="chat")
    defaults = GenerationSettings()
    assert (defaults.max_new_tokens, defaults.max_context, defaults.repetition_penalty) == (2048, 4096, 1.05)
    assert defaults.stop_strings == ("<0><0><0><0>",) and "<|im_end|>" in defaults.stop_tokens


def test_per_request_cap_streaming_and_sampling(tiny):
    model, processor = tiny
    img = Image.fromarray((np.random.RandomState(7).rand(60, 80, 3) * 255).astype("uint8"))
    base = TransformersBackend(model, processor, max_new_tokens=12, min_new_tokens=0)
    assert isinstance(base, Backend)
    full = base.generate([GenerationRequest(img, "Return a single JSON object only.\nParse mug.")])[0]
    pieces: list[str] = []
    capped, streamed = base.generate([
        GenerationRequest(img, "Return a single JSON object only.\nParse mug.", max_new_tokens=3),
        GenerationRequest(img, "Return a single JSON object only.\nParse mug.", on_text=pieces.append),
    ])
    # a per-request cap lowers the limit and says "length"; it never raises the server's cap
    assert capped.num_output_tokens == min(3, full.num_output_tokens)
    if full.num_output_tokens > 3:
        assert capped.finish_reason == "length" and capped.hit_limit
        assert capped.token_ids == full.token_ids[:3]
    # streaming: the pieces add up to exactly the final text, and greedy output is unchanged
    assert "".join(pieces) == streamed.text == full.text and streamed.token_ids == full.token_ids
    big = TransformersBackend(model, processor, max_new_tokens=4, min_new_tokens=4)
    (out,) = big.generate([GenerationRequest(img, "q", max_new_tokens=100)])
    assert out.num_output_tokens == 4 and out.finish_reason == "length"
    # sampling: reproducible with a seed; a callback that raises cancels the request
    samp = TransformersBackend(model, processor, max_new_tokens=8, min_new_tokens=8)
    a = samp.generate([GenerationRequest(img, "q", temperature=1.5, seed=3)])[0]
    b = samp.generate([GenerationRequest(img, "q", temperature=1.5, seed=3)])[0]
    assert a.token_ids == b.token_ids

    def boom(_):
        raise ConnectionError("client gone")

    (cancelled,) = samp.generate([GenerationRequest(img, "q", on_text=boom)])
    assert cancelled.finish_reason == "cancelled" and cancelled.num_output_tokens < 8
    with pytest.raises(InputError):
        GenerationRequest(img, "q", max_new_tokens=0)
    with pytest.raises(InputError):
        GenerationRequest(img, "q", top_p=0)


def test_streamed_pieces_hold_back_a_possible_stop_string(tiny):
    model, processor = tiny
    tok = processor.tokenizer
    a, z = tok.convert_tokens_to_ids("<0>"), tok.convert_tokens_to_ids("<5>")
    script = [a, a, z, a, a, a, a, z]  # "<0><0><5>" then the stop string "<0><0><0><0>"
    req_pieces: list[str] = []
    req = [GenerationRequest(Image.new("RGB", (56, 56)), "q", on_text=req_pieces.append)]
    out = TransformersBackend(Scripted(model, script), processor).generate(req)[0]
    assert out.finish_reason == "stop_string" and out.text == "<0><0><5>"
    assert "".join(req_pieces) == "<0><0><5>" and all("<0><0><0><0>" not in p for p in req_pieces)

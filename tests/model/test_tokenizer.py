"""Tokenizers: the small in-process builder, and the Rex-Omni id layout on a full-size fixture
built at test time from the real Qwen BPE ranks (dashscope's qwen.tiktoken)."""

from __future__ import annotations

import json
import unicodedata

import pytest

from sceneparser.model.tokenizer import (
    QWEN_PRETOKENIZE_REGEX,
    QWEN_SPECIAL_TOKENS,
    build_small_tokenizer,
    detect_layout,
    load_tokenizer,
)


# ---------------------------------------------------------------------------------------------
# small tokenizer
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small():
    return build_small_tokenizer()


def test_small_tokenizer_layout(small):
    ids = [small.convert_tokens_to_ids(f"<{k}>") for k in range(1000)]
    assert ids == list(range(ids[0], ids[0] + 1000))  # contiguous, like 150643 + k
    specials = [small.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS]
    assert specials == list(range(ids[-1] + 1, ids[-1] + 1 + len(QWEN_SPECIAL_TOKENS)))  # specials follow
    assert small.eos_token == "<|im_end|>" and small.pad_token == "<|endoftext|>"
    assert small.padding_side == "left"


def test_small_tokenizer_coordinates_are_single_tokens(small):
    text = '{"bbox": "<12><345><0><999>"}<|im_end|>'
    ids = small(text, add_special_tokens=False)["input_ids"]
    toks = small.convert_ids_to_tokens(ids)
    for t in ("<12>", "<345>", "<0>", "<999>", "<|im_end|>"):
        assert t in toks
    assert small.decode(ids, skip_special_tokens=False) == text


def test_small_tokenizer_is_deterministic_and_nfc(small):
    again = build_small_tokenizer()
    assert again.get_vocab() == small.get_vocab()
    decomposed = "cafe\u0301"
    assert small(decomposed)["input_ids"] == small(unicodedata.normalize("NFC", decomposed))["input_ids"]


def test_small_tokenizer_save_load(small, tmp_path):
    small.save_pretrained(str(tmp_path))
    assert detect_layout(tmp_path) == "tokenizer-json"
    loaded = load_tokenizer(tmp_path)
    text = "Parse mug <5><6> <|box_start|>"
    assert loaded(text)["input_ids"] == small(text)["input_ids"]
    assert loaded.eos_token == "<|im_end|>" and loaded.pad_token_id == small.pad_token_id


# ---------------------------------------------------------------------------------------------
# full-size Rex-Omni layout
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rex_dir(tmp_path_factory):
    from sceneparser.model.tokenizer import write_rex_omni_tokenizer_dir

    return write_rex_omni_tokenizer_dir(tmp_path_factory.mktemp("rex_tokenizer"))


@pytest.fixture(scope="module")
def rex_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("tok_cache")


@pytest.fixture(scope="module")
def rex(rex_dir, rex_cache):
    return load_tokenizer(rex_dir, cache_dir=rex_cache)


@pytest.fixture(scope="module")
def tiktoken_encoding():
    """The Qwen BPE run by tiktoken: the oracle for ordinary text."""
    tiktoken = pytest.importorskip("tiktoken")
    from sceneparser.model.tokenizer import load_tiktoken_ranks, qwen_tiktoken_file

    ranks = load_tiktoken_ranks(qwen_tiktoken_file())
    return tiktoken.Encoding("qwen", pat_str=QWEN_PRETOKENIZE_REGEX, mergeable_ranks=ranks, special_tokens={})


def test_fixture_has_the_checkpoint_layout(rex_dir):
    assert not (rex_dir / "tokenizer.json").exists()
    assert detect_layout(rex_dir) == "reused-ids"
    vocab = json.loads((rex_dir / "vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == 151643


def test_coordinate_and_special_ids(rex):
    assert rex.convert_tokens_to_ids("<0>") == 150643
    assert rex.convert_tokens_to_ids("<999>") == 151642
    assert rex.convert_tokens_to_ids("<293>") == 150643 + 293
    expected = dict(zip(QWEN_SPECIAL_TOKENS, range(151643, 151657)))
    assert {t: rex.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS} == expected
    assert rex.convert_tokens_to_ids("<|image_pad|>") == 151655
    ids = rex("<|box_start|><5><17><999><|box_end|>", add_special_tokens=False)["input_ids"]
    assert ids == [151648, 150648, 150660, 151642, 151649]


def test_prompt_ids_match_the_qwen_bpe(rex, tiktoken_encoding):
    from sceneparser import prompts

    question = prompts.object_question("toaster")
    chat = prompts.chat_text(question)
    ids = rex(chat, add_special_tokens=False)["input_ids"]
    # rebuild the expected ids: specials by id, text between them by tiktoken's Qwen BPE
    import re

    expected = []
    for piece in re.split(r"(<\|[a-z_]+\|>)", chat):
        if not piece:
            continue
        if piece.startswith("<|"):
            expected.append({t: i for i, t in enumerate(QWEN_SPECIAL_TOKENS, start=151643)}[piece])
        else:
            expected += tiktoken_encoding.encode_ordinary(piece)
    assert ids == expected
    assert ids[:3] == [151644, 8948, 198]  # "<|im_start|>", "system", "\n" on the Qwen vocabulary
    assert rex.decode(ids, skip_special_tokens=False) == chat


@pytest.mark.parametrize(
    "text",
    [
        "Return a single JSON object only.\nParse all interactive objects in this image and return structured outputs.",
        "你好，世界！ café naïve  multiple   spaces\n\n\ttabs 12345 don't I'LL",
        "Ångström ﬁ 😀 🇫🇷 ∑ x² ≤ y",
    ],
)
def test_ordinary_text_matches_tiktoken(rex, tiktoken_encoding, text):
    assert rex(text, add_special_tokens=False)["input_ids"] == tiktoken_encoding.encode_ordinary(text)


def test_nfc_normalisation_like_the_slow_tokenizer(rex, tiktoken_encoding):
    decomposed = "e\u0301te\u0301 cafe\u0301"
    assert rex(decomposed, add_special_tokens=False)["input_ids"] == tiktoken_encoding.encode_ordinary(
        unicodedata.normalize("NFC", decomposed)
    )


def test_target_round_trip(rex):
    target = (
        '{"objects": [{"name": "toaster", "bbox": "<185><0><446><411>", "parts": [{"part_name": "handle", '
        '"bbox": "<356><170><409><408>", "affordances": [{"action": "push down", "point": "<382><211>"}]}]}]}'
    )
    ids = rex(target + "<|im_end|>", add_special_tokens=False)["input_ids"]
    coords = [i for i in ids if 150643 <= i < 151643]
    assert [i - 150643 for i in coords] == [185, 0, 446, 411, 356, 170, 409, 408, 382, 211]
    assert ids[-1] == 151645
    assert rex.decode(ids, skip_special_tokens=False) == target + "<|im_end|>"


def test_reused_ids_decode_as_coordinates(rex):
    """The slow tokenizer's habit: the rare BPE piece at a reused id still encodes to it, and the
    id decodes as the coordinate token."""
    rare = "\u2209"  # "∉": the BPE piece whose id 150643 became <0>
    assert rex(rare, add_special_tokens=False)["input_ids"] == [150643]
    assert rex.decode([150643, 150644, 151642], skip_special_tokens=False) == "<0><1><999>"


def test_conversion_is_cached_and_checkpoint_untouched(rex_dir, rex_cache, rex):
    cached = list(rex_cache.rglob("tokenizer.json"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    again = load_tokenizer(rex_dir, cache_dir=rex_cache)
    assert cached[0].stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert again.convert_tokens_to_ids("<500>") == 151143
    assert not (rex_dir / "tokenizer.json").exists()


def test_missing_tokenizer_files(tmp_path):
    from sceneparser.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="no tokenizer"):
        load_tokenizer(tmp_path)


def test_saving_a_checkpoint_tokenizer_keeps_the_ids(rex, tmp_path):
    """A fine-tuned model saved from the released checkpoint must reload with the same ids
    (``Tokenizer.save`` alone writes merges that name ``<k>`` instead of the reused pieces)."""
    from transformers import AutoTokenizer

    from sceneparser.model.tokenizer import save_tokenizer

    text = "<|im_start|>user\n<|box_start|><5><17><999><|box_end|>\u2209 Parse mug<|im_end|>"
    expected = rex(text, add_special_tokens=False)["input_ids"]
    save_tokenizer(rex, tmp_path / "a")  # what save_model_dir calls; uses rex.save_pretrained
    assert detect_layout(tmp_path / "a") == "tokenizer-json"
    assert load_tokenizer(tmp_path / "a")(text, add_special_tokens=False)["input_ids"] == expected
    assert AutoTokenizer.from_pretrained(str(tmp_path / "a"))(text, add_special_tokens=False)["input_ids"] == expected

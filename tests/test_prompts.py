"""Prompt banks and ChatML layouts: exact strings of the reference (docs/reference.md, *prompts*)."""

from __future__ import annotations

import hashlib

import pytest

from sceneparser import prompts


def test_prefix_and_system_prompts_exact():
    assert prompts.JSON_ONLY_PREFIX == "Return a single JSON object only.\n"
    assert prompts.SYSTEM_PROMPT_TRAINING == "You are a helpful assistant."
    assert prompts.SYSTEM_PROMPT_INFERENCE == "You are a helpful assistant"


def test_when_available_bank_shape_and_first_entry():
    bank = prompts.OBJECT_PROMPTS_WHEN_AVAILABLE
    assert isinstance(bank, tuple) and len(bank) == 48
    assert bank[0] == (
        "Parse [OBJ] in this image and return object bbox, part bboxes, and affordance points "
        "when available."
    )
    assert len(set(bank)) == 48
    for t in bank:
        assert t.count("[OBJ]") == 1
        assert "object bbox, part bboxes, and affordance points when available" in t
        assert t.endswith((".", "?"))
    # 24 sentences x {capitalised, lower-case first letter}, each followed by its twin
    caps, lows = bank[0::2], bank[1::2]
    for c, lo in zip(caps, lows):
        assert c[0].isupper() and lo[0].islower()
        assert lo == c[0].lower() + c[1:]
    assert bank[28] == (
        "Can you locate [OBJ] and return object bbox, part bboxes, and affordance points when available?"
    )
    assert bank[40] == (
        "Given [OBJ], return object bbox, part bboxes, and affordance points when available in JSON."
    )
    # the released bank, byte for byte and in order
    digest = hashlib.sha256("\n".join(bank).encode("utf-8")).hexdigest()
    assert digest == "05e0a53c87870169b4e603946c222b6f88d0c3bedc10e94a4b3a8b4b65c1e923"


def test_reference_object_question():
    assert prompts.REFERENCE_OBJECT_QUESTION == (
        "Return a single JSON object only.\n"
        "Parse [OBJ] in this image and return object bbox, part bboxes, and affordance points when available."
    )


def test_object_question_fills_every_placeholder_verbatim():
    assert prompts.object_question("toaster") == (
        "Return a single JSON object only.\n"
        "Parse toaster in this image and return object bbox, part bboxes, and affordance points when available."
    )
    assert prompts.object_question("Coffee Mug", "Find [OBJ] or [OBJ].") == (
        "Return a single JSON object only.\nFind Coffee Mug or Coffee Mug."
    )


def test_scene_bank_and_question():
    bank = prompts.SCENE_PROMPTS
    assert len(bank) >= 10 and len(set(bank)) == len(bank)
    assert bank[0] == prompts.DEFAULT_SCENE_PROMPT
    assert bank[0] == "Parse all interactive objects in this image and return structured outputs."
    assert sum("[SCOPE]=all" in t for t in bank) == 2
    assert all("[OBJ]" not in t for t in bank)
    assert prompts.scene_question() == "Return a single JSON object only.\n" + bank[0]
    assert prompts.scene_question(bank[3]) == prompts.JSON_ONLY_PREFIX + bank[3]


def test_chat_text_inference_layout_matches_reference_driver():
    text = prompts.chat_text(prompts.object_question("toaster"), layout="inference")
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\n"
        "<|vision_start|><|image_pad|><|vision_end|>Return a single JSON object only.\n"
        "Parse toaster in this image and return object bbox, part bboxes, and affordance points "
        "when available.<|im_end|>\n<|im_start|>assistant\n"
    )
    assert text.count("<|image_pad|>") == 1
    # default layout is the reference inference layout
    assert prompts.chat_text(prompts.object_question("toaster")) == text


def test_chat_text_training_layout_with_answer():
    answer = '{"objects": []}'
    text = prompts.chat_text(prompts.object_question("mug"), layout="training", answer=answer)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "<|vision_start|><|image_pad|><|vision_end|>\nReturn a single JSON object only.\n"
        "Parse mug in this image and return object bbox, part bboxes, and affordance points "
        "when available.<|im_end|>\n<|im_start|>assistant\n"
        '{"objects": []}<|im_end|>\n'
    )
    prompt_only = prompts.chat_text(prompts.object_question("mug"), layout="training")
    assert text == prompt_only + answer + "<|im_end|>\n"
    assert text.count("<|image_pad|>") == 1


def test_chat_text_system_override_and_bad_layout():
    text = prompts.chat_text("q", layout="inference", system="Be terse.")
    assert text.startswith("<|im_start|>system\nBe terse.<|im_end|>\n")
    with pytest.raises(ValueError):
        prompts.chat_text("q", layout="other")  # type: ignore[arg-type]

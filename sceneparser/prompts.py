"""Prompt banks, system prompts and the two ChatML layouts (training and reference inference).

Everything here is plain data plus string assembly; nothing imports torch or transformers.

* ``JSON_ONLY_PREFIX`` starts every question (training.md §3.3).
* ``OBJECT_PROMPTS_WHEN_AVAILABLE`` is the object bank the reference curriculum trains on:
  24 sentences, each in a capitalised and a lower-case-first-letter form (48 entries). Every
  template holds ``[OBJ]`` exactly once. Entry 0 is the question of the reference evaluation
  driver, byte for byte (evaluation.md §1, §3.3). The other 47 follow the openers listed in
  training.md §3.3; the reference notes paraphrase them, so only entry 0 is guaranteed to match
  the released bank character for character.
* ``SCENE_PROMPTS`` is the scene-level bank (the reference never draws it: ``scene_prompt_ratio=0``).
* ``chat_text`` renders the full ChatML text with ONE ``<|image_pad|>`` placeholder:
  ``layout="inference"`` is what the reference evaluation sends (system prompt without a period,
  no newline after ``<|vision_end|>``); ``layout="training"`` is the trainer's layout (system prompt
  with a period, ``\\n`` between ``<|vision_end|>`` and the question).
"""

from __future__ import annotations

from typing import Literal

JSON_ONLY_PREFIX = "Return a single JSON object only.\n"

OBJ_PLACEHOLDER = "[OBJ]"

SYSTEM_PROMPT_TRAINING = "You are a helpful assistant."
SYSTEM_PROMPT_INFERENCE = "You are a helpful assistant"

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
VISION_START = "<|vision_start|>"
IMAGE_PAD = "<|image_pad|>"
VISION_END = "<|vision_end|>"
IMAGE_PLACEHOLDER = VISION_START + IMAGE_PAD + VISION_END

_WHEN = "object bbox, part bboxes, and affordance points when available"

# The 24 capitalised sentences, in bank order (training.md §3.3).
_WHEN_AVAILABLE_SENTENCES: tuple[str, ...] = (
    f"Parse [OBJ] in this image and return {_WHEN}.",
    f"Parse the target [OBJ] and return {_WHEN}.",
    f"Return a hierarchical parse for [OBJ] with {_WHEN}.",
    f"Describe [OBJ] with {_WHEN}.",
    f"Find [OBJ] and return {_WHEN}.",
    f"Locate [OBJ] and output {_WHEN}.",
    f"Detect [OBJ] and return {_WHEN}.",
    f"Identify [OBJ] and return {_WHEN}.",
    f"Find [OBJ] in the image and return {_WHEN}.",
    f"Locate [OBJ] in the image and return a JSON parse with {_WHEN}.",
    f"Please detect [OBJ] and return {_WHEN}.",
    f"Please locate [OBJ] and return {_WHEN}.",
    f"Please identify [OBJ] and return {_WHEN}.",
    f"Can you find [OBJ] and return {_WHEN}?",
    f"Can you locate [OBJ] and return {_WHEN}?",
    f"Point to [OBJ] in the image and return {_WHEN}.",
    f"Mark [OBJ] in the image and return {_WHEN}.",
    f"Show where [OBJ] is in the image and return {_WHEN}.",
    f"Indicate [OBJ] in the image and return {_WHEN}.",
    f"Return the interaction-oriented parse of [OBJ] with {_WHEN}.",
    f"Given [OBJ], return {_WHEN} in JSON.",
    f"Output a structured parse of [OBJ] with {_WHEN}.",
    f"Parse [OBJ]. Use {_WHEN}.",
    f"Please parse [OBJ] and return {_WHEN}.",
)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


OBJECT_PROMPTS_WHEN_AVAILABLE: tuple[str, ...] = _WHEN_AVAILABLE_SENTENCES + tuple(
    _lower_first(s) for s in _WHEN_AVAILABLE_SENTENCES
)

REFERENCE_OBJECT_QUESTION = JSON_ONLY_PREFIX + OBJECT_PROMPTS_WHEN_AVAILABLE[0]

# Scene-level bank (all objects in the image). Entry 0 is the example quoted by the reference
# notes; two entries carry the literal ``[SCOPE]=all`` tag, as the reference bank does.
SCENE_PROMPTS: tuple[str, ...] = (
    "Parse all interactive objects in this image and return structured outputs.",
    "Parse every object in this image and return object bboxes, part bboxes, and affordance points when available.",
    "Return a hierarchical parse of the whole scene with object bboxes, part bboxes, and affordance points when available.",
    "Find all objects in the image and return their bboxes, part bboxes, and affordance points when available.",
    "Locate every interactive object and output object bbox, part bboxes, and affordance points when available.",
    "Detect all objects in this image and return a structured scene parse.",
    "Identify all objects in the scene and return object bbox, part bboxes, and affordance points when available.",
    "Describe the scene as a list of objects with bboxes, part bboxes, and affordance points when available.",
    "Output a structured parse of all objects in this image.",
    "Return the interaction-oriented parse of the entire scene.",
    "Please parse the whole image and return every object with its parts and affordances when available.",
    "Please detect all objects and return object bbox, part bboxes, and affordance points when available.",
    "Can you parse every object in this image and return structured outputs?",
    "Can you list all interactive objects with their parts and affordance points when available?",
    "Give a scene-level parse: all objects, their part bboxes, and affordance points when available.",
    "[SCOPE]=all Parse all objects in this image and return structured outputs.",
    "[SCOPE]=all Return object bbox, part bboxes, and affordance points when available for every object.",
    "Enumerate all objects in this image with object bbox, part bboxes, and affordance points when available.",
    "Parse the scene: return every object's bbox, part bboxes, and affordance points when available.",
    "List every object in the image as structured JSON with parts and affordances when available.",
    "Return a scene graph of objects, parts, and affordance points when available.",
    "Find every object you can interact with and return structured outputs.",
    "Locate all objects in the image and return a JSON parse with parts and affordances when available.",
    "Mark all objects in the image and return object bbox, part bboxes, and affordance points when available.",
    "Show where every object is and return part bboxes and affordance points when available.",
    "Parse all visible objects and return their hierarchical structure.",
    "Return all objects in this image with their parts and affordances when available.",
    "Given this image, return every object with object bbox, part bboxes, and affordance points when available.",
    "Output the full scene parse in JSON.",
    "Please parse all objects in this scene and return structured outputs.",
)

Layout = Literal["inference", "training"]


def object_question(category: str, template: str | None = None) -> str:
    """The user question for one category: ``JSON_ONLY_PREFIX + template`` with ``[OBJ]`` filled.

    ``template`` defaults to the reference evaluation question (bank entry 0). Every occurrence
    of ``[OBJ]`` is replaced with ``category`` verbatim (case kept), as the reference does.
    """
    if template is None:
        template = OBJECT_PROMPTS_WHEN_AVAILABLE[0]
    return JSON_ONLY_PREFIX + template.replace(OBJ_PLACEHOLDER, category)


def scene_question(template: str | None = None) -> str:
    """The user question for a scene-level (all objects) query."""
    if template is None:
        template = SCENE_PROMPTS[0]
    return JSON_ONLY_PREFIX + template


def chat_text(
    question: str,
    layout: Layout = "inference",
    answer: str | None = None,
    *,
    system: str | None = None,
) -> str:
    """Render the full ChatML text for one image + question, with one ``<|image_pad|>``.

    ``layout="inference"`` reproduces the reference evaluation prompt (evaluation.md §3.3),
    ``layout="training"`` the trainer's (training.md §3.5). With ``answer`` the assistant turn is
    completed as ``answer + "<|im_end|>\\n"``; without it the text ends with the generation prompt
    ``"<|im_start|>assistant\\n"``. ``system`` overrides the layout's system prompt.
    """
    if layout == "inference":
        sys_prompt = SYSTEM_PROMPT_INFERENCE
        user = IMAGE_PLACEHOLDER + question
    elif layout == "training":
        sys_prompt = SYSTEM_PROMPT_TRAINING
        user = IMAGE_PLACEHOLDER + "\n" + question
    else:
        raise ValueError(f"layout must be 'inference' or 'training', not {layout!r}")
    if system is not None:
        sys_prompt = system
    text = (
        f"{IM_START}system\n{sys_prompt}{IM_END}\n"
        f"{IM_START}user\n{user}{IM_END}\n"
        f"{IM_START}assistant\n"
    )
    if answer is not None:
        text += answer + IM_END + "\n"
    return text


__all__ = [
    "IMAGE_PAD",
    "IMAGE_PLACEHOLDER",
    "IM_END",
    "IM_START",
    "JSON_ONLY_PREFIX",
    "OBJECT_PROMPTS_WHEN_AVAILABLE",
    "OBJ_PLACEHOLDER",
    "REFERENCE_OBJECT_QUESTION",
    "SCENE_PROMPTS",
    "SYSTEM_PROMPT_INFERENCE",
    "SYSTEM_PROMPT_TRAINING",
    "VISION_END",
    "VISION_START",
    "chat_text",
    "object_question",
    "scene_question",
]

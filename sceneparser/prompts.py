"""Prompt banks, system prompts and the two ChatML layouts (training and reference inference).

Everything here is plain data plus string assembly; nothing imports torch or transformers.

* ``JSON_ONLY_PREFIX`` starts every question (docs/reference.md, *prompts*).
* ``OBJECT_PROMPTS_WHEN_AVAILABLE`` is the object bank the reference curriculum trains on:
  24 sentences, each in a capitalised and a lower-case-first-letter form (48 entries). Every
  template holds ``[OBJ]`` exactly once. The strings and their order are the released bank's,
  byte for byte (they are data the released checkpoint was trained on); entry 0 is also the
  question of the reference evaluation driver (docs/reference.md, *prompts*).
* ``SCENE_PROMPTS`` is the scene-level bank (the reference never draws it: ``scene_prompt_ratio=0``);
  ``DEFAULT_SCENE_PROMPT`` (entry 0) is the scene question used when none is given.
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

# The 24 capitalised sentences, in bank order (docs/reference.md, *prompts*).
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
    f"Point to [OBJ] and return {_WHEN}.",
    f"Mark [OBJ] and return {_WHEN}.",
    f"Show where [OBJ] is and return {_WHEN}.",
    f"Indicate [OBJ] in the image and return {_WHEN}.",
    f"Return the interaction-oriented parse of [OBJ] with {_WHEN}.",
    f"Given [OBJ], return {_WHEN} in JSON.",
    f"Output a structured parse of [OBJ] with {_WHEN}.",
    f"Parse [OBJ]. Use {_WHEN}.",
    f"Please parse [OBJ] and return {_WHEN}.",
)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


# Bank order: each sentence, then its lower-case-first-letter twin.
OBJECT_PROMPTS_WHEN_AVAILABLE: tuple[str, ...] = tuple(
    variant for s in _WHEN_AVAILABLE_SENTENCES for variant in (s, _lower_first(s))
)

REFERENCE_OBJECT_QUESTION = JSON_ONLY_PREFIX + OBJECT_PROMPTS_WHEN_AVAILABLE[0]

# Scene-level bank (all objects in the image): the reference's scene-centric bank, with its
# "return structured outputs" sentence moved to the front as the default scene question. Two
# entries carry the literal ``[SCOPE]=all`` tag, as in the reference.
DEFAULT_SCENE_PROMPT = "Parse all interactive objects in this image and return structured outputs."
SCENE_PROMPTS: tuple[str, ...] = (
    DEFAULT_SCENE_PROMPT,
    "[SCOPE]=all. Parse all interactive objects in this image.",
    "Return whole-scene hierarchical parsing for all interactive objects.",
    "Analyze the full scene and parse every interactive object.",
    "Parse the entire image and return all interactive objects with hierarchical structure.",
    "Find all interactive objects in the scene and output structured object-part-affordance results.",
    "Provide full-scene parsing for every interactive object visible in the image.",
    "Return scene-level hierarchical annotations for all interactive objects.",
    "Perform global parsing: detect and parse all interactive objects in this image.",
    "Output all interactive object instances in the image with their structured hierarchies.",
    "For the whole image, parse all manipulable or interactive objects.",
    "List and parse every interactive object across the scene.",
    "Do scene-wide structured parsing for all interactive objects.",
    "Parse all target objects in this image at scene scope.",
    "Run all-object hierarchical parsing on this image.",
    "Return complete scene-centric parse for all interactive objects.",
    "Find every interactive object and provide structured outputs for each instance.",
    "Produce a scene-centric hierarchy covering all interactive objects.",
    "Parse the full scene with object boxes and available part/affordance details for all objects.",
    "Global query: parse all interactive objects and return their structured annotations.",
    "Parse all relevant objects in this image under [SCOPE]=all.",
    "Analyze this scene and output a structured parse for each interactive object.",
    "Return all interactive objects with object-level outputs and available finer hierarchy.",
    "Detect and parse all interactive object categories present in this image.",
    "Generate full-scene object-part-affordance parsing outputs.",
    "Across the whole image, return structured parsing for every interactive object.",
    "Scene-level request: parse all interactive objects, not just a single target.",
    "Parse all interactive entities in the image and provide hierarchical results.",
    "Whole-scene parsing: include every interactive object instance with structured output.",
    "For this image, perform all-object structured parsing at global scope.",
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
        template = DEFAULT_SCENE_PROMPT
    return JSON_ONLY_PREFIX + template


def json_question(question: str) -> str:
    """``question`` with the JSON-only prefix in front (kept once when it is already there): how a
    free-form question (the HTTP chat route) is asked, as every trained question starts that way."""
    return question if question.startswith(JSON_ONLY_PREFIX) else JSON_ONLY_PREFIX + question


def chat_text(
    question: str,
    layout: Layout = "inference",
    answer: str | None = None,
    *,
    system: str | None = None,
) -> str:
    """Render the full ChatML text for one image + question, with one ``<|image_pad|>``.

    ``layout="inference"`` reproduces the reference evaluation prompt,
    ``layout="training"`` the trainer's (docs/reference.md, *prompts*). With ``answer`` the assistant turn is
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
    "DEFAULT_SCENE_PROMPT",
    "chat_text",
    "object_question",
    "scene_question",
]

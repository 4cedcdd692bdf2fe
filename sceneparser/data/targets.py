"""(annotation, query) -> training target text, bit-identical to the reference
(docs/reference.md, *training-data*).

The annotation is the converter's shape (pixel coordinates; docs/reference.md, *training-data*)::

    {"objects": [{"name", "bbox", "parts": [{"part_name", "bbox", "affordances": [{"action", "point"}]}]}]}

Target rules (reference behaviour, kept exactly):

* boxes and points are floored into bins ``0..999`` with :func:`sceneparser.coords.quantize`
  (by the *original* image size); a box whose quantised ``x1 < x0`` or ``y1 < y0`` is invalid;
* sanitising: objects without a name are dropped; an object box that is missing or invalid is
  emitted as ``null``; a part without a name or a valid box is dropped with its affordances;
  parts are de-duplicated per object on ``(norm(part_name), box tokens)``; an affordance needs a
  truthy action and a point and is de-duplicated per part on ``(norm(action), point tokens)``;
* key order ``name, bbox, parts`` / ``part_name, bbox, affordances`` / ``action, point``;
* objects are de-duplicated on ``(norm(name), box tokens, json(parts, sort_keys))`` and stably
  sorted by ``(x0 bin or 10**9, norm(name))``; parts and affordances keep annotation order;
* ``json.dumps({"objects": [...]}, ensure_ascii=False)`` with the default separators.

Pseudo policies: ``drop`` (stage 1; placeholder parts and none-actions removed, the point falls
back to ``sampled_points[0]``), ``keep`` (placeholders and ``__none__`` emitted literally) and
``mix(p)`` (stage 2 = ``mix(0.3)``, stage 3 = ``mix(0.5)``) whose branch draw is a pure function
of ``(seed, epoch, index)``.

Deviations from the reference, none of which changes a target the reference produces without
crashing: malformed boxes/points (wrong length, non-numbers) and non-finite values are treated
as missing instead of raising; non-dict entries are skipped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import struct
from typing import Any, Iterable, Literal, Mapping, Sequence

from sceneparser.coords import quantize

# --------------------------------------------------------------------------------------------
# One shared definition of "placeholder part" and "none action"
# --------------------------------------------------------------------------------------------


def norm(value: Any) -> str:
    """The reference's text normalisation: ``str(v or "").strip().lower()``."""
    return str(value or "").strip().lower()


@dataclasses.dataclass(frozen=True)
class PseudoDefinition:
    """Which parts count as pseudo (placeholder) parts and which actions as "no affordance".

    ``part_names`` / ``none_actions`` are compared after :func:`norm`; ``use_flag`` also treats a
    part whose ``is_pseudo_part`` is truthy as a placeholder.
    """

    part_names: frozenset[str]
    none_actions: frozenset[str]
    use_flag: bool = False

    def is_placeholder_part(self, part: Mapping[str, Any] | str | None) -> bool:
        if isinstance(part, Mapping):
            if self.use_flag and part.get("is_pseudo_part"):
                return True
            return norm(part.get("part_name")) in self.part_names
        return norm(part) in self.part_names

    def is_none_action(self, action: Any) -> bool:
        if isinstance(action, Mapping):
            action = action.get("action")
        return norm(action) in self.none_actions


#: What the reference's drop-pseudo policy removes, by name only (docs/reference.md, *training-data*).
TRAINING_PLACEHOLDER_PART_NAMES = frozenset({"__placeholder_part__", "placeholder_part", "placeholder part"})
TRAINING_NONE_ACTIONS = frozenset({"", "__none__", "none", "null"})
#: What the reference evaluation filters remove, by name or ``is_pseudo_part`` (docs/reference.md, *filters*).
EVALUATION_PLACEHOLDER_PART_NAMES = frozenset({"__placeholder_part__"})
EVALUATION_NONE_ACTIONS = frozenset({"__none__", "__placeholder_action__"})

TRAINING_PSEUDO = PseudoDefinition(TRAINING_PLACEHOLDER_PART_NAMES, TRAINING_NONE_ACTIONS, use_flag=False)
EVALUATION_PSEUDO = PseudoDefinition(EVALUATION_PLACEHOLDER_PART_NAMES, EVALUATION_NONE_ACTIONS, use_flag=True)
#: Both lists together (and the flag): the union of what either side treats as pseudo.
UNION_PSEUDO = PseudoDefinition(
    TRAINING_PLACEHOLDER_PART_NAMES | EVALUATION_PLACEHOLDER_PART_NAMES,
    TRAINING_NONE_ACTIONS | EVALUATION_NONE_ACTIONS,
    use_flag=True,
)

# --------------------------------------------------------------------------------------------
# Deterministic draws
# --------------------------------------------------------------------------------------------


def uniform_draw(seed: int, epoch: int, index: int, salt: str = "") -> float:
    """A uniform number in ``[0, 1)`` that depends only on ``(seed, epoch, index, salt)``.

    Same value in every process and on every platform (no global RNG state).
    """
    h = hashlib.blake2b(digest_size=8, person=b"sceneparser")
    h.update(struct.pack("<qqq", int(seed), int(epoch), int(index)))
    h.update(salt.encode("utf-8"))
    return int.from_bytes(h.digest(), "little") / 2.0**64


def choice_index(n: int, seed: int, epoch: int, index: int, salt: str) -> int:
    """A deterministic index in ``range(n)`` (``n > 0``)."""
    return min(n - 1, int(uniform_draw(seed, epoch, index, salt) * n))


# --------------------------------------------------------------------------------------------
# Pseudo policies
# --------------------------------------------------------------------------------------------

Branch = Literal["drop", "keep"]


@dataclasses.dataclass(frozen=True)
class PseudoPolicy:
    """``drop``, ``keep`` or ``mix`` (``keep`` with probability ``p``, else ``drop``)."""

    mode: Literal["drop", "keep", "mix"] = "drop"
    p: float = 0.0
    definition: PseudoDefinition = TRAINING_PSEUDO

    def __post_init__(self) -> None:
        if self.mode not in ("drop", "keep", "mix"):
            raise ValueError(f"pseudo mode must be drop, keep or mix, not {self.mode!r}")
        if not 0.0 <= self.p <= 1.0 or math.isnan(self.p):
            raise ValueError(f"mix probability must be in [0, 1], got {self.p!r}")

    @classmethod
    def drop(cls, definition: PseudoDefinition = TRAINING_PSEUDO) -> "PseudoPolicy":
        return cls("drop", 0.0, definition)

    @classmethod
    def keep(cls, definition: PseudoDefinition = TRAINING_PSEUDO) -> "PseudoPolicy":
        return cls("keep", 1.0, definition)

    @classmethod
    def mix(cls, p: float, definition: PseudoDefinition = TRAINING_PSEUDO) -> "PseudoPolicy":
        return cls("mix", float(p), definition)

    @classmethod
    def parse(cls, spec: "str | PseudoPolicy") -> "PseudoPolicy":
        """``"drop"``, ``"keep"``, ``"mix(0.3)"`` or ``"mix:0.3"`` -> policy."""
        if isinstance(spec, PseudoPolicy):
            return spec
        s = str(spec).strip().lower()
        if s in ("drop", "keep"):
            return cls.drop() if s == "drop" else cls.keep()
        m = re.fullmatch(r"mix\s*[(:=]\s*([0-9.eE+-]+)\s*\)?", s)
        if m:
            return cls.mix(float(m.group(1)))
        raise ValueError(f"unknown pseudo policy {spec!r}: use drop, keep or mix(P)")

    def branch(self, seed: int = 0, epoch: int = 0, index: int = 0) -> Branch:
        """Which branch builds sample ``index`` in ``epoch`` (deterministic)."""
        if self.mode == "drop":
            return "drop"
        if self.mode == "keep":
            return "keep"
        return "keep" if uniform_draw(seed, epoch, index, "pseudo") < self.p else "drop"

    def __str__(self) -> str:
        return f"mix({self.p:g})" if self.mode == "mix" else self.mode


#: The reference curriculum: stage 1 drops pseudo content, stages 2 and 3 mix 30 % / 50 % keep.
STAGE_POLICIES: dict[int, PseudoPolicy] = {1: PseudoPolicy.drop(), 2: PseudoPolicy.mix(0.3), 3: PseudoPolicy.mix(0.5)}

# --------------------------------------------------------------------------------------------
# Quantisation helpers (reference formulas, robust to malformed input)
# --------------------------------------------------------------------------------------------

_BIN_RE = re.compile(r"<(\d+)>")


def _finite_numbers(values: Any, n: int) -> list[float] | None:
    if not isinstance(values, (list, tuple)) or len(values) != n:
        return None
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        if not math.isfinite(v):
            return None
        out.append(v)
    return out


def box_bins(box: Any, width: float, height: float) -> list[int] | None:
    """Reference ``normalize_bbox``: floor-999 bins, ``None`` when missing, malformed or inverted."""
    if box is None:
        return None
    vals = _finite_numbers(box, 4)
    if vals is None:
        return None
    x0, y0, x1, y1 = vals
    b = [quantize(x0, width), quantize(y0, height), quantize(x1, width), quantize(y1, height)]
    if b[2] < b[0] or b[3] < b[1]:
        return None
    return b


def point_bins(point: Any, width: float, height: float) -> list[int] | None:
    """Reference ``normalize_point``: floor-999 bins, ``None`` when missing or malformed."""
    if point is None:
        return None
    vals = _finite_numbers(point, 2)
    if vals is None:
        return None
    return [quantize(vals[0], width), quantize(vals[1], height)]


def _tokens(bins: Sequence[int]) -> str:
    return "".join(f"<{b}>" for b in bins)


def _x0_of(box_tokens: Any) -> int:
    if not isinstance(box_tokens, str):
        return 10**9
    nums = _BIN_RE.findall(box_tokens)
    if len(nums) != 4:
        return 10**9
    return int(nums[0])


# --------------------------------------------------------------------------------------------
# Target building
# --------------------------------------------------------------------------------------------


def _extract_point(aff: Mapping[str, Any], fallback: bool) -> Any:
    point = aff.get("point")
    if point is not None or not fallback:
        return point
    sampled = aff.get("sampled_points")
    if isinstance(sampled, list) and sampled:
        p0 = sampled[0]
        if isinstance(p0, list) and len(p0) == 2:
            return p0
    return None


def sanitize_object(
    obj: Mapping[str, Any],
    width: float,
    height: float,
    branch: Branch = "drop",
    definition: PseudoDefinition = TRAINING_PSEUDO,
) -> dict | None:
    """One annotation object -> target object dict (or ``None`` when it has no name)."""
    name = obj.get("name")
    if not name:
        return None
    bbox = box_bins(obj.get("bbox"), width, height)
    drop = branch == "drop"
    parts: list[dict] = []
    seen_parts: set[tuple[str, str]] = set()
    for part in obj.get("parts", []) or []:
        if not isinstance(part, Mapping):
            continue
        part_name = part.get("part_name")
        if not part_name:
            continue
        if drop and definition.is_placeholder_part(part):
            continue
        pbox = box_bins(part.get("bbox"), width, height)
        if pbox is None:
            continue
        ptok = _tokens(pbox)
        pkey = (norm(part_name), ptok)
        if pkey in seen_parts:
            continue
        seen_parts.add(pkey)
        affs: list[dict] = []
        seen_affs: set[tuple[str, str]] = set()
        for aff in part.get("affordances", []) or []:
            if not isinstance(aff, Mapping):
                continue
            action = aff.get("action")
            if drop and definition.is_none_action(action):
                continue
            pt = point_bins(_extract_point(aff, fallback=drop), width, height)
            if action and pt is not None:
                atok = _tokens(pt)
                akey = (norm(action), atok)
                if akey in seen_affs:
                    continue
                seen_affs.add(akey)
                affs.append({"action": action, "point": atok})
        parts.append({"part_name": part_name, "bbox": ptok, "affordances": affs})
    return {"name": name, "bbox": _tokens(bbox) if bbox is not None else None, "parts": parts}


def _dedup_and_sort(objs: Iterable[dict]) -> list[dict]:
    out: list[dict] = []
    seen: set[tuple] = set()
    for o in objs:
        key = (norm(o.get("name")), o.get("bbox"), json.dumps(o.get("parts", []), ensure_ascii=False, sort_keys=True))
        if key in seen:
            continue
        seen.add(key)
        out.append(o)
    return sorted(out, key=lambda o: (_x0_of(o.get("bbox")), norm(o.get("name"))))


def _objects_of(annotation: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    objs = annotation.get("objects") if isinstance(annotation, Mapping) else None
    return [o for o in (objs or []) if isinstance(o, Mapping)]


def _matches(name: Any, query: str | None, case_insensitive: bool) -> bool:
    if case_insensitive and query is not None:
        return bool(name) and norm(name) == norm(query)
    return name == query


def build_target(
    annotation: Mapping[str, Any],
    width: int,
    height: int,
    query: str | None,
    *,
    scene: bool = False,
    pseudo: "str | PseudoPolicy" = "drop",
    seed: int = 0,
    epoch: int = 0,
    index: int = 0,
    case_insensitive: bool = False,
) -> str:
    """The reference training target (assistant text) for one sample.

    ``query`` is the category (exact string equality, as the reference; ``case_insensitive``
    compares ``norm`` forms instead). A category absent from the image gives
    ``{"objects": []}`` (a negative query); ``query=None`` without ``scene`` reproduces the
    reference's "no named object" case, which is also ``{"objects": []}``. ``scene=True`` targets
    every object of the image. ``pseudo`` is ``"drop"``, ``"keep"``, ``"mix(p)"`` or a
    :class:`PseudoPolicy`; for ``mix`` the branch is drawn from ``(seed, epoch, index)``.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    policy = PseudoPolicy.parse(pseudo)
    branch = policy.branch(seed, epoch, index)
    objects = _objects_of(annotation)
    if not scene:
        objects = [o for o in objects if _matches(o.get("name"), query, case_insensitive)]
    sanitized = (sanitize_object(o, width, height, branch, policy.definition) for o in objects)
    out = _dedup_and_sort(s for s in sanitized if s is not None)
    return json.dumps({"objects": out}, ensure_ascii=False)


def categories(annotation: Mapping[str, Any], *, case_insensitive: bool = False) -> list[str]:
    """Distinct truthy object names, sorted (the reference's query candidates, case-sensitive).

    With ``case_insensitive`` names equal after :func:`norm` collapse to one entry (the
    smallest spelling in code-point order).
    """
    names = {o.get("name") for o in _objects_of(annotation) if o.get("name") and isinstance(o.get("name"), str)}
    if not case_insensitive:
        return sorted(names)
    best: dict[str, str] = {}
    for n in sorted(names):
        best.setdefault(norm(n), n)
    return sorted(best.values())


# --------------------------------------------------------------------------------------------
# Query choice (reference: one category uniformly per image per epoch)
# --------------------------------------------------------------------------------------------


#: Names an "unknown name" query draws from (``QueryOptions.unknown_ratio``): everyday things that
#: are neither a class nor a part name of the synthetic scenes, nor a near-synonym of one ("cup",
#: "jar", "cupboard" are left out so that an empty answer is never wrong for them).
UNKNOWN_NAMES: tuple[str, ...] = (
    "cat", "dog", "person", "banana", "apple", "orange", "car", "bicycle", "chair", "sofa", "tree",
    "bird", "horse", "phone", "umbrella", "clock", "shoe", "hat", "guitar", "pillow", "flower",
    "scissors", "spoon", "fork", "bed", "window", "toilet", "television", "remote", "teddy bear",
    "carrot", "pizza", "sandwich", "cake", "vase", "backpack", "kite", "skateboard", "elephant",
    "giraffe", "zebra", "airplane", "truck", "boat", "bench", "sheep", "cow", "toothbrush",
)


@dataclasses.dataclass(frozen=True)
class QueryOptions:
    """How a training sample's query is drawn. Defaults reproduce the reference curriculum.

    ``unknown_ratio`` (not in the reference) is the share of object queries for a name that is
    no category of the dataset at all: a word of ``unknown_names`` or, for ``random_name_share``
    of them, a random string of 3-10 lower-case letters. Its target is ``{"objects": []}``.
    Names equal (after :func:`norm`) to a ``vocabulary`` entry are never drawn.
    """

    scene_ratio: float = 0.0  # reference: 0.0 in all three stages
    negative_ratio: float = 0.0  # reference: no negative queries
    case_insensitive: bool = False  # reference: exact strings
    vocabulary: tuple[str, ...] = ()  # categories negatives are drawn from
    unknown_ratio: float = 0.0  # reference: no queries for names outside the vocabulary
    unknown_names: tuple[str, ...] = UNKNOWN_NAMES
    random_name_share: float = 0.3  # of the unknown-name queries: a random letter string


def random_name(seed: int, epoch: int, index: int) -> str:
    """A deterministic random lower-case "word" of 3-10 letters (an unknown-name query)."""
    n = 3 + choice_index(8, seed, epoch, index, "random-name-length")
    return "".join(chr(97 + choice_index(26, seed, epoch, index, f"random-name-{k}")) for k in range(n))


def unknown_name(seed: int, epoch: int, index: int, options: QueryOptions) -> str:
    """The unknown name of sample ``index`` (see :class:`QueryOptions`); never a vocabulary name."""
    known = {norm(v) for v in options.vocabulary}
    words = [w for w in options.unknown_names if norm(w) not in known]
    if words and uniform_draw(seed, epoch, index, "random-name") >= options.random_name_share:
        return words[choice_index(len(words), seed, epoch, index, "unknown-name")]
    for attempt in range(8):
        name = random_name(seed, epoch, index * 8 + attempt)
        if norm(name) not in known:
            return name
    return "zzqxj"  # eight draws that all hit a category: practically never


@dataclasses.dataclass(frozen=True)
class Query:
    category: str | None  # None for scene queries (and the reference's "no names" case)
    scene: bool = False
    negative: bool = False

    @property
    def prompt_category(self) -> str:
        """The text that replaces ``[OBJ]`` (the reference uses "target object" without names)."""
        return self.category if self.category is not None else "target object"


def choose_query(
    annotation: Mapping[str, Any],
    *,
    seed: int = 0,
    epoch: int = 0,
    index: int = 0,
    options: QueryOptions = QueryOptions(),
) -> Query:
    """Draw the query of sample ``index`` in ``epoch``, deterministically.

    Scene query with probability ``scene_ratio``; otherwise a query for a name outside the
    vocabulary with probability ``unknown_ratio`` (:func:`unknown_name`); otherwise a negative
    query (a vocabulary category absent from the image) with probability ``negative_ratio`` when
    one exists; otherwise one of :func:`categories` uniformly (over categories, not instances).
    Every draw has its own salt, so an option left at 0 changes no other draw.
    """
    if options.scene_ratio > 0 and uniform_draw(seed, epoch, index, "scene") < options.scene_ratio:
        return Query(None, scene=True)
    if options.unknown_ratio > 0 and uniform_draw(seed, epoch, index, "unknown") < options.unknown_ratio:
        return Query(unknown_name(seed, epoch, index, options), negative=True)
    cats = categories(annotation, case_insensitive=options.case_insensitive)
    if options.negative_ratio > 0 and options.vocabulary and uniform_draw(seed, epoch, index, "negative") < options.negative_ratio:
        present = {norm(c) for c in cats} if options.case_insensitive else set(cats)
        absent = sorted(
            {v for v in options.vocabulary if (norm(v) if options.case_insensitive else v) not in present}
        )
        if absent:
            return Query(absent[choice_index(len(absent), seed, epoch, index, "negative-cat")], negative=True)
    if not cats:
        return Query(None)
    return Query(cats[choice_index(len(cats), seed, epoch, index, "category")])


__all__ = [
    "EVALUATION_NONE_ACTIONS",
    "EVALUATION_PLACEHOLDER_PART_NAMES",
    "EVALUATION_PSEUDO",
    "PseudoDefinition",
    "PseudoPolicy",
    "Query",
    "QueryOptions",
    "STAGE_POLICIES",
    "TRAINING_NONE_ACTIONS",
    "TRAINING_PLACEHOLDER_PART_NAMES",
    "TRAINING_PSEUDO",
    "UNION_PSEUDO",
    "UNKNOWN_NAMES",
    "box_bins",
    "build_target",
    "categories",
    "choice_index",
    "choose_query",
    "norm",
    "point_bins",
    "random_name",
    "sanitize_object",
    "uniform_draw",
    "unknown_name",
]

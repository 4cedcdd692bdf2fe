"""Procedural synthetic scenes in exactly the SceneParser-Bench record format.

No real data can be downloaded here, so this generator is what tests, benchmarks and the small
shipped model stand on. Each image holds 1-5 household objects drawn with PIL on a muted,
textured background. Every class has a fixed part structure, a distinct shape and a colour cue,
and fixed affordances, so a small model can learn the scene -> object -> part -> affordance
hierarchy. The records exercise every feature of the real schema (docs/reference.md,
*training-data*):

* ``phrase`` / ``object_bbox`` / ``parts`` (``part_name``, ``part_bbox``, ``is_pseudo_part``,
  ``affordances`` with ``action``, ``affordance_bbox``, ``sampled_points``, ``mask_path``);
* ``__placeholder_part__`` parts (object box, ``is_pseudo_part: true``) that carry object-level
  affordances (classes ``book`` and ``ball``);
* ``__none__`` actions under real parts (``drawer`` front, ``pan`` body) with a point and no box;
* a real-named part flagged ``is_pseudo_part`` (the ``lamp`` switch, "aff_interaction_init" style);
* parts with no affordances (``lamp`` base/shade, ``laptop`` screen) and an object class with no
  parts at all (``plate``);
* several ``sampled_points`` per affordance (the first is the centre of the region, which is the
  training target), and binary PNG masks (``mask_path``) for most affordance regions.

Boxes are integer ``[x0, y0, x1, y1]`` pixel boxes that are exactly the extents of the drawn
pixels (inclusive, as PIL draws them). Image and mask paths in the JSONL are relative to the
output directory, so ``--image-root DIR`` (or running from ``DIR``) resolves them.

Generation is deterministic for ``(seed, image index)``: each image has its own random stream,
so the output does not depend on the number of worker processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import multiprocessing as mp
import os
import random
import re
from pathlib import Path
from typing import Callable, Iterable, Sequence

from PIL import Image, ImageDraw

from sceneparser.data.workers import die_with_parent
from sceneparser.errors import InputError
from sceneparser.io import atomic_open

# --------------------------------------------------------------------------------------------
# Class catalogue
# --------------------------------------------------------------------------------------------

PLACEHOLDER_PART = "__placeholder_part__"
NONE_ACTION = "__none__"


@dataclasses.dataclass(frozen=True)
class ClassInfo:
    """What a class looks like in the annotations (the drawing lives in ``_DRAWERS``)."""

    name: str
    parts: tuple[str, ...]  # part names in annotation order ([] for object-only classes)
    actions: dict[str, tuple[str, ...]]  # part name -> actions in annotation order
    aspect: float  # width / height of the object box
    scale: float  # relative size


CLASSES: dict[str, ClassInfo] = {
    c.name: c
    for c in (
        ClassInfo("mug", ("body", "handle"), {"body": ("pour",), "handle": ("grasp",)}, 1.0, 0.8),
        ClassInfo("drawer", ("front", "handle"), {"front": (NONE_ACTION,), "handle": ("pull",)}, 1.6, 1.15),
        ClassInfo("door", ("panel", "knob"), {"panel": ("push",), "knob": ("twist",)}, 0.5, 1.6),
        ClassInfo("bottle", ("body", "cap"), {"body": ("grasp",), "cap": ("twist",)}, 0.38, 1.1),
        ClassInfo("knife", ("blade", "handle"), {"blade": ("cut",), "handle": ("grasp",)}, 3.2, 1.1),
        ClassInfo("lamp", ("shade", "base", "switch"), {"shade": (), "base": (), "switch": ("press",)}, 0.62, 1.2),
        ClassInfo("pan", ("body", "handle"), {"body": (NONE_ACTION,), "handle": ("grasp",)}, 2.0, 1.15),
        ClassInfo("laptop", ("screen", "keyboard"), {"screen": (), "keyboard": ("type",)}, 1.35, 1.1),
        ClassInfo("book", (PLACEHOLDER_PART,), {PLACEHOLDER_PART: ("open",)}, 0.75, 0.85),
        ClassInfo("ball", (PLACEHOLDER_PART,), {PLACEHOLDER_PART: ("grasp",)}, 1.0, 0.6),
        ClassInfo("plate", (), {}, 1.5, 0.85),
    )
}

CLASS_NAMES: tuple[str, ...] = tuple(CLASSES)

# --------------------------------------------------------------------------------------------
# Drawing primitives in object-relative coordinates
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Frame:
    """Maps object-relative fractions (0..1) to integer pixels of the object box.

    ``w`` x ``h`` is the object's own (unrotated) size in pixels. ``mirror`` flips it left-right,
    ``flip`` upside down, and ``transpose`` swaps its axes (the object fraction ``fx`` runs down
    the image), so its pixel box is ``h`` wide and ``w`` tall; together they give every rotation
    by a multiple of 90 degrees and every mirror image. The default frame draws exactly as before.
    """

    x0: int
    y0: int
    w: int
    h: int
    mirror: bool = False
    flip: bool = False
    transpose: bool = False

    def x(self, f: float) -> int:
        if self.mirror:
            f = 1.0 - f
        return self.x0 + int(round(f * (self.w - 1)))

    def y(self, f: float) -> int:
        if self.flip:
            f = 1.0 - f
        return self.y0 + int(round(f * (self.h - 1)))

    def rect(self, fx0: float, fy0: float, fx1: float, fy1: float) -> list[int]:
        if self.transpose:
            (a, b), (c, d) = self.pt(fx0, fy0), self.pt(fx1, fy1)
            return [min(a, c), min(b, d), max(a, c), max(b, d)]
        a, b = self.x(fx0), self.x(fx1)
        if not self.flip:
            return [min(a, b), self.y(fy0), max(a, b), self.y(fy1)]
        c, d = self.y(fy0), self.y(fy1)
        return [min(a, b), min(c, d), max(a, b), max(c, d)]

    def pt(self, fx: float, fy: float) -> tuple[int, int]:
        if self.transpose:  # object x runs down the image, object y across it
            fx = 1.0 - fx if self.mirror else fx
            fy = 1.0 - fy if self.flip else fy
            return self.x0 + int(round(fy * (self.h - 1))), self.y0 + int(round(fx * (self.w - 1)))
        return self.x(fx), self.y(fy)


@dataclasses.dataclass
class _Aff:
    action: str
    region: list[int] | None  # pixel box of the affordance region (None: point only)
    shape: str = "rect"  # "rect" | "ellipse": mask shape inside the region
    point: tuple[int, int] | None = None  # used when region is None


@dataclasses.dataclass
class _Part:
    name: str
    box: list[int]
    affs: list[_Aff]
    pseudo: bool = False


def _union(boxes: Iterable[Sequence[int]]) -> list[int]:
    bs = list(boxes)
    return [min(b[0] for b in bs), min(b[1] for b in bs), max(b[2] for b in bs), max(b[3] for b in bs)]


def _jitter(rng: random.Random, rgb: tuple[int, int, int], amount: int = 22) -> tuple[int, int, int]:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in rgb)  # type: ignore[return-value]


def _shade(rgb: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    return tuple(max(0, min(255, int(c * f))) for c in rgb)  # type: ignore[return-value]


def _poly_box(pts: Sequence[tuple[int, int]]) -> list[int]:
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    return [min(xs), min(ys), max(xs), max(ys)]


_Drawer = Callable[[ImageDraw.ImageDraw, _Frame, random.Random], list[_Part]]


def _draw_mug(d: ImageDraw.ImageDraw, f: _Frame, rng: random.Random) -> list[_Part]:
    col = _jitter(rng, (200, 40, 45))
    body = f.rect(0.0, 0.0, 0.72, 1.0)
    handle = f.rect(0.62, 0.22, 1.0, 0.72)
    lw = max(2, int(0.11 * f.w))
    d.ellipse(handle, outline=_shade(col, 0.75), width=lw)
    d.rounded_rectangle(body, radius=max(1, f.w // 12), fill=col)
    d.rectangle(f.rect(0.0, 0.0, 0.72, 0.08), fill=_shade(col, 0.6))  # rim
    grip = f.rect(0.88, 0.3, 1.0, 0.64)
    pour = f.rect(0.08, 0.0, 0.64, 0.16)
    return [
        _Part("body", body, [_Aff("pour", pour)]),
        _Part("handle", handle, [_Aff("grasp", grip)]),
    ]


def _draw_drawer(d: ImageDraw.ImageDraw, f: _Frame, rng: random.Random) -> list[_Part]:
    col = _jitter(rng, (170, 105, 50))
    front = f.rect(0.0, 0.0, 1.0, 1.0)
    d.rectangle(front, fill=col, outline=_shade(col, 0.55), width=max(1, f.h // 14))
    handle = f.rect(0.33, 0.4, 0.67, 0.56)
    d.rounded_rectangle(handle, radius=max(1, f.h // 20), fill=(60, 60, 66))
    return [
        _Part("front", front, [_Aff(NONE_ACTION, None, point=f.pt(0.5, 0.8))]),
        _Part("handle", handle, [_Aff("pull", handle)]),
    ]


def _draw_door(d: ImageDraw.ImageDraw, f: _Frame, rng: random.Random) -> list[_Part]:
    col = _jitter(rng, (150, 185, 215))
    panel = f.rect(0.0, 0.0, 1.0, 1.0)
    d.rectangle(panel, fill=col, outline=_shade(col, 0.6), width=max(1, f.w // 20))
    inset = _shade(col, 0.85)
    d.rectangle(f.rect(0.16, 0.07, 0.84, 0.42), outline=inset, width=max(1, f.w // 25))
    d.rectangle(f.rect(0.16, 0.6, 0.84, 0.93), outline=inset, width=max(1, f.w // 25))
    knob = f.rect(0.72, 0.48, 0.9, 0.57)
    d.ellipse(knob, fill=_jitter(rng, (225, 180, 40), 12), outline=(120, 90, 20))
    push = f.rect(0.22, 0.12, 0.62, 0.38)
    return [
        _Part("panel", panel, [_Aff("push", push)]),
        _Part("knob", knob, [_Aff("twist", knob, "ellipse")]),
    ]


def _draw_bottle(d: ImageDraw.ImageDraw, f: _Frame, rng: random.Random) -> list[_Part]:
    col = _jitter(rng, (40, 150, 70))
    shoulder = f.rect(0.0, 0.3, 1.0, 1.0)
    neck = f.rect(0.28, 0.12, 0.72, 0.34)
    d.rectangle(neck, fill=col)
    d.rounded_rectangle(shoulder, radius=max(1, f.w // 5), fill=col)
    d.rectangle(f.rect(0.1, 0.55, 0.9, 0.8), fill=(235, 235, 225))  # label
    body = _union([shoulder, neck])
    cap = f.rect(0.25, 0.0, 0.75, 0.12)
    d.rectangle(cap, fill=_jitter(rng, (30, 60, 200), 15))
    grip = f.rect(0.15, 0.4, 0.85, 0.9)
    return [
        _Part("body", body, [_Aff("grasp", grip)]),
        _Part("cap", cap, [_Aff("twist", cap)]),
    ]


def _draw_knife(d: ImageDraw.ImageDraw, f: _Frame, rng: random.Random) -> list[_Part]:
    handle = f.rect(0.0, 0.3, 0.36, 1.0)
    d.rounded_rectangle(handle, radius=max(1, f.h // 6), fill=_jitter(rng, (35, 30, 30), 10))
    blade_pts = [f.pt(0.36, 0.0), f.pt(0.82, 0.0), f.pt(1.0, 0.45), f.pt(0.36, 0.72)]
    d.polygon(blade_pts, fill=_jitter(rng, (200, 205, 212), 10), outline=(130, 130, 140))
    blade = _poly_box(blade_pts)
    cut = f.rect(0.45, 0.1, 0.75, 0.5)
    grip = f.rect(0.05, 0.45, 0.3, 0.85)
    return [
        _Part("blade", blade, [_Aff("cut", cut)]),
        _Part("handle", handle, [_Aff("grasp", grip)]),
    ]


def _draw_lamp(d: ImageDraw.ImageDraw, f: _Frame, rng: random.Random) -> list[_Part]:
    col = _jitter(rng, (245, 215, 90), 12)
    shade_pts = [f.pt(0.2, 0.0), f.pt(0.8, 0.0), f.pt(1.0, 0.42), f.pt(0.0, 0.42)]
    d.polygon(shade_pts, fill=col, outline=_shade(col, 0.7))
    d.rectangle(f.rect(0.46, 0.42, 0.54, 0.88), fill=(90, 90, 95))  # stem
    base = f.rect(0.15, 0.88, 0.85, 1.0)
    d.rectangle(base, fill=(70, 70, 78))
    switch = f.rect(0.56, 0.6, 0.72, 0.68)
    d.rectangle(switch, fill=(215, 30, 30))
    return [
        _Part("shade", _poly_box(shade_pts), []),
        _Part("base", base, []),
        _Part("switch", switch, [_Aff("press", switch)], pseudo=True),
    ]


def _draw_pan(d: ImageDraw.ImageDraw, f: _Frame, rng: random.Random) -> list[_Part]:
    col = _jitter(rng, (55, 58, 62), 10)
    handle = f.rect(0.48, 0.42, 1.0, 0.58)
    d.rounded_rectangle(handle, radius=max(1, f.h // 14), fill=_jitter(rng, (120, 75, 40), 10))
    body = f.rect(0.0, 0.0, 0.5, 1.0)
    d.ellipse(body, fill=col, outline=(25, 25, 25), width=max(1, f.h // 16))
    d.ellipse(f.rect(0.1, 0.2, 0.4, 0.8), fill=_shade(col, 1.35))
    grip = f.rect(0.7, 0.44, 0.98, 0.56)
    return [
        _Part("body", body, [_Aff(NONE_ACTION, None, point=f.pt(0.25, 0.5))]),
        _Part("handle", handle, [_Aff("grasp", grip)]),
    ]


def _draw_laptop(d: ImageDraw.ImageDraw, f: _Frame, rng: random.Random) -> list[_Part]:
    screen = f.rect(0.08, 0.0, 0.92, 0.58)
    d.rectangle(screen, fill=(30, 30, 35))
    d.rectangle(f.rect(0.13, 0.06, 0.87, 0.52), fill=_jitter(rng, (90, 170, 235), 15))
    kb_pts = [f.pt(0.08, 0.6), f.pt(0.92, 0.6), f.pt(1.0, 1.0), f.pt(0.0, 1.0)]
    d.polygon(kb_pts, fill=(190, 192, 198), outline=(120, 120, 128))
    for fy in (0.7, 0.8, 0.9):
        d.line([f.pt(0.12, fy), f.pt(0.88, fy)], fill=(110, 110, 118), width=1)
    keys = f.rect(0.2, 0.66, 0.8, 0.92)
    return [
        _Part("screen", screen, []),
        _Part("keyboard", _poly_box(kb_pts), [_Aff("type", keys)]),
    ]


def _draw_book(d: ImageDraw.ImageDraw, f: _Frame, rng: random.Random) -> list[_Part]:
    col = _jitter(rng, (140, 40, 150))
    box = f.rect(0.0, 0.0, 1.0, 1.0)
    d.rectangle(box, fill=col)
    d.rectangle(f.rect(0.0, 0.0, 0.13, 1.0), fill=_shade(col, 0.55))  # spine
    d.rectangle(f.rect(0.92, 0.03, 1.0, 0.97), fill=(240, 236, 220))  # pages
    d.rectangle(f.rect(0.3, 0.15, 0.8, 0.3), fill=(235, 200, 60))  # title
    cover = f.rect(0.45, 0.4, 0.9, 0.9)
    return [_Part(PLACEHOLDER_PART, box, [_Aff("open", cover)], pseudo=True)]


def _draw_ball(d: ImageDraw.ImageDraw, f: _Frame, rng: random.Random) -> list[_Part]:
    col = _jitter(rng, (245, 130, 20), 12)
    box = f.rect(0.0, 0.0, 1.0, 1.0)
    d.ellipse(box, fill=col, outline=_shade(col, 0.5), width=max(1, f.w // 20))
    d.arc(f.rect(-0.5, 0.05, 0.55, 0.95), -50, 50, fill=(30, 30, 30), width=max(1, f.w // 25))
    d.arc(f.rect(0.45, 0.05, 1.5, 0.95), 130, 230, fill=(30, 30, 30), width=max(1, f.w // 25))
    grip = f.rect(0.25, 0.25, 0.75, 0.75)
    return [_Part(PLACEHOLDER_PART, box, [_Aff("grasp", grip, "ellipse")], pseudo=True)]


def _draw_plate(d: ImageDraw.ImageDraw, f: _Frame, rng: random.Random) -> list[_Part]:
    box = f.rect(0.0, 0.0, 1.0, 1.0)
    d.ellipse(box, fill=_jitter(rng, (245, 245, 240), 8), outline=(170, 170, 165), width=max(1, f.h // 18))
    d.ellipse(f.rect(0.2, 0.2, 0.8, 0.8), outline=(200, 200, 195), width=max(1, f.h // 30))
    return []


_DRAWERS: dict[str, _Drawer] = {
    "mug": _draw_mug,
    "drawer": _draw_drawer,
    "door": _draw_door,
    "bottle": _draw_bottle,
    "knife": _draw_knife,
    "lamp": _draw_lamp,
    "pan": _draw_pan,
    "laptop": _draw_laptop,
    "book": _draw_book,
    "ball": _draw_ball,
    "plate": _draw_plate,
}
_MIRRORABLE = {"mug", "door", "knife", "pan", "lamp"}
# classes whose part layout changes under rotation (ball and plate look the same every way up;
# the ball's seam arcs would also leave its box when transposed)
_ROTATABLE = frozenset({"mug", "drawer", "door", "bottle", "knife", "lamp", "pan", "laptop", "book"})


@dataclasses.dataclass(frozen=True)
class SceneOptions:
    """Opt-in scene variety (issue 18). The defaults draw exactly the scenes of earlier releases.

    * ``multi_instance_rate``: share of images that hold 2-4 instances of one class (plus the
      usual mix of others; every object of such an image is drawn at 3/4 size so they fit);
    * ``rotate_rate``: share of objects of the classes whose parts move with the object's pose
      (everything but ``ball`` and ``plate``) drawn in one of the 7 other orientations of the
      square's symmetry group (90-degree rotations and mirror images), so where a handle or a
      cap is depends on the image, not on the class.

    The extra draws come from their own random stream, so setting an option changes nothing
    the images it applies to (the other images stay as they were drawn).
    """

    multi_instance_rate: float = 0.0
    rotate_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("multi_instance_rate", "rotate_rate"):
            v = getattr(self, name)
            if not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v!r}")

    @property
    def is_default(self) -> bool:
        return self.multi_instance_rate == 0.0 and self.rotate_rate == 0.0

# --------------------------------------------------------------------------------------------
# Scene generation
# --------------------------------------------------------------------------------------------

_NUM_OBJECT_WEIGHTS = (0.2, 0.3, 0.25, 0.15, 0.1)  # 1..5 objects per image
_MAX_OVERLAP = 0.3  # intersection / area of the smaller box, for every pair


@dataclasses.dataclass
class SynthSummary:
    """What :func:`generate_dataset` wrote."""

    out_dir: Path
    train_path: Path
    val_path: Path
    num_train: int
    num_val: int
    num_objects: int
    num_masks: int
    image_size: tuple[int, int]
    seed: int
    class_counts: dict[str, int]
    removed_files: int = 0  # images/masks of an earlier, larger run in out_dir that this run removed

    @property
    def num_images(self) -> int:
        return self.num_train + self.num_val

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for k in ("out_dir", "train_path", "val_path"):
            d[k] = str(d[k])
        d["image_size"] = list(self.image_size)
        return d


def _background(rng: random.Random, w: int, h: int) -> Image.Image:
    """A muted, low-frequency texture: a wall/floor split plus smooth noise."""
    gw, gh = 8, 6
    base = [rng.randint(95, 175) for _ in range(3)]
    grey = sum(base) / 3
    base = [int(grey + (c - grey) * 0.35) for c in base]  # desaturate
    floor_row = rng.uniform(0.45, 0.8) * gh
    floor_tint = rng.randint(-35, 25)
    data = bytearray()
    for gy in range(gh):
        tint = floor_tint if gy >= floor_row else 0
        for _ in range(gw):
            n = rng.randint(-14, 14)
            data += bytes(max(0, min(255, c + tint + n)) for c in base)
    small = Image.frombytes("RGB", (gw, gh), bytes(data))
    # smooth at quarter resolution, then upscale: a soft texture at a fraction of the cost
    mid = small.resize((max(1, w // 4), max(1, h // 4)), Image.BILINEAR)
    return mid.resize((w, h), Image.NEAREST)


def _overlap_ok(box: Sequence[int], others: Sequence[Sequence[int]]) -> bool:
    a = (box[2] - box[0] + 1) * (box[3] - box[1] + 1)
    for o in others:
        iw = min(box[2], o[2]) - max(box[0], o[0]) + 1
        ih = min(box[3], o[3]) - max(box[1], o[1]) + 1
        if iw <= 0 or ih <= 0:
            continue
        b = (o[2] - o[0] + 1) * (o[3] - o[1] + 1)
        if iw * ih > _MAX_OVERLAP * min(a, b):
            return False
    return True


def _sample_points(rng: random.Random, region: Sequence[int], n: int) -> list[list[int]]:
    """The region centre first (the training target), then points in its inner half."""
    x0, y0, x1, y1 = region
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    pts = [[cx, cy]]
    qx, qy = (x1 - x0) / 4.0, (y1 - y0) / 4.0
    for _ in range(n - 1):
        pts.append([int(round(cx + rng.uniform(-qx, qx))), int(round(cy + rng.uniform(-qy, qy)))])
    return pts


def _mask_png(size: tuple[int, int], region: Sequence[int], shape: str) -> bytes:
    m = Image.new("1", size, 0)
    d = ImageDraw.Draw(m)
    if shape == "ellipse":
        d.ellipse(list(region), fill=1)
    else:
        d.rectangle(list(region), fill=1)
    buf = io.BytesIO()
    m.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def render_scene(
    seed: int, index: int, image_size: tuple[int, int] = (640, 480), mask_prefix: str = "masks",
    options: SceneOptions | None = None,
) -> tuple[Image.Image, list[dict], dict[str, bytes]]:
    """Draw image ``index`` of the dataset with ``seed``.

    Returns ``(image, objects, masks)``: ``objects`` is the record's ``objects`` list and
    ``masks`` maps each relative ``mask_path`` used there to its PNG bytes. ``options``
    (:class:`SceneOptions`) adds multi-instance scenes and rotated objects; without it (or with
    the defaults) the scene is exactly that of earlier releases.
    """
    rng = random.Random(f"sceneparser-synth:{seed}:{index}")
    opts = options if options is not None and not options.is_default else None
    # the options' own stream: the default scenes never see a draw from it
    extra = random.Random(f"sceneparser-synth-options:{seed}:{index}") if opts is not None else None
    w, h = image_size
    image = _background(rng, w, h)
    draw = ImageDraw.Draw(image)
    n_obj = rng.choices(range(1, 6), weights=_NUM_OBJECT_WEIGHTS)[0]
    repeated: list[str] = []  # the class names of a multi-instance scene's first objects
    size_factor = 1.0
    if extra is not None and opts.multi_instance_rate > 0 and extra.random() < opts.multi_instance_rate:
        repeated = [extra.choice(CLASS_NAMES)] * extra.randint(2, 4)
        n_obj = max(n_obj, len(repeated))
        size_factor = 0.75
    placed: list[list[int]] = []
    objects: list[dict] = []
    masks: dict[str, bytes] = {}
    short = min(w, h)
    for slot in range(n_obj):
        name = repeated[slot] if slot < len(repeated) else rng.choice(CLASS_NAMES)
        info = CLASSES[name]
        transpose = flip = False
        mirror_override = None
        if extra is not None and opts.rotate_rate > 0 and name in _ROTATABLE and extra.random() < opts.rotate_rate:
            pose = extra.randint(1, 7)  # 3 bits (mirror, flip, transpose), never the upright pose 0
            mirror_override, flip, transpose = bool(pose & 1), bool(pose & 2), bool(pose & 4)
        for _attempt in range(25):
            major = rng.uniform(0.26, 0.46) * short * info.scale * size_factor
            if info.aspect >= 1:
                ow, oh = major, major / info.aspect
            else:
                ow, oh = major * info.aspect, major
            pw, ph = (oh, ow) if transpose else (ow, oh)  # the pixel box (transposed: axes swapped)
            pw = max(8, min(int(pw), w - 2))
            ph = max(8, min(int(ph), h - 2))
            x0 = rng.randint(0, w - pw)
            y0 = rng.randint(0, h - ph)
            cand = [x0, y0, x0 + pw - 1, y0 + ph - 1]
            if _overlap_ok(cand, placed):
                break
        else:
            continue
        placed.append(cand)
        mirror = name in _MIRRORABLE and rng.random() < 0.5
        if mirror_override is not None:
            mirror = mirror_override
        ow, oh = (ph, pw) if transpose else (pw, ph)
        frame = _Frame(x0, y0, ow, oh, mirror=mirror, flip=flip, transpose=transpose)
        parts = _DRAWERS[name](draw, frame, rng)
        obj_box = _union([p.box for p in parts]) if parts else frame.rect(0.0, 0.0, 1.0, 1.0)
        obj_idx = len(objects)
        part_records = []
        for pi, part in enumerate(parts):
            aff_records = []
            for ai, aff in enumerate(part.affs):
                if aff.region is None:
                    pt = aff.point or ((part.box[0] + part.box[2]) // 2, (part.box[1] + part.box[3]) // 2)
                    aff_records.append(
                        {"action": aff.action, "affordance_bbox": None,
                         "sampled_points": [[pt[0], pt[1]]], "mask_path": None}
                    )
                    continue
                mask_path = None
                if rng.random() < 0.8:
                    mask_path = f"{mask_prefix}/{index:06d}_{obj_idx}_{pi}_{ai}.png"
                    masks[mask_path] = _mask_png((w, h), aff.region, aff.shape)
                aff_records.append(
                    {"action": aff.action, "affordance_bbox": list(aff.region),
                     "sampled_points": _sample_points(rng, aff.region, rng.randint(2, 4)),
                     "mask_path": mask_path}
                )
            part_records.append(
                {"part_name": part.name, "part_bbox": list(part.box), "is_pseudo_part": part.pseudo,
                 "affordances": aff_records}
            )
        objects.append({"phrase": name, "object_bbox": obj_box, "parts": part_records})
    return image, objects, masks


def _render_and_encode(
    job: tuple[int, int, tuple[int, int], int, SceneOptions | None],
) -> tuple[bytes, list[dict], dict[str, bytes]]:
    seed, index, size, quality, options = job
    image, objects, masks = render_scene(seed, index, size, options=options)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue(), objects, masks


# what generate_dataset writes under images/ and masks/ (and nothing else does)
_OWN_FILE = {"images": re.compile(r"\d{6}\.jpg"), "masks": re.compile(r"\d{6}_\d+_\d+_\d+\.png")}


def _existing_outputs(out: Path) -> set[Path]:
    """The images and masks of an earlier run in ``out``; raises :class:`InputError` when
    ``images/`` or ``masks/`` holds anything this generator does not write (someone else's data,
    which a run must neither mix with its own nor delete)."""
    found: set[Path] = set()
    for sub, pattern in _OWN_FILE.items():
        folder = out / sub
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            if not (pattern.fullmatch(p.name) and p.is_file()):
                raise InputError(
                    f"{folder} holds {p.name!r}, which sceneparser synth does not write: choose an empty or "
                    "new output folder (a folder of an earlier synth run is fine: its files are replaced)"
                )
            found.add(p)
    return found


def _write_plain(path: Path, data: bytes) -> None:
    # images and masks are plain writes: the dataset only becomes visible when the JSONL files
    # are renamed into place at the end (sceneparser.io), so a half-written image is never referenced
    with open(path, "wb") as fh:
        fh.write(data)


def generate_dataset(
    out_dir: str | os.PathLike,
    num_images: int,
    seed: int,
    image_size: tuple[int, int] = (640, 480),
    val_fraction: float = 0.1,
    *,
    jpeg_quality: int = 90,
    workers: int = 1,
    progress: bool = False,
    options: SceneOptions | None = None,
) -> SynthSummary:
    """Write ``num_images`` synthetic scenes to ``out_dir``.

    Layout: ``out_dir/train.jsonl``, ``out_dir/val.jsonl`` (paths relative to ``out_dir``),
    ``out_dir/images/NNNNNN.jpg`` and ``out_dir/masks/*.png``. The last
    ``round(num_images * val_fraction)`` images form the validation split. The result is
    identical for the same arguments whatever ``workers`` is.

    ``out_dir`` may hold an earlier synth run: its images and masks that this run does not write
    are removed once the new JSONL files are in place, so the folder is exactly this dataset.
    ``images/`` or ``masks/`` holding any other file is refused (:class:`InputError`) before
    anything is written. Other files in ``out_dir`` are left alone. ``options``
    (:class:`SceneOptions`) opts into multi-instance scenes and rotated objects; without it the
    dataset is byte-identical to that of earlier releases.
    """
    if num_images < 0:
        raise ValueError("num_images must be >= 0")
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError("val_fraction must be in [0, 1]")
    w, h = int(image_size[0]), int(image_size[1])
    if w < 32 or h < 32:
        raise ValueError(f"image_size must be at least 32x32, got {w}x{h}")
    out = Path(out_dir)
    earlier = _existing_outputs(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    num_val = int(round(num_images * val_fraction))
    num_train = num_images - num_val
    jobs = [(seed, i, (w, h), jpeg_quality, options) for i in range(num_images)]

    counts = {n: 0 for n in CLASS_NAMES}
    num_objects = num_masks = 0
    paths = {"train": out / "train.jsonl", "val": out / "val.jsonl"}

    pool = None
    written: set[Path] = set()
    # both JSONL files are renamed into place (sceneparser.io) only after every image is written;
    # an exception leaves the previous files, if any, untouched
    with contextlib.ExitStack() as jsonl_files:
        fhs = {k: jsonl_files.enter_context(atomic_open(p, "w", fsync=False)) for k, p in paths.items()}
        try:
            if workers > 1 and num_images > 1:
                # workers end with this process even when it is killed (sceneparser.data.workers)
                pool = mp.get_context("spawn" if os.name == "nt" else "fork").Pool(
                    workers, initializer=die_with_parent, initargs=(os.getpid(),))
                results = pool.imap(_render_and_encode, jobs, chunksize=8)
            else:
                results = map(_render_and_encode, jobs)
            if progress:
                from tqdm import tqdm

                results = tqdm(results, total=num_images, desc="synth", unit="img")
            for i, (jpeg, objects, masks) in enumerate(results):
                rel = f"images/{i:06d}.jpg"
                _write_plain(out / rel, jpeg)
                written.add(out / rel)
                for mpath, data in masks.items():
                    _write_plain(out / mpath, data)
                    written.add(out / mpath)
                num_masks += len(masks)
                num_objects += len(objects)
                for o in objects:
                    counts[o["phrase"]] += 1
                split = "train" if i < num_train else "val"
                fhs[split].write(json.dumps({"image_path": rel, "objects": objects}, ensure_ascii=False) + "\n")
        finally:
            if pool is not None:
                pool.close()
                pool.join()
    # the new JSONL files are in place: what the earlier run wrote and this one did not is no
    # longer referenced by anything
    stale = earlier - written
    for p in stale:
        p.unlink(missing_ok=True)
    return SynthSummary(
        out_dir=out,
        train_path=paths["train"],
        val_path=paths["val"],
        num_train=num_train,
        num_val=num_val,
        num_objects=num_objects,
        num_masks=num_masks,
        image_size=(w, h),
        seed=seed,
        class_counts=counts,
        removed_files=len(stale),
    )


__all__ = [
    "CLASSES",
    "CLASS_NAMES",
    "ClassInfo",
    "NONE_ACTION",
    "PLACEHOLDER_PART",
    "SceneOptions",
    "SynthSummary",
    "generate_dataset",
    "render_scene",
]

"""Pictures and terminal trees of a hierarchy (PIL only).

* :func:`draw_hierarchy` draws object boxes (thick), part boxes (thin) and affordance points
  (discs with a white and a dark ring, visible on any background) on a copy of the image, with
  a label for each, plus a legend strip under the image grouped by kind (objects, parts,
  actions; each name once).
* Colours come from three hand-picked palettes of clearly different hues, one per kind, so an
  object never shares a colour with a part or an action. A name's colour is a stable hash
  (``zlib.crc32``, not Python's per-process ``hash``) into its kind's palette: the same name has
  the same colour in every picture. Only when two names of one kind fall on the same colour in
  the same picture does the later one (alphabetically) take the next free colour.
* Labels are placed so that they cover neither each other nor any affordance point: each label
  tries a few positions next to what it names and, when all are taken, the nearest free spot
  around it, joined to it by a leader line (:func:`layout_labels`).
* Small images are upscaled and line widths / font sizes follow the image size, so labels stay
  legible from thumbnails to 4K frames.
* :func:`format_tree` renders the hierarchy as an indented tree for the terminal.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from sceneparser.hierarchy import Hierarchy
from sceneparser.images import open_image, to_rgb

#: Images whose longer side is below this are upscaled before drawing.
MIN_CANVAS_SIDE = 480

KINDS = ("object", "part", "action")
#: one palette per kind; hues differ clearly inside a palette, and no colour is in two palettes
PALETTES: dict[str, tuple[tuple[int, int, int], ...]] = {
    # the same eight hue families (red, orange, yellow, green, cyan, blue, violet, pink) in three
    # lightnesses: dark for objects (thick boxes), light for parts (thin boxes), vivid for actions
    # (point discs). Any two colours differ by more than 60 in RGB distance.
    "object": ((170, 0, 30), (190, 85, 0), (140, 125, 0), (0, 120, 40), (0, 110, 120), (30, 50, 170),
               (110, 20, 150), (170, 0, 120)),
    "part": ((255, 130, 110), (255, 190, 80), (255, 250, 150), (160, 240, 160), (150, 235, 245),
             (140, 160, 255), (210, 170, 255), (255, 160, 200)),
    "action": ((255, 30, 60), (255, 140, 0), (255, 230, 0), (0, 220, 80), (0, 200, 230), (40, 110, 255),
               (170, 60, 255), (255, 70, 200)),
}


def _key(name: str | None) -> str:
    return (name or "").strip().lower()


def _slot(name: str | None, kind: str) -> int:
    return zlib.crc32(_key(name).encode("utf-8")) % len(PALETTES[kind])


def color_for(name: str | None, kind: str = "object") -> tuple[int, int, int]:
    """The colour of ``name`` as a ``kind`` (object, part or action); stable across processes."""
    if kind not in PALETTES:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return PALETTES[kind][_slot(name, kind)]


def picture_colors(names: dict[str, list]) -> dict[tuple[str, str], tuple[int, int, int]]:
    """``{(kind, key): colour}`` for the names of one picture (``{kind: [names]}``): each name its
    :func:`color_for` colour, except that a name whose colour an alphabetically earlier name of
    the same kind already has takes the next free one (while the palette lasts)."""
    out = {}
    for kind, raw in names.items():
        palette = PALETTES[kind]
        used: set = set()
        for key in sorted({_key(n) for n in raw}):
            slot = _slot(key, kind)
            for step in range(len(palette)):
                if (slot + step) % len(palette) not in used:
                    slot = (slot + step) % len(palette)
                    break
            used.add(slot)
            out[(kind, key)] = palette[slot]
    return out


def _text_color(bg: tuple[int, int, int]) -> tuple[int, int, int]:
    luminance = 0.299 * bg[0] + 0.587 * bg[1] + 0.114 * bg[2]
    return (0, 0, 0) if luminance > 150 else (255, 255, 255)


def _font(size: int, font_path: str | None = None):

    if font_path:
        try:
            return ImageFont.truetype(font_path, size)
        except OSError:
            pass
    for candidate in ("DejaVuSans.ttf", "Arial.ttf", "LiberationSans-Regular.ttf"):
        try:
            return ImageFont.truetype(candidate, size)
        except OSError:
            continue
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _text_size(draw, text: str, font) -> tuple[int, int]:
    """Width of ``text`` and the font's line height (the same for every text, so labels line up)."""
    x0, _, x1, _ = draw.textbbox((0, 0), text, font=font)
    top, bottom = _line_metrics(draw, font)
    return x1 - x0, bottom - top


def _line_metrics(draw, font) -> tuple[int, int]:
    """Top and bottom of the ink of a line of this font (ascender to descender)."""
    _, top, _, bottom = draw.textbbox((0, 0), "Ag", font=font)
    return top, bottom


def _valid_box(box) -> bool:

    return box is not None and len(box) == 4 and all(isinstance(v, (int, float)) and math.isfinite(v) for v in box)


# ---------------------------------------------------------------------------------- label layout
@dataclass
class Label:
    """A label to place: its text size (w, h), the candidate top-left corners in order of
    preference, and the anchor a leader line points to if it has to move elsewhere."""

    text: str
    color: tuple
    w: float
    h: float
    candidates: list
    anchor: tuple
    box: tuple | None = None  # placed (x0, y0, x1, y1)
    leader: bool = False


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def layout_labels(labels: list, obstacles: list, bounds: tuple, step: float | None = None) -> list:
    """Place ``labels`` (in order: earlier ones get their preferred spots) inside ``bounds`` (w, h)
    so that no two overlap and none covers an obstacle box (the affordance points).

    Each label takes its first free candidate; when none is free, the nearest free spot on rings
    of growing radius around its first candidate, with ``leader=True``. Only if the whole image
    is full does a label keep its first candidate. Returns ``labels`` with ``box`` set.
    """
    bw, bh = bounds
    placed: list = list(obstacles)

    def fits(x, y, lab):
        if x < 0 or y < 0 or x + lab.w > bw or y + lab.h > bh:
            return None
        r = (x, y, x + lab.w, y + lab.h)
        return None if any(_overlaps(r, o) for o in placed) else r

    for lab in labels:
        box = None
        for x, y in lab.candidates:
            box = fits(x, y, lab)
            if box:
                break
        if box is None:
            x0, y0 = lab.candidates[0] if lab.candidates else lab.anchor
            st = step or max(2.0, lab.h / 2)
            best = None
            for ring in range(1, int(max(bw, bh) / st) + 1):
                r = ring * st
                n = max(8, int(2 * math.pi * r / st))
                for k in range(n):
                    t = 2 * math.pi * k / n
                    cand = fits(x0 + r * math.cos(t), y0 + r * math.sin(t), lab)
                    if cand:
                        d = (cand[0] - x0) ** 2 + (cand[1] - y0) ** 2
                        if best is None or d < best[0]:
                            best = (d, cand)
                if best:
                    break
            if best:
                box = best[1]
                lab.leader = True
            else:  # nowhere free: keep the preferred spot (clamped into the picture)
                x = min(max(0.0, x0), max(0.0, bw - lab.w))
                y = min(max(0.0, y0), max(0.0, bh - lab.h))
                box = (x, y, x + lab.w, y + lab.h)
        lab.box = tuple(box)
        placed.append(lab.box)
    return labels


def _nearest_on_box(box, p):
    return min(max(p[0], box[0]), box[2]), min(max(p[1], box[1]), box[3])


@dataclass
class _Geometry:
    """Everything :func:`draw_hierarchy` draws, in canvas pixels."""

    boxes: list  # (kind, (x0, y0, x1, y1), colour, width)
    points: list  # ((x, y), colour)
    labels: list  # Label
    legend: list  # (kind, name, colour), each (kind, name) once, grouped by kind
    font: Any = None
    pad: int = 2
    radius: int = 4


def hierarchy_layout(hierarchy: Any, size: tuple, *, scale: float = 1.0, font=None, font_path: str | None = None,
                     show_labels: bool = True) -> _Geometry:
    """The boxes, points, placed labels and legend entries of ``hierarchy`` on a canvas of ``size``
    (``scale`` maps hierarchy pixels to canvas pixels)."""
    if isinstance(hierarchy, dict):
        hierarchy = Hierarchy.from_prediction(hierarchy)
    w, h = size
    unit = max(w, h) / 640.0
    obj_width = max(2, round(3 * unit))
    part_width = max(1, round(2 * unit))
    radius = max(4, round(6 * unit))
    font = font or _font(max(11, round(14 * unit)), font_path)
    pad = max(2, round(3 * unit))
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    names: dict = {k: [] for k in KINDS}
    for obj in hierarchy.objects:
        names["object"].append(obj.name)
        for part in obj.parts:
            names["part"].append(part.name)
            for aff in part.affordances:
                names["action"].append(aff.action)
    colors = picture_colors(names)

    def col(kind, name):
        return colors[(kind, _key(name))]

    def sc(v):
        return [float(x) * scale for x in v]

    boxes, points, legend = [], [], []
    seen: set = set()
    obj_labels, part_labels, aff_labels = [], [], []

    def label(text, color, candidates, anchor):
        tw, th = _text_size(measure, text, font)
        lw, lh = tw + 2 * pad, th + 2 * pad
        return Label(text, color, lw, lh, [(x, y) for x, y in candidates(lw, lh)], anchor)

    for obj in hierarchy.objects:
        oc = col("object", obj.name)
        if ("object", _key(obj.name)) not in seen:
            seen.add(("object", _key(obj.name)))
            legend.append(("object", str(obj.name), oc))
        if _valid_box(obj.box):
            x0, y0, x1, y1 = sc(obj.box)
            x0, x1, y0, y1 = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
            boxes.append(("object", (x0, y0, x1, y1), oc, obj_width))
            obj_labels.append(label(str(obj.name), oc, lambda lw, lh, b=(x0, y0, x1, y1): [
                (b[0], b[1] - lh), (b[2] - lw, b[1] - lh), (b[0], b[3]), (b[0] + obj_width, b[1] + obj_width),
            ], (x0, y0)))
        for part in obj.parts:
            pc = col("part", part.name)
            if ("part", _key(part.name)) not in seen:
                seen.add(("part", _key(part.name)))
                legend.append(("part", str(part.name), pc))
            if _valid_box(part.box):
                x0, y0, x1, y1 = sc(part.box)
                x0, x1, y0, y1 = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
                boxes.append(("part", (x0, y0, x1, y1), pc, part_width))
                pw = part_width
                part_labels.append(label(str(part.name), pc, lambda lw, lh, b=(x0, y0, x1, y1): [
                    (b[0] + pw, b[1] + pw), (b[0], b[1] - lh), (b[2] - lw - pw, b[1] + pw),
                    (b[0] + pw, b[3] - lh - pw), (b[0], b[3]), (b[2] - lw - pw, b[3] - lh - pw),
                ], (x0, y0)))
            for aff in part.affordances:
                ac = col("action", aff.action)
                if ("action", _key(aff.action)) not in seen:
                    seen.add(("action", _key(aff.action)))
                    legend.append(("action", str(aff.action), ac))
                if aff.point is None or not all(math.isfinite(v) for v in aff.point):
                    continue
                x, y = sc(aff.point)
                points.append(((x, y), ac))
                gap = radius + 3 + pad
                aff_labels.append(label(str(aff.action), ac, lambda lw, lh, x=x, y=y: [
                    (x + gap, y - lh / 2), (x - gap - lw, y - lh / 2), (x - lw / 2, y - gap - lh),
                    (x - lw / 2, y + gap), (x + gap, y - lh - 2), (x + gap, y + 2),
                ], (x, y)))
    legend.sort(key=lambda e: KINDS.index(e[0]))  # grouped by kind, first-seen order inside a kind
    labels: list = []
    if show_labels:
        r = radius + 3  # the whole disc with its rings
        obstacles = [(x - r, y - r, x + r, y + r) for (x, y), _ in points]
        # affordance labels first (they sit next to a point), then objects, then parts
        labels = layout_labels(aff_labels + obj_labels + part_labels, obstacles, (w, h))
    return _Geometry(boxes, points, labels, legend, font, pad, radius)


def draw_hierarchy(
    image: Any,
    hierarchy: Any,
    *,
    show_labels: bool = True,
    show_legend: bool = True,
    font_path: str | None = None,
    min_side: int = MIN_CANVAS_SIDE,
):
    """A copy of ``image`` (PIL image or path) with ``hierarchy`` (pixel coordinates) drawn on it.

    ``hierarchy`` is a :class:`sceneparser.hierarchy.Hierarchy`, or a pixel dict / reference
    prediction dict (``{"objects": [...]}``). Returns a new RGB ``PIL.Image``; the input is untouched.
    """
    base = image if isinstance(image, Image.Image) else open_image(image)
    base = to_rgb(base)
    w0, h0 = base.size
    scale = 1.0
    if max(w0, h0) < min_side:
        scale = min_side / max(w0, h0)
        base = base.resize((max(1, round(w0 * scale)), max(1, round(h0 * scale))), Image.BICUBIC)
    w, h = base.size
    geo = hierarchy_layout(hierarchy, (w, h), scale=scale, font_path=font_path, show_labels=show_labels)
    font, pad, radius = geo.font, geo.pad, geo.radius

    canvas = base.copy()
    draw = ImageDraw.Draw(canvas)
    for _, box, color, width in geo.boxes:
        draw.rectangle(box, outline=color, width=width)
    for lab in geo.labels:  # leader lines under the labels and points
        if lab.leader:
            end = _nearest_on_box(lab.box, lab.anchor)
            draw.line([lab.anchor, end], fill=(255, 255, 255), width=max(3, pad + 1))
            draw.line([lab.anchor, end], fill=lab.color, width=max(1, pad - 1))
    for (x, y), color in geo.points:
        draw.ellipse([x - radius - 3, y - radius - 3, x + radius + 3, y + radius + 3], fill=(20, 20, 20))
        draw.ellipse([x - radius - 2, y - radius - 2, x + radius + 2, y + radius + 2], fill=(255, 255, 255))
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=color)
    for lab in geo.labels:
        x0, y0, x1, y1 = lab.box
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=lab.color, outline=(20, 20, 20) if lab.leader else None)
        top = _line_metrics(draw, font)[0]
        draw.text((x0 + pad, y0 + pad - top), lab.text, fill=_text_color(lab.color), font=font)
    if not (show_legend and geo.legend):
        return canvas

    # legend strip under the image: one row per kind ("objects", "parts", "actions"), wrapped
    sw = font.size
    gap = 2 * pad
    rows: list[list[tuple]] = []
    for kind in KINDS:
        entries = [e for e in geo.legend if e[0] == kind]
        if not entries:
            continue
        head = f"{kind}s:"
        x = gap + _text_size(draw, head, font)[0] + gap
        rows.append([("head", head, None, gap)])
        for _, name, color in entries:
            tw, _ = _text_size(draw, name, font)
            item_w = sw + pad + tw + 2 * gap
            if x + item_w > w and len(rows[-1]) > 1:
                rows.append([])
                x = gap + _text_size(draw, head, font)[0] + gap
            rows[-1].append((kind, name, color, x))
            x += item_w
    line_h = sw + 2 * pad
    strip_h = len(rows) * line_h + gap
    out = Image.new("RGB", (w, h + strip_h), (255, 255, 255))
    out.paste(canvas, (0, 0))
    d2 = ImageDraw.Draw(out)
    for r, row in enumerate(rows):
        y = h + gap // 2 + r * line_h + pad
        for kind, text, color, x in row:
            top = _line_metrics(d2, font)[0] - (sw - (_line_metrics(d2, font)[1] - _line_metrics(d2, font)[0])) // 2
            if kind == "head":
                d2.text((x, y - top), text, fill=(90, 90, 90), font=font)
                continue
            if kind == "action":
                d2.ellipse([x, y, x + sw, y + sw], fill=color, outline=(20, 20, 20))
            elif kind == "part":
                d2.rectangle([x, y, x + sw, y + sw], fill=color, outline=(20, 20, 20))
            else:
                d2.rectangle([x, y, x + sw, y + sw], fill=color, outline=(20, 20, 20), width=max(1, pad // 2))
            d2.text((x + sw + pad, y - top), text, fill=(0, 0, 0), font=font)
    return out


def _fmt_box(box) -> str:
    return "[" + ", ".join(f"{v:.1f}" for v in box) + "]" if _valid_box(box) else "(no box)"


def _fmt_point(point) -> str:
    return f"({point[0]:.1f}, {point[1]:.1f})" if point is not None else "(no point)"


def format_tree(hierarchy: Any, title: str | None = None) -> str:
    """The hierarchy as an indented tree (box-drawing characters), one node per line."""
    if isinstance(hierarchy, dict):
        hierarchy = Hierarchy.from_prediction(hierarchy)
    lines = [title if title is not None else "scene"]
    objs = hierarchy.objects
    if not objs:
        lines.append("└── (nothing found)")
    for i, obj in enumerate(objs):
        last_o = i == len(objs) - 1
        lines.append(f"{'└── ' if last_o else '├── '}{obj.name}  {_fmt_box(obj.box)}")
        o_ind = "    " if last_o else "│   "
        for j, part in enumerate(obj.parts):
            last_p = j == len(obj.parts) - 1
            lines.append(f"{o_ind}{'└── ' if last_p else '├── '}{part.name}  {_fmt_box(part.box)}")
            p_ind = o_ind + ("    " if last_p else "│   ")
            for k, aff in enumerate(part.affordances):
                last_a = k == len(part.affordances) - 1
                lines.append(f"{p_ind}{'└── ' if last_a else '├── '}{aff.action} @ {_fmt_point(aff.point)}")
    return "\n".join(lines)


__all__ = ["color_for", "picture_colors", "draw_hierarchy", "hierarchy_layout", "layout_labels", "format_tree"]

"""Pictures and terminal trees of a hierarchy (PIL only).

* :func:`draw_hierarchy` draws object boxes (thick), part boxes (thin, inset label) and affordance
  points (white-rimmed discs with the action as label) on a copy of the image, plus a legend strip
  under the image. Each name gets a colour from a stable hash (``zlib.crc32``, not Python's
  per-process ``hash``), so a name keeps its colour across runs. Small images are upscaled and line
  widths / font sizes follow the image size, so labels stay legible from thumbnails to 4K frames.
* :func:`format_tree` renders the hierarchy as an indented tree for the terminal.
"""

from __future__ import annotations

import colorsys
import math
import zlib
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from sceneparser.hierarchy import Hierarchy
from sceneparser.images import open_image, to_rgb

#: Images whose longer side is below this are upscaled before drawing.
MIN_CANVAS_SIDE = 480


def color_for(name: str | None) -> tuple[int, int, int]:
    """A saturated RGB colour that depends only on ``name`` (stable across processes)."""
    key = (name or "").strip().lower().encode("utf-8")
    h = zlib.crc32(key)
    hue = (h % 360) / 360.0
    sat = 0.65 + ((h >> 9) % 30) / 100.0  # 0.65 .. 0.94
    val = 0.80 + ((h >> 17) % 20) / 100.0  # 0.80 .. 0.99
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return int(r * 255), int(g * 255), int(b * 255)


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
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    return x1 - x0, y1 - y0


def _label(draw, xy, text, color, font, pad, bounds):
    """A filled label tab with its top-left near ``xy``, kept inside ``bounds`` (w, h)."""
    tw, th = _text_size(draw, text, font)
    x, y = xy
    x = min(max(0, x), max(0, bounds[0] - tw - 2 * pad))
    y = min(max(0, y), max(0, bounds[1] - th - 2 * pad))
    draw.rectangle([x, y, x + tw + 2 * pad, y + th + 2 * pad], fill=color)
    draw.text((x + pad, y + pad - draw.textbbox((0, 0), text, font=font)[1]), text, fill=_text_color(color), font=font)


def _valid_box(box) -> bool:

    return box is not None and len(box) == 4 and all(isinstance(v, (int, float)) and math.isfinite(v) for v in box)


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
    if isinstance(hierarchy, dict):
        hierarchy = Hierarchy.from_prediction(hierarchy)
    base = to_rgb(base)
    w0, h0 = base.size
    scale = 1.0
    if max(w0, h0) < min_side:
        scale = min_side / max(w0, h0)
        base = base.resize((max(1, round(w0 * scale)), max(1, round(h0 * scale))), Image.BICUBIC)
    w, h = base.size
    unit = max(w, h) / 640.0
    obj_width = max(2, round(3 * unit))
    part_width = max(1, round(2 * unit))
    radius = max(4, round(6 * unit))
    font = _font(max(11, round(14 * unit)), font_path)
    pad = max(2, round(3 * unit))

    canvas = base.copy()
    draw = ImageDraw.Draw(canvas)

    def sc(v):
        return [float(x) * scale for x in v]

    legend: dict[str, tuple[str, tuple[int, int, int]]] = {}
    labels = []  # drawn last so that they sit on top of every outline
    for obj in hierarchy.objects:
        oc = color_for(obj.name)
        legend.setdefault(f"object:{obj.name}", ("object", oc))
        if _valid_box(obj.box):
            x0, y0, x1, y1 = sc(obj.box)
            draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], outline=oc, width=obj_width)
            labels.append(((min(x0, x1), min(y0, y1) - font.size - 2 * pad), str(obj.name), oc))
        for part in obj.parts:
            pc = color_for(part.name)
            legend.setdefault(f"part:{part.name}", ("part", pc))
            if _valid_box(part.box):
                x0, y0, x1, y1 = sc(part.box)
                draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], outline=pc, width=part_width)
                labels.append(((min(x0, x1) + part_width, min(y0, y1) + part_width), str(part.name), pc))
            for aff in part.affordances:
                ac = color_for(aff.action)
                legend.setdefault(f"action:{aff.action}", ("action", ac))
                if aff.point is None:
                    continue
                x, y = sc(aff.point)
                draw.ellipse([x - radius - 2, y - radius - 2, x + radius + 2, y + radius + 2], fill=(255, 255, 255))
                draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=ac)
                labels.append(((x + radius + pad, y - radius - font.size), str(aff.action), ac))
    if show_labels:
        for xy, text, color in labels:
            _label(draw, xy, text, color, font, pad, (w, h))
    if not (show_legend and legend):
        return canvas

    # legend strip under the image: "object mug", "part handle", "action grasp" with swatches
    entries = [(kind, key.split(":", 1)[1], color) for key, (kind, color) in legend.items()]
    sw = font.size
    gap = 2 * pad
    rows: list[list[tuple[str, tuple[int, int, int], int]]] = [[]]
    x = gap
    for kind, name, color in entries:
        text = f"{kind}: {name}"
        tw, _ = _text_size(draw, text, font)
        item_w = sw + pad + tw + 2 * gap
        if rows[-1] and x + item_w > w:
            rows.append([])
            x = gap
        rows[-1].append((text, color, x))
        x += item_w
    line_h = sw + 2 * pad
    strip_h = len(rows) * line_h + gap
    out = Image.new("RGB", (w, h + strip_h), (255, 255, 255))
    out.paste(canvas, (0, 0))
    d2 = ImageDraw.Draw(out)
    for r, row in enumerate(rows):
        y = h + gap // 2 + r * line_h + pad
        for text, color, x in row:
            d2.rectangle([x, y, x + sw, y + sw], fill=color, outline=(0, 0, 0))
            top = d2.textbbox((0, 0), text, font=font)[1]
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


__all__ = ["color_for", "draw_hierarchy", "format_tree"]

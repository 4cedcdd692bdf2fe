"""Visualiser: stable colours from per-kind palettes, drawing on small and large images, legend,
label placement without overlaps, a golden picture of the shipped example, terminal tree."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from sceneparser.hierarchy import Affordance, Hierarchy, Part, SceneObject
from sceneparser.viz import (
    PALETTES,
    Label,
    color_for,
    draw_hierarchy,
    format_tree,
    hierarchy_layout,
    layout_labels,
    picture_colors,
)

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden"


def _hierarchy(w, h):
    return Hierarchy(
        objects=[
            SceneObject(
                name="mug",
                box=(0.1 * w, 0.1 * h, 0.6 * w, 0.8 * h),
                parts=[
                    Part(
                        name="handle",
                        box=(0.45 * w, 0.3 * h, 0.6 * w, 0.6 * h),
                        affordances=[Affordance(action="grasp", point=(0.52 * w, 0.45 * h))],
                    ),
                    Part(name="body", box=None, affordances=[Affordance(action="pour", point=None)]),
                ],
            ),
            SceneObject(name="kettle", box=(0.7 * w, 0.2 * h, 0.95 * w, 0.9 * h), parts=[]),
        ]
    )


def test_colours_are_stable_across_processes():
    code = "from sceneparser.viz import color_for; print(color_for('mug'), color_for('handle', 'part'))"
    outs = set()
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        outs.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout)
    assert len(outs) == 1
    assert outs.pop().strip() == f"{color_for('mug')} {color_for('handle', 'part')}"
    assert color_for("mug") != color_for("kettle")
    assert color_for("Mug ") == color_for("mug")


def test_palettes_are_distinct_and_kinds_never_share_a_colour():
    every = [c for p in PALETTES.values() for c in p]
    # no two colours alike, inside a kind or across kinds (object "bottle" vs action "pour")
    for a, b in itertools.combinations(every, 2):
        assert sum((x - y) ** 2 for x, y in zip(a, b)) ** 0.5 > 60, (a, b)
    # one picture: names of one kind get different colours even when their hashes collide
    names = {"action": ["grasp", "cut", "twist", "pour", "push"], "object": ["knife"], "part": ["blade", "handle"]}
    colours = picture_colors(names)
    acts = [colours[("action", n)] for n in names["action"]]
    assert len(set(acts)) == len(acts)
    assert colours[("action", "grasp")] in PALETTES["action"]


def _has_colour(img, colour, box):
    arr = np.asarray(img.crop(box)).reshape(-1, 3)
    return bool((np.abs(arr.astype(int) - np.array(colour)).sum(1) == 0).any())


def test_draw_small_image_is_upscaled_with_legend():
    img = Image.new("RGB", (64, 48), (128, 128, 128))
    out = draw_hierarchy(img, _hierarchy(64, 48))
    assert out.width >= 480 and out.height > out.width * 48 / 64  # upscaled + legend strip below
    scale = out.width / 64
    # the object's outline is drawn in its colour along the left edge of its box
    x0, y0 = int(0.1 * 64 * scale), int(0.5 * 48 * scale)
    assert _has_colour(out, color_for("mug"), (x0 - 3, y0 - 3, x0 + 4, y0 + 4))
    # the affordance point is drawn in the action's colour
    px, py = int(0.52 * 64 * scale), int(0.45 * 48 * scale)
    assert _has_colour(out, color_for("grasp", "action"), (px - 2, py - 2, px + 3, py + 3))
    # legend swatches in the strip below the picture
    strip = (0, round(48 * scale), out.width, out.height)
    for name, kind in (("mug", "object"), ("handle", "part"), ("grasp", "action"), ("kettle", "object"),
                       ("pour", "action")):
        assert _has_colour(out, color_for(name, kind), strip)
    assert img.size == (64, 48) and img.getpixel((10, 10)) == (128, 128, 128)  # input untouched


def test_draw_large_image_keeps_size_and_scales_lines():
    img = Image.new("RGB", (1920, 1080), (200, 200, 200))
    out = draw_hierarchy(img, _hierarchy(1920, 1080), show_legend=False)
    assert out.size == (1920, 1080)
    x = int(0.1 * 1920)
    row = np.asarray(out)[540, x - 10 : x + 10]
    drawn = (np.abs(row.astype(int) - np.array(color_for("mug"))).sum(1) == 0).sum()
    assert drawn >= 6  # outline is several pixels wide on a large image


def test_draw_accepts_prediction_dicts_and_empty():
    img = Image.new("RGB", (100, 100))
    pred = {"objects": [{"name": "cup", "bbox": [10, 10, 50, 50], "parts": []}]}
    assert draw_hierarchy(img, pred).width >= 100
    assert draw_hierarchy(img, Hierarchy(objects=[])).size == (480, 480)


def _example():
    return Hierarchy.from_prediction(json.loads((GOLDEN / "viz_scene.json").read_text()))


def test_labels_of_the_example_cover_neither_each_other_nor_points():
    geo = hierarchy_layout(_example(), (640, 480))
    boxes = [lab.box for lab in geo.labels]
    assert len(boxes) == 3 + 6 + 5  # objects, parts, affordance points
    for a, b in itertools.combinations(boxes, 2):
        assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)
    r = geo.radius + 3
    for (x, y), _ in geo.points:
        for box in boxes:
            assert not (box[0] < x + r and x - r < box[2] and box[1] < y + r and y - r < box[3]), (box, (x, y))
    for box in boxes:
        assert 0 <= box[0] and box[2] <= 640 and 0 <= box[1] and box[3] <= 480
    # the legend has each (kind, name) once, grouped by kind
    assert [e[0] for e in geo.legend] == sorted((e[0] for e in geo.legend), key=("object", "part", "action").index)
    assert len({(e[0], e[1]) for e in geo.legend}) == len(geo.legend)


def test_crowded_labels_move_away_with_a_leader_line():
    labels = [Label(f"label{i}", (0, 0, 0), 40, 12, [(100, 100)], (100, 100)) for i in range(12)]
    layout_labels(labels, [(90, 90, 110, 110)], (400, 300))
    boxes = [lab.box for lab in labels]
    for a, b in itertools.combinations(boxes, 2):
        assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])
    assert all(lab.leader for lab in labels)  # the only candidate was covered by the obstacle


def _diff_share(a, b, threshold: int = 48) -> float:
    x = np.asarray(a).astype(int)
    y = np.asarray(b).astype(int)
    return float((np.abs(x - y).max(axis=2) > threshold).mean())


def test_example_matches_the_golden_picture():
    """The shipped example drawn with a fixed parse of it (mug, bottle, pan), against a stored
    picture: lines and points must match closely; text may differ a little with the font
    renderer. SCENEPARSER_UPDATE_GOLDEN=1 rewrites the pictures."""
    image = Image.open(ROOT / "examples" / "scene.jpg").convert("RGB")
    hier = _example()
    drawn = draw_hierarchy(image, hier)
    shapes = draw_hierarchy(image, hier, show_labels=False, show_legend=False)
    if os.environ.get("SCENEPARSER_UPDATE_GOLDEN"):
        drawn.save(GOLDEN / "viz_scene.png")
        shapes.save(GOLDEN / "viz_scene_shapes.png")
    golden = Image.open(GOLDEN / "viz_scene.png").convert("RGB")
    golden_shapes = Image.open(GOLDEN / "viz_scene_shapes.png").convert("RGB")
    assert shapes.size == golden_shapes.size
    assert _diff_share(shapes, golden_shapes) < 0.002
    assert abs(drawn.height - golden.height) <= 6  # the legend strip follows the font's line height
    h = min(drawn.height, golden.height)
    assert _diff_share(drawn.crop((0, 0, 640, h)), golden.crop((0, 0, 640, h))) < 0.04


def test_format_tree():
    text = format_tree(_hierarchy(100, 100), title="mug")
    lines = text.splitlines()
    assert lines[0] == "mug"
    assert lines[1].startswith("├── mug  [10.0, 10.0, 60.0, 80.0]")
    assert any("grasp @ (52.0, 45.0)" in line for line in lines)
    assert any("body  (no box)" in line for line in lines)
    assert lines[-1].startswith("└── kettle")
    assert format_tree(Hierarchy(objects=[])).splitlines()[1] == "└── (nothing found)"

"""Visualiser: stable colours, drawing on small and large images, legend, terminal tree."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from PIL import Image

from sceneparser.hierarchy import Affordance, Hierarchy, Part, SceneObject
from sceneparser.viz import color_for, draw_hierarchy, format_tree


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
    code = "from sceneparser.viz import color_for; print(color_for('mug'), color_for('handle'))"
    outs = set()
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        outs.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout)
    assert len(outs) == 1
    assert outs.pop().strip() == f"{color_for('mug')} {color_for('handle')}"
    assert color_for("mug") != color_for("kettle")
    assert color_for("Mug ") == color_for("mug")


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
    assert _has_colour(out, color_for("grasp"), (px - 2, py - 2, px + 3, py + 3))
    # legend swatches in the strip below the picture
    strip = (0, round(48 * scale), out.width, out.height)
    for name in ("mug", "handle", "grasp", "kettle", "pour"):
        assert _has_colour(out, color_for(name), strip)
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


def test_format_tree():
    text = format_tree(_hierarchy(100, 100), title="mug")
    lines = text.splitlines()
    assert lines[0] == "mug"
    assert lines[1].startswith("├── mug  [10.0, 10.0, 60.0, 80.0]")
    assert any("grasp @ (52.0, 45.0)" in line for line in lines)
    assert any("body  (no box)" in line for line in lines)
    assert lines[-1].startswith("└── kettle")
    assert format_tree(Hierarchy(objects=[])).splitlines()[1] == "└── (nothing found)"

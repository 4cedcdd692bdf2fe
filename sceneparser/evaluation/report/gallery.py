"""The report's gallery: ground truth and prediction of a few samples, drawn with :mod:`sceneparser.viz`.

Only the samples shown are read again from the answer file (by byte offset) and only their
images are decoded. Each picture is downscaled and embedded as a JPEG ``data:`` URI, so the
report is one file that opens from disk. A missing or undecodable image gives a card that says
so (with the path it looked at) instead of a picture.
"""

from __future__ import annotations

import base64
import io as _io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from sceneparser.evaluation.metrics.reading import NONE_ACTIONS, PSEUDO_PART
from sceneparser.evaluation.report.analysis import SampleRef, read_line_at
from sceneparser.evaluation.samples import resolve_image_path
from sceneparser.hierarchy import Affordance, Hierarchy, Part, SceneObject
from sceneparser.images import ImageError, open_image
from sceneparser.viz import draw_hierarchy

THUMB_WIDTH = 520


@dataclass
class Card:
    """One gallery entry (everything the HTML needs)."""

    ref: SampleRef
    question: str | None
    raw_response: str
    parse_status: str | None
    parse_error: str | None
    gt_uri: str | None = None
    pred_uri: str | None = None
    problem: str | None = None  # why there is no picture


def _coords(v, n):
    if isinstance(v, (list, tuple)) and len(v) == n and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        return tuple(float(x) for x in v)
    return None


def _gt_point(a: dict):
    """A point to draw for a GT affordance: its point, else its first sampled point, else its region's centre."""
    p = _coords(a.get("point"), 2)
    if p is None:
        pts = a.get("points") or a.get("sampled_points")
        if isinstance(pts, list) and pts:
            p = _coords(pts[0], 2)
    if p is None:
        b = _coords(a.get("affordance_bbox") or a.get("bbox"), 4)
        if b is not None:
            p = ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
    return p


def hierarchy_of(objs, *, is_gt: bool) -> Hierarchy:
    """What the filtered metric sees, as a :class:`Hierarchy` to draw (pseudo parts and none actions left out)."""
    objects = []
    for o in _list(objs):
        if not isinstance(o, dict):
            continue
        parts = []
        for p in _list(o.get("parts")):
            if not isinstance(p, dict) or p.get("part_name") == PSEUDO_PART or p.get("is_pseudo_part"):
                continue
            affs = []
            for a in _list(p.get("affordances")):
                if not isinstance(a, dict) or a.get("action") in NONE_ACTIONS:
                    continue
                point = _gt_point(a) if is_gt else _coords(a.get("point"), 2)
                affs.append(Affordance(action=str(a.get("action")), point=point))
            parts.append(Part(name=str(p.get("part_name")), box=_coords(p.get("bbox"), 4), affordances=affs))
        objects.append(SceneObject(name=str(o.get("name")), box=_coords(o.get("bbox"), 4), parts=parts))
    return Hierarchy(objects=objects)


def _list(v) -> list:
    return v if isinstance(v, list) else []


def _objects(container) -> list:
    return _list(container.get("objects")) if isinstance(container, dict) else []


def _data_uri(img: Image.Image, width: int) -> str:
    if img.width > width:
        img = img.resize((width, max(1, round(img.height * width / img.width))), Image.LANCZOS)
    buf = _io.BytesIO()
    img.save(buf, format="JPEG", quality=82)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def make_card(answers_path, ref: SampleRef, image_root, *, gt_override=None, width: int = THUMB_WIDTH) -> Card:
    """Read one sample back from the answer file and draw it (or say why not)."""
    row = read_line_at(answers_path, ref.offset) if ref.offset >= 0 else None
    if row is None:
        return Card(ref, None, "", ref.status, None, problem="the answer line could not be read back")
    card = Card(ref, row.get("question"), str(row.get("raw_response") or ""), row.get("parse_status"),
                row.get("parse_error"))
    image_path = row.get("image_path")
    if not isinstance(image_path, str) or not image_path:
        card.problem = "the answer names no image"
        return card
    path = resolve_image_path(image_path, image_root)
    try:
        image = open_image(path)
    except ImageError as exc:
        card.problem = f"{exc} (image root: {image_root or 'the current directory'}; pass --image-root)"
        return card
    gt = gt_override if gt_override is not None else row.get("gt")
    card.gt_uri = _data_uri(draw_hierarchy(image, hierarchy_of(_objects(gt), is_gt=True)), width)
    card.pred_uri = _data_uri(draw_hierarchy(image, hierarchy_of(_objects(row.get("extracted_predictions")),
                                                                 is_gt=False)), width)
    return card


def image_root_for(results_dir: Path, manifest: dict | None, image_root) -> str | None:
    """``--image-root``, else the one the eval run recorded (when it still exists), else None."""
    if image_root:
        return str(image_root)
    root = ((manifest or {}).get("settings") or {}).get("image_root")
    if isinstance(root, str) and Path(root).is_dir():
        return root
    return None

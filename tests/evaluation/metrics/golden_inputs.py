"""Deterministic answer lines for the metric golden tests (random, seeded; no hypothesis).

``answer_lines(seed, n)`` mixes well-formed samples (name/case variants, pseudo parts, none
actions, legacy object-level affordances, null containers, masks, NaN/inf and boolean
coordinates) with malformed ones (a random node replaced by junk, non-object lines), so a
golden run exercises every reader branch, both matchers, the filters and the error messages.
``golden/expected.json`` holds what the metric gave (before it became a package) on
:func:`answers_text` for each of :data:`CONFIGS`; the test checks the text's hash, so change
the generator only together with the expected file.
"""

from __future__ import annotations

import random

NAMES = ["mug", "mug", "mug", "Mug", "mug ", "cup", None, 3]
PARTS = ["handle", "handle", "Handle ", "body", "lid", "", None, "__placeholder_part__", " __PLACEHOLDER_PART__", 7]
ACTIONS = ["grasp", "grasp", "Grasp", "pour", "open", "", None, "__none__", "__placeholder_action__", "none", "null", 5]
MASKS = [None, None, None, "", "m0.png", "m1.png", "missing.png"]
JUNK = [None, 5, "x", [], [1, 2], {}, {"a": 1}, True, [1, "2", 3, 4], 1.5]


def _num(r: random.Random):
    x = r.random()
    if x < 0.45:
        return r.randint(0, 40)
    if x < 0.93:
        return round(r.uniform(-2, 42), r.choice([0, 1, 3, 12]))
    return r.choice([float("nan"), float("inf"), float("-inf"), True, 0.5, -0.0, 2 ** 70])


def _box(r: random.Random, near=None):
    if r.random() < 0.08:
        return None
    if near is not None and r.random() < 0.7:
        if r.random() < 0.3:
            return list(near)
        return [v + r.choice([0, 0, 1, -1, 0.5, 2]) if isinstance(v, (int, float)) else v for v in near]
    x0, y0 = r.randint(0, 30), r.randint(0, 30)
    box = [x0, y0, x0 + r.randint(-2, 20), y0 + r.randint(-2, 20)]
    if r.random() < 0.1:
        box[r.randrange(4)] = _num(r)
    return box


def _point(r: random.Random, box=None):
    if r.random() < 0.08:
        return None
    if box is not None and None not in box and r.random() < 0.7:
        try:
            return [r.uniform(min(box[0], box[2]), max(box[0], box[2])), r.uniform(min(box[1], box[3]),
                                                                             max(box[1], box[3]))]
        except (TypeError, OverflowError, ValueError):
            pass
    return [_num(r), _num(r)]


def _gt_aff(r: random.Random, part_box):
    region = _box(r, part_box) if r.random() < 0.7 else None
    pts = [_point(r, region or part_box) for _ in range(r.randint(0, 2))]
    pts = [p for p in pts if p is not None]
    a = {"action": r.choice(ACTIONS), "affordance_bbox": region, "mask_path": r.choice(MASKS), "points": pts,
         "point": pts[0] if pts else None}
    if r.random() < 0.1:
        a["bbox"] = a.pop("affordance_bbox")
    if r.random() < 0.1:
        a["part_bbox"] = _box(r, part_box)
    return a


def _pred_aff(r: random.Random, g=None, part_box=None):
    action = g["action"] if g is not None and r.random() < 0.7 else r.choice(ACTIONS)
    region = g.get("affordance_bbox") if g is not None else None
    a = {"action": action}
    key = r.choice(["point", "point", "point", "affordance_point", "points", "sampled_points", "none"])
    pt = _point(r, region or part_box)
    if key in ("points", "sampled_points"):
        a[key] = [pt] if pt is not None else []
    elif key != "none":
        a[key] = pt
    return a


def _gt_obj(r: random.Random, cat):
    box = _box(r)
    parts = []
    for _ in range(r.randint(0, 3)):
        pb = _box(r, box)
        p = {"part_name": r.choice(PARTS), "bbox": pb, "affordances": [_gt_aff(r, pb) for _ in range(r.randint(0, 3))]}
        if r.random() < 0.1:
            p["is_pseudo_part"] = r.random() < 0.5
        if r.random() < 0.05:
            p["affordances"] = None
        parts.append(p)
    o = {"name": cat if r.random() < 0.8 else r.choice(NAMES), "bbox": box, "has_part": bool(parts),
         "has_affordance": any(p["affordances"] for p in parts), "parts": parts, "affordances": []}
    if r.random() < 0.1:
        o["affordances"] = [_gt_aff(r, box) for _ in range(r.randint(1, 2))]
    if r.random() < 0.05:
        o["parts"] = None
    return o


def _pred_obj(r: random.Random, g):
    parts = []
    for gp in g.get("parts") or []:
        if r.random() < 0.2:
            continue
        name = gp["part_name"] if r.random() < 0.8 else r.choice(PARTS)
        affs = [_pred_aff(r, ga, gp["bbox"]) for ga in gp["affordances"] or [] if r.random() < 0.8]
        if r.random() < 0.15:
            affs.append(_pred_aff(r, None, gp["bbox"]))
        if r.random() < 0.05:
            affs.append(r.choice(JUNK))
        parts.append({"part_name": name, "bbox": _box(r, gp["bbox"]), "affordances": affs})
    if r.random() < 0.15:
        parts.append({"part_name": r.choice(PARTS), "bbox": _box(r), "affordances": [_pred_aff(r)]})
    o = {"name": g["name"] if r.random() < 0.85 else r.choice(NAMES), "bbox": _box(r, g["bbox"]),
         "has_part": None, "has_affordance": None, "parts": parts, "affordances": []}
    if r.random() < 0.1:
        o["affordances"] = [_pred_aff(r) for _ in range(r.randint(1, 2))]
    if r.random() < 0.05:
        del o["affordances"]
    return o


def _break(r: random.Random, sample):
    nodes = []

    def walk(v):
        if isinstance(v, dict):
            for k in v:
                nodes.append((v, k))
                walk(v[k])
        elif isinstance(v, list):
            for i in range(len(v)):
                nodes.append((v, i))
                walk(v[i])

    walk(sample)
    if nodes:
        container, key = r.choice(nodes)
        container[key] = r.choice(JUNK)
    return sample


def sample(r: random.Random, cat: str = "mug"):
    gt = [_gt_obj(r, cat) for _ in range(r.randint(0, 4))]
    pred = [_pred_obj(r, g) for g in gt if r.random() < 0.85]
    if r.random() < 0.2:
        pred.append(_pred_obj(r, _gt_obj(r, cat)))
    r.shuffle(pred) if r.random() < 0.3 else None
    s = {"image_path": "i.jpg", "category": cat, "question": "q", "gt": {"objects": gt},
         "extracted_predictions": {"objects": pred}, "raw_response": "", "task_name": "t", "dataset_name": "d"}
    x = r.random()
    if x < 0.02:
        s["gt"] = None
    elif x < 0.04:
        s["extracted_predictions"] = None
    elif x < 0.06:
        del s["extracted_predictions"]
    elif x < 0.08:
        s["extracted_predictions"] = {}
    elif x < 0.10:
        s["gt"] = {"objects": None}
    return s


def answer_lines(seed: int, n: int, broken: float = 0.08) -> list:
    """``n`` answer lines (Python objects); about ``broken`` of them malformed."""
    r = random.Random(seed)
    out = []
    for _ in range(n):
        s = sample(r, r.choice(["mug", "mug", "cup"]))
        x = r.random()
        if x < broken:
            s = _break(r, s)
        elif x < broken + 0.005:
            s = r.choice([[1, 2], 5, "line", None])
        out.append(s)
    return out


def write_masks(folder) -> None:
    """The two masks the golden lines name (``m0.png`` grey, ``m1.png`` RGB); ``missing.png`` stays absent."""
    from PIL import Image

    r = random.Random(0)
    a = Image.new("L", (40, 40), 0)
    b = Image.new("RGB", (30, 45), (0, 0, 0))
    for _ in range(500):
        a.putpixel((r.randrange(40), r.randrange(40)), 255)
        b.putpixel((r.randrange(30), r.randrange(45)), (0, 9, 0))
    a.save(f"{folder}/m0.png")
    b.save(f"{folder}/m1.png")


PART_ALIASES = {"alias_map": {"Handle": "body", "lid": "HANDLE", "7": "lid"}}
ACTION_ALIASES = {"alias_map": {"pour": "grasp", "GRASP": "open", "none": "__none__"}}

# (level, options) of the committed golden results; "MASKS" and "*_MAP" are filled in by the test
CONFIGS = [
    ("object", {}),
    ("object", {"ignore_pseudo_part": True, "ignore_none_action": True}),
    ("object", {"ignore_pseudo_part": True, "ignore_none_action": True, "matching": "optimal"}),
    ("object", {"normalize_object_names": True, "mask_root": "MASKS"}),
    ("object", {"canonical_eval": True, "part_mapping_path": "PART_MAP", "action_mapping_path": "ACTION_MAP"}),
    ("scene", {}),
    ("scene", {"ignore_pseudo_part": True, "ignore_none_action": True, "mask_root": "MASKS"}),
    ("scene", {"matching": "optimal", "ignore_none_action": True}),
]


def materialise(options: dict, folder) -> dict:
    """``options`` with the MASKS / PART_MAP / ACTION_MAP placeholders pointing into ``folder``."""
    paths = {"MASKS": str(folder), "PART_MAP": f"{folder}/parts.json", "ACTION_MAP": f"{folder}/actions.json"}
    return {k: paths.get(v, v) if isinstance(v, str) else v for k, v in options.items()}


def write_support_files(folder) -> None:
    import json

    write_masks(folder)
    with open(f"{folder}/parts.json", "w", encoding="utf-8") as f:
        json.dump(PART_ALIASES, f)
    with open(f"{folder}/actions.json", "w", encoding="utf-8") as f:
        json.dump(ACTION_ALIASES, f)


def golden_runs(evaluate_file, result_text, answers, folder) -> list:
    """For each of :data:`CONFIGS`: the result text and the skipped-line messages (paths replaced)."""
    out = []
    for level, options in CONFIGS:
        skipped: list = []
        result = evaluate_file(answers, level, skip_invalid=True, on_skip=skipped.append,
                               **materialise(options, folder))
        out.append({"level": level, "options": options, "result": result_text(result).replace(str(folder), "FOLDER"),
                    "skipped": [m.replace(str(answers), "ANSWERS") for m in skipped]})
    return out


GOLDEN_SEED, GOLDEN_LINES = 2024, 160


def answers_text() -> str:
    """The golden answer file (JSONL text; NaN and Infinity written as the standard library does)."""
    import json

    return "".join(json.dumps(s) + "\n" for s in answer_lines(GOLDEN_SEED, GOLDEN_LINES))

"""Issue-18 checks of a default model: every instance, honest empty answers, speed.

Runs the model (default: the shipped one) on held-out synthetic scenes of a seed no recipe trains
on (default 4000; scenes drawn in memory, with multi-instance scenes and rotated objects so that
the checks have something to count) and, optionally, on real photos, and reports:

* ``multi_instance_recall``: over the object queries whose class has >= 2 instances in the image,
  the share of those instances matched by a predicted box (IoU >= 0.5, one box per instance,
  greedy by IoU); also ``multi_instance_multi_box``: the share of those queries answered with
  more than one box (v1: 7 of 62);
* ``own_class_recall``: the same recall over every class present in the image (the empty-answer
  training must not cost it);
* ``absent_empty_rate``: share of queries for a class of the data that is not in the image that
  are answered ``{"objects": []}``;
* ``unknown_empty_rate``: the same for names that are no class ("cat", "person", "banana", a word
  of ``sceneparser.data.targets.UNKNOWN_NAMES``, a random letter string);
* ``photos``: on real photos, the empty-answer rate of the unknown names and of the 11 class
  names (none of the photos scikit-image ships shows a synthetic-style mug, drawer, ...: an
  answer there is counted as invented; the per-photo answers are listed for a human check), and
  for the whole-scene query the share of empty answers and the mean number of objects per photo;
* ``seconds_per_query``: median wall time of one object query (greedy, ``--threads`` threads).

Real photos: ``--photos`` is a folder of images, or scikit-image's wheel (``pip download
scikit-image --no-deps -d DIR``: 13.7 MB; its ``skimage/data/*.png|jpg`` are read straight
from the zip, nothing is installed), or ``skimage`` to use an installed scikit-image's data.

    python benchmarks/default_model_checks.py --threads 2 --num-images 100 --json /tmp/checks.json
    python benchmarks/default_model_checks.py --model /tmp/default_model_v2_run/model/stage3 \\
        --photos /tmp/skd/scikit_image-0.26.0-*.whl
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import zipfile
from collections import Counter
from pathlib import Path

from sceneparser.data.synth import CLASS_NAMES, SceneOptions, render_scene
from sceneparser.data.targets import UNKNOWN_NAMES, choice_index, random_name
from sceneparser.images import open_image
from sceneparser.io import write_json

# photos of scikit-image's data folder that are real photographs (not charts, microscopy, text)
PHOTO_NAMES = ("astronaut", "chelsea", "coffee", "motorcycle_left", "rocket", "horse", "camera", "grass", "gravel", "brick")
FIXED_UNKNOWN = ("cat", "person", "banana")


def iou(a, b) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def matched(truth: list, predicted: list, threshold: float = 0.5) -> int:
    """Instances of ``truth`` matched one-to-one by ``predicted`` boxes (greedy by IoU)."""
    pairs = sorted(((iou(t, p), i, j) for i, t in enumerate(truth) for j, p in enumerate(predicted)), reverse=True)
    used_t, used_p = set(), set()
    for v, i, j in pairs:
        if v < threshold:
            break
        if i not in used_t and j not in used_p:
            used_t.add(i)
            used_p.add(j)
    return len(used_t)


def predicted_boxes(result) -> list:
    out = []
    for o in (result.prediction or {}).get("objects") or []:
        box = o.get("bbox") if isinstance(o, dict) else None
        if isinstance(box, (list, tuple)) and len(box) == 4:
            out.append([float(v) for v in box])
    return out


def is_empty(result) -> bool:
    return not ((result.prediction or {}).get("objects") or [])


def unknown_queries(seed: int, index: int) -> list[str]:
    """Two names that are no class: a word of the list and a random string (plus the fixed three on photos)."""
    return [UNKNOWN_NAMES[choice_index(len(UNKNOWN_NAMES), seed, 0, index, "check-word")],
            random_name(seed + 1, 1, index)]


def load_photos(spec: str | None) -> dict:
    if not spec:
        return {}
    if spec == "skimage":
        import skimage  # only when asked

        spec = str(Path(skimage.__file__).parent / "data")
    path = Path(spec)
    photos = {}
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            for name in PHOTO_NAMES:
                for ext in ("png", "jpg"):
                    member = f"skimage/data/{name}.{ext}"
                    if member in z.namelist():
                        photos[name] = open_image(z.read(member), name=member)
    elif path.is_dir():
        for p in sorted(path.iterdir()):
            if p.suffix.lower() in (".png", ".jpg", ".jpeg") and (p.stem in PHOTO_NAMES or spec != "skimage"):
                photos[p.stem] = open_image(p)
    else:
        raise SystemExit(f"--photos {spec}: not a folder or a wheel/zip")
    return photos


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model directory (default: the shipped default model)")
    ap.add_argument("--seed", type=int, default=4000, help="held-out synth seed (never trained on; default 4000)")
    ap.add_argument("--num-images", type=int, default=100)
    ap.add_argument("--multi-instance-rate", type=float, default=0.5)
    ap.add_argument("--rotate-rate", type=float, default=0.0)
    ap.add_argument("--photos", default=None, help="real photos: a folder, scikit-image's wheel, or 'skimage'")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=512)
    ap.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from sceneparser.inference.api import SceneParser

    parser = SceneParser.from_pretrained(args.model, device="cpu", dtype="float32", max_new_tokens=args.max_new_tokens)
    options = SceneOptions(multi_instance_rate=args.multi_instance_rate, rotate_rate=args.rotate_rate)
    times: list[float] = []

    def ask(image, query):
        t = time.perf_counter()
        r = parser.parse(image, query=query, scene=query is None)
        if query is not None:  # the speed target is per object query
            times.append(time.perf_counter() - t)
        return r

    c = Counter()
    for i in range(args.num_images):
        image, objects, _ = render_scene(args.seed, i, options=options)
        by_class: dict[str, list] = {}
        for o in objects:
            b = o["object_bbox"]
            by_class.setdefault(o["phrase"], []).append([b[0], b[1], b[2] + 1, b[3] + 1])
        for name, truth in sorted(by_class.items()):
            r = ask(image, name)
            boxes = predicted_boxes(r)
            hit = matched(truth, boxes)
            c["own_instances"] += len(truth)
            c["own_matched"] += hit
            if len(truth) >= 2:
                c["multi_queries"] += 1
                c["multi_instances"] += len(truth)
                c["multi_matched"] += hit
                c["multi_multi_box"] += len(boxes) >= 2
        absent = [n for n in CLASS_NAMES if n not in by_class]
        if absent:
            r = ask(image, absent[choice_index(len(absent), args.seed, 0, i, "check-absent")])
            c["absent_queries"] += 1
            c["absent_empty"] += is_empty(r)
        for q in unknown_queries(args.seed, i):
            r = ask(image, q)
            c["unknown_queries"] += 1
            c["unknown_empty"] += is_empty(r)

    photos = load_photos(args.photos)
    photo_answers: dict[str, dict] = {}
    for k, (name, image) in enumerate(sorted(photos.items())):
        answers = {}
        for q in list(FIXED_UNKNOWN) + unknown_queries(args.seed + 7, k):
            r = ask(image, q)
            c["photo_unknown_queries"] += 1
            c["photo_unknown_empty"] += is_empty(r)
            answers[q] = len(predicted_boxes(r))
        for q in CLASS_NAMES:
            r = ask(image, q)
            c["photo_class_queries"] += 1
            c["photo_class_empty"] += is_empty(r)
            answers[q] = len(predicted_boxes(r))
        r = ask(image, None)  # the whole-scene query: few or no objects, not invented ones
        c["photo_scene_queries"] += 1
        c["photo_scene_empty"] += is_empty(r)
        answers["<scene>"] = len(predicted_boxes(r))
        c["photo_scene_objects"] += answers["<scene>"]
        photo_answers[name] = answers

    def rate(a, b):
        return round(c[a] / c[b], 4) if c[b] else None

    report = {
        "model": parser.model_path,
        "seed": args.seed,
        "num_images": args.num_images,
        "scene_options": {"multi_instance_rate": args.multi_instance_rate, "rotate_rate": args.rotate_rate},
        "multi_instance_recall": rate("multi_matched", "multi_instances"),
        "multi_instance_multi_box": rate("multi_multi_box", "multi_queries"),
        "multi_instance_queries": c["multi_queries"],
        "own_class_recall": rate("own_matched", "own_instances"),
        "absent_empty_rate": rate("absent_empty", "absent_queries"),
        "unknown_empty_rate": rate("unknown_empty", "unknown_queries"),
        "photos": {
            "count": len(photos),
            "unknown_empty_rate": rate("photo_unknown_empty", "photo_unknown_queries"),
            "class_name_empty_rate": rate("photo_class_empty", "photo_class_queries"),
            "scene_empty_rate": rate("photo_scene_empty", "photo_scene_queries"),
            "scene_objects_per_photo": rate("photo_scene_objects", "photo_scene_queries"),
            "boxes_per_query": photo_answers,
        },
        "seconds_per_query": round(statistics.median(times), 4) if times else None,
        "queries": len(times),
        "threads": args.threads,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

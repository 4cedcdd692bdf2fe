"""How much the smart_resize + bicubic pixels differ between Pillow versions (issue 22).

Each Pillow version lives in its own ``--target`` directory (no venv needed, Pillow is
self-contained)::

    for v in 10.4.0 11.3.0 12.3.0 13.0.0; do
        python3 -m pip install -q --no-deps --target /tmp/pil/$v pillow==$v
    done
    python3 benchmarks/bench_pillow_resize.py /tmp/pil/10.4.0 /tmp/pil/11.3.0 /tmp/pil/12.3.0 /tmp/pil/13.0.0

For every image (the shipped ``examples/scene.jpg``, a synthetic training scene, a smooth
gradient and uniform noise) and pixel budget, a child process with that Pillow on its path
resizes to sceneparser's ``smart_resize`` size with ``Image.BICUBIC``; the parent compares the
uint8 results with the first version's: the largest difference in grey levels, the share of
pixels that differ, and the largest difference after the model's normalisation (the unit of
``pixel_values``). Prints a table and, with ``--json``, writes it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
#: (min_pixels, max_pixels): the tiny preset's and the reference's budgets
BUDGETS = {"256x28x28": (4 * 28 * 28, 256 * 28 * 28), "1280x28x28": (4 * 28 * 28, 1280 * 28 * 28)}
STD_MIN = 0.26130258  # the smallest of the CLIP stds: the largest pixel_values step per grey level

CHILD = r"""
import json, sys
import numpy as np
from PIL import Image
from sceneparser.model.processor import smart_resize
src, out, budgets = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
result = {"pillow": Image.__version__}
for name, (lo, hi) in budgets.items():
    for path in json.loads(src):
        im = Image.open(path).convert("RGB")
        h, w = smart_resize(im.height, im.width, 28, lo, hi)
        arr = np.asarray(im.resize((w, h), Image.BICUBIC))
        np.save(out + "/" + path.split("/")[-1] + "_" + name + ".npy", arr)
print(json.dumps(result))
"""


def make_images(tmp: Path) -> list[str]:
    from PIL import Image

    from sceneparser.data.synth import generate_dataset

    rng = np.random.default_rng(0)
    paths = [str(ROOT / "examples" / "scene.jpg")]
    generate_dataset(tmp / "synth", num_images=1, seed=3, image_size=(640, 480), val_fraction=0.0)
    paths += [str(p) for p in sorted((tmp / "synth").rglob("*.jpg"))[:1] + sorted((tmp / "synth").rglob("*.png"))[:1]]
    y, x = np.mgrid[0:480, 0:640]
    grad = np.stack([x * 255 // 639, y * 255 // 479, (x + y) * 255 // 1118], -1).astype(np.uint8)
    Image.fromarray(grad).save(tmp / "gradient.png")
    Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(tmp / "noise.png")
    return paths + [str(tmp / "gradient.png"), str(tmp / "noise.png")]


def run(dirs: list[str]) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        images = make_images(tmp)
        arrays = {}
        versions = []
        for d in dirs:
            out = tmp / Path(d).name
            out.mkdir()
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([d, str(ROOT)])}
            proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(images), str(out), json.dumps(BUDGETS)],
                                  capture_output=True, text=True, env=env, check=True)
            versions.append(json.loads(proc.stdout.strip().splitlines()[-1])["pillow"])
            arrays[versions[-1]] = {p.stem: np.load(p) for p in out.glob("*.npy")}
        base = versions[0]
        rows = []
        for version in versions[1:]:
            for key, ref in sorted(arrays[base].items()):
                other = arrays[version][key]
                diff = np.abs(ref.astype(np.int16) - other.astype(np.int16))
                rows.append({
                    "image": key, "base": base, "pillow": version, "shape": list(ref.shape),
                    "max_grey_levels": int(diff.max()), "share_differing": round(float((diff > 0).mean()), 4),
                    "max_pixel_values": round(float(diff.max()) / 255.0 / STD_MIN, 4),
                })
        return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dirs", nargs="+", help="--target directories of Pillow versions; the first is the baseline")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    rows = run(args.dirs)
    for r in rows:
        print(f"{r['image']:<32} {r['base']} vs {r['pillow']:<7} max {r['max_grey_levels']:>3} grey levels, "
              f"{100 * r['share_differing']:5.1f}% of values differ, pixel_values {r['max_pixel_values']}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Issue 17: `sceneparser convert` leaves nothing behind and says what it stored.

Killed runs (temporary folders removed by the next run, workers die with their parent), images
that declare too many pixels, damaged compressed data, duplicate records. Every test also checks
that nothing is written outside the output folder.
"""

from __future__ import annotations

import json
import os
import random
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from sceneparser.cli import main as cli_main
from sceneparser.data import convert as C
from sceneparser.data.synth import generate_dataset
from sceneparser.data.tsv import TMP_PREFIX, TSVReader, TSVWriter, validate_tsv

ROOT = Path(__file__).resolve().parents[2]


def _read_jsonl(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _tree(root: Path, skip: Path) -> set[str]:
    """Every path under ``root`` except those under ``skip`` (the output folder)."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if skip not in p.parents and p != skip}


def _leftovers(out: Path) -> list[str]:
    return [p.name for p in out.iterdir() if p.name.startswith(TMP_PREFIX)]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_declaring(width: int, height: int) -> bytes:
    """A few hundred bytes that claim to be a width x height RGB PNG."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _png_chunk(b"IEND", b""))


def _alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


@pytest.fixture()
def dataset(tmp_path, synth_dir):
    """A JSONL of the session's synth records in ``tmp_path/in`` (image_root: the synth folder)."""
    src = tmp_path / "in"
    src.mkdir()
    return src, _read_jsonl(synth_dir / "train.jsonl")


# --------------------------------------------------------------------------------------------
# Temporary folders of killed runs
# --------------------------------------------------------------------------------------------


def test_rerun_removes_dead_writers_folders_and_keeps_live_ones(synth_dir, tmp_path):
    out = tmp_path / "out"
    live = TSVWriter(out)  # a writer still running in this folder
    dead = out / f"{TMP_PREFIX}dead"  # a killed writer: lock file present, nobody holds the lock
    dead.mkdir()
    (dead / ".owner.lock").write_bytes(b"")
    (dead / "images.tsv").write_bytes(b"x" * 1000)
    old = out / f"{TMP_PREFIX}old"  # made by a version without the lock file, long ago
    old.mkdir()
    (old / "images.tsv").write_bytes(b"x")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    fresh = out / f"{TMP_PREFIX}fresh"  # no lock file yet, just created: could be a writer starting
    fresh.mkdir()
    try:
        s = C.convert_jsonl(synth_dir / "val.jsonl", out, image_root=synth_dir, validate=True)
        assert s.validation == []
        assert sorted(Path(p).name for p in s.removed_temp_dirs) == [dead.name, old.name]
        assert sorted(_leftovers(out)) == sorted([fresh.name, live.tmp_dir.name])
    finally:
        live.abort()
    assert _leftovers(out) == [fresh.name]


def _kill_mid_run(jsonl: Path, image_root: Path, out: Path) -> tuple[int, list[int]]:
    """Start `sceneparser convert --workers 2`, wait until both workers write, kill -9 the parent.
    Returns (parent pid, worker pids), or (pid, []) if the run ended before it could be killed."""
    cmd = [sys.executable, "-m", "sceneparser.cli", "convert", "--json-file", str(jsonl), "--out-dir", str(out),
           "--image-root", str(image_root), "--workers", "2", "--no-progress", "--verify-images",
           "--reencode-jpeg-quality", "75"]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    workers: list[int] = []
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        # each worker's initializer opens its spill file "spill-<pid>.b64" in the temporary folder
        workers = sorted({int(p.name[6:-4]) for d in out.glob(f"{TMP_PREFIX}*") for p in d.glob("spill-*.b64")})
        if len(workers) == 2 and any(d.stat().st_size for d in out.glob(f"{TMP_PREFIX}*/images.tsv")):
            break
        time.sleep(0.005)
    if proc.poll() is not None:
        return proc.pid, []
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    return proc.pid, workers


def test_kill_9_parent_workers_exit_and_rerun_leaves_nothing(tmp_path):
    root = tmp_path / "synth"
    generate_dataset(root, num_images=24, seed=5, image_size=(480, 360), val_fraction=0.0)
    records = _read_jsonl(root / "train.jsonl")
    out = tmp_path / "out"
    before = _tree(tmp_path, out)
    n = 300
    for _attempt in range(4):  # a fast machine may finish before the kill: then more records
        jsonl = tmp_path / "synth" / f"big{n}.jsonl"
        jsonl.write_text("".join(json.dumps(records[i % len(records)]) + "\n" for i in range(n)))
        before = _tree(tmp_path, out)
        _, workers = _kill_mid_run(jsonl, root, out)
        if workers:
            break
        n *= 4
    assert workers, "convert always finished before it could be killed"
    assert _leftovers(out), "the killed run should have left its temporary folder"
    deadline = time.time() + 5
    while time.time() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.05)
    assert not [w for w in workers if _alive(w)], "workers outlived their killed parent"

    s = C.convert_jsonl(jsonl, out, image_root=root, workers=2, validate=True)
    assert len(s.removed_temp_dirs) == 1
    assert _leftovers(out) == []
    assert s.written == n and s.validation == [] and validate_tsv(out).ok
    assert _tree(tmp_path, out) == before  # nothing written outside --out-dir


# --------------------------------------------------------------------------------------------
# Images: pixel limit, damaged compressed data
# --------------------------------------------------------------------------------------------


def test_png_declaring_900_mpixels_is_skipped_before_decoding(dataset, synth_dir, tmp_path):
    src, recs = dataset
    (src / "bomb.png").write_bytes(_png_declaring(30_000, 30_000))
    obj = {"phrase": "mug", "object_bbox": [1, 1, 20, 20], "parts": []}
    lines = [recs[0], {"image_path": str(src / "bomb.png"), "objects": [obj]}, recs[1]]
    (src / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    out = tmp_path / "out"
    before = _tree(tmp_path, out)
    s = C.convert_jsonl(src / "in.jsonl", out, image_root=synth_dir, validate=True)
    assert (s.written, s.skipped, s.validation) == (2, 1, [])
    (skip,) = _read_jsonl(out / "skipped.jsonl")
    assert skip["line"] == 2 and "too many pixels" in skip["reasons"][0] and "30000x30000" in skip["reasons"][0]
    assert s.skip_reasons == {"too many pixels": 1}
    assert _tree(tmp_path, out) == before


def test_pixel_limit_applies_to_every_format_and_zero_lifts_it(dataset, synth_dir, tmp_path):
    src, recs = dataset
    from PIL import Image

    Image.new("RGB", (64, 48), (1, 2, 3)).save(src / "small.gif")
    obj = {"phrase": "mug", "object_bbox": [1, 1, 20, 20], "parts": []}
    lines = [recs[0], {"image_path": str(src / "small.gif"), "objects": [obj]}]
    (src / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    s = C.convert_jsonl(src / "in.jsonl", tmp_path / "a", image_root=synth_dir, max_image_pixels=1000)
    assert (s.written, s.skipped) == (0, 2)  # the 160x120 JPEG and the 64x48 GIF are both over 1000
    assert all("too many pixels" in r["reasons"][0] for r in _read_jsonl(tmp_path / "a" / "skipped.jsonl"))
    s = C.convert_jsonl(src / "in.jsonl", tmp_path / "b", image_root=synth_dir, max_image_pixels=0)
    assert (s.written, s.skipped) == (2, 0)
    rc = cli_main(["convert", "--json-file", str(src / "in.jsonl"), "--out-dir", str(tmp_path / "c"),
                   "--image-root", str(synth_dir), "--max-image-pixels", "-1", "--no-progress"])
    assert rc == 2 and not (tmp_path / "c").exists()


def _damaged_jpeg(data: bytes, kind: str) -> bytes:
    b = bytearray(data)
    sos = data.find(b"\xff\xda")
    mid = (sos + len(data)) // 2
    if kind == "random":
        rng = random.Random(0)
        b[mid:mid + 1500] = bytes(rng.randrange(256) for _ in range(1500))
    else:  # zeros keep the marker structure: only a decoder could tell
        b[mid:mid + 1500] = bytes(1500)
    return bytes(b)


def test_damaged_image_data_is_a_warning_and_verify_images_decides(dataset, synth_dir, tmp_path):
    src, recs = dataset
    jpeg = (synth_dir / recs[0]["image_path"]).read_bytes()
    (src / "random.jpg").write_bytes(_damaged_jpeg(jpeg, "random"))
    (src / "zeros.jpg").write_bytes(_damaged_jpeg(jpeg, "zeros"))
    from PIL import Image

    Image.new("RGB", (64, 48), (9, 9, 9)).save(src / "ok.png")
    png = bytearray((src / "ok.png").read_bytes())
    i = png.find(b"IDAT") + 6
    png[i] ^= 0xFF  # one byte of the compressed pixels: the chunk's CRC no longer matches
    (src / "crc.png").write_bytes(bytes(png))
    lines = [dict(recs[0], image_path=str(src / n)) for n in ("random.jpg", "zeros.jpg", "crc.png")]
    (src / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    out = tmp_path / "out"
    before = _tree(tmp_path, out)

    s = C.convert_jsonl(src / "in.jsonl", out, image_root=synth_dir)
    assert (s.written, s.skipped) == (3, 0)
    warns = {w["line"]: w["message"] for w in _read_jsonl(out / "warnings.jsonl") if "corrupt" in w["message"]}
    assert warns[1].startswith("corrupt JPEG data (marker 0xFF") and "--verify-images" in warns[1]
    assert 2 not in warns  # a zeroed block keeps the marker structure: the cheap check cannot tell
    assert warns[3].startswith("corrupt PNG data (CRC mismatch in the 'IDAT' chunk")
    assert s.warning_reasons.get("corrupt JPEG data") == 1 and s.warning_reasons.get("corrupt PNG data") == 1

    s = C.convert_jsonl(src / "in.jsonl", out, image_root=synth_dir, verify_images=True)
    skipped = {r["line"] for r in _read_jsonl(out / "skipped.jsonl")}
    assert 1 in skipped and 2 not in skipped  # the full decode refuses what the cheap check flagged
    assert _tree(tmp_path, out) == before and _leftovers(out) == []


def test_inspect_image_reports_damage_and_pixels():
    data = _png_declaring(30_000, 30_000)
    assert C.inspect_image(data).width == 30_000  # no limit given: header only
    with pytest.raises(C.ImageProblem, match="too many pixels"):
        C.inspect_image(data, max_pixels=12_000 * 12_000)
    assert C.inspect_image(_png_declaring(8, 8)).damage is None


# --------------------------------------------------------------------------------------------
# Duplicate records
# --------------------------------------------------------------------------------------------


def test_duplicate_records_are_reported_and_kept(dataset, synth_dir, tmp_path):
    src, recs = dataset
    other_objects = dict(recs[0], objects=recs[1]["objects"])  # same image, other objects: not a duplicate
    respelled = dict(recs[0], image_path="./" + recs[0]["image_path"].replace("/", "//"))  # same file
    lines = [recs[0], recs[1], recs[0], other_objects, recs[1], respelled]
    (src / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    out = tmp_path / "out"
    for workers, chunk in ((1, 32), (2, 2)):
        s = C.convert_jsonl(src / "in.jsonl", out, image_root=synth_dir, workers=workers, chunk_size=chunk)
        assert s.written == 6 and len(TSVReader(out)) == 6
        dups = {w["line"]: w["message"] for w in _read_jsonl(out / "warnings.jsonl") if "duplicate" in w["message"]}
        assert dups == {3: "duplicate record: the same image file and objects as line 1",
                        5: "duplicate record: the same image file and objects as line 2",
                        6: "duplicate record: the same image file and objects as line 1"}
        assert s.warning_reasons["duplicate record"] == 3

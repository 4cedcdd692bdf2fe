"""``sceneparser metrics`` on damaged answer files: seeded random byte mutations of a valid file.

With ``--skip-invalid`` every unusable line (bad UTF-8, bad JSON, bad fields) is left out and
counted by line number, exit 0; without it the first one is exit 2 naming its line. Never exit 1,
never a traceback. Also: GT masks that are missing or unreadable are reported on stderr.
"""

import json
import random
import re

import pytest

from sceneparser.cli import main
from sceneparser.evaluation.metrics import ObjectLevelMetric, evaluate_file, result_text
from tests.evaluation.metrics.golden_inputs import answer_lines

N_FILES = 200
NOISE = [b"\xff", b"\xc3", b"\xe9", b"\n", b"\r", b'"', b"{", b"}", b"[", b"]", b",", b":", b"-", b"9", b"e",
         b"null", b"NaN", b"\\u", b"\\ud800", b"1e999", b" ", b"\x00", b"\xef\xbb\xbf"]


def _valid_file() -> bytes:
    lines = answer_lines(7, 8, broken=0)
    return "".join(json.dumps(s, ensure_ascii=bool(i % 2)) + "\n" for i, s in enumerate(lines)).encode()


def _mutate(data: bytes, r: random.Random) -> bytes:
    """1-6 random edits: flip a byte, insert noise, delete a span, duplicate a span, truncate."""
    buf = bytearray(data)
    for _ in range(r.randint(1, 6)):
        kind = r.randrange(5)
        i = r.randrange(len(buf) + 1)
        if kind == 0 and i < len(buf):
            buf[i] = r.randrange(256)
        elif kind == 1:
            buf[i:i] = r.choice(NOISE)
        elif kind == 2:
            del buf[i:i + r.randint(1, 40)]
        elif kind == 3:
            buf[i:i] = buf[max(0, i - 30):i]
        elif r.random() < 0.3:
            del buf[max(i, len(buf) // 2):]
    return bytes(buf)


def _run(tmp_path, data: bytes, *flags: str) -> int:
    path = tmp_path / "answer.jsonl"
    path.write_bytes(data)
    rc = main(["metrics", "--data-path", str(path), "--output-path", str(tmp_path / "r.json"), *flags])
    return rc


@pytest.mark.parametrize("chunk", range(4))
def test_mutated_files_never_crash(tmp_path, capsys, chunk):
    base = _valid_file()
    n_all_bad = 0
    for seed in range(chunk * N_FILES // 4, (chunk + 1) * N_FILES // 4):
        data = _mutate(base, random.Random(seed))
        flags = ["--ignore-pseudo-part", "--ignore-none-action"] if seed % 2 else []
        if seed % 5 == 0:
            flags.append("--level=scene")

        rc = _run(tmp_path, data, *flags)
        err = capsys.readouterr().err
        assert "Traceback" not in err, (seed, err)
        assert rc in (0, 2), (seed, rc, err)
        if rc == 2:
            assert re.search(r"line \d+", err) or "empty" in err, (seed, err)

        rc = _run(tmp_path, data, "--skip-invalid", *flags)
        err = capsys.readouterr().err
        assert "Traceback" not in err, (seed, err)
        if rc == 2:  # no usable line at all: nothing to score, said so
            assert re.search(r"empty|all \d+ answer lines? unusable; nothing to score", err), (seed, err)
            n_all_bad += 1
            continue
        assert rc == 0, (seed, err)
        shown = re.search(r"skipped (\d+) unusable lines?: ", err)
        n_skipped = len(re.findall(r"^skipped: ", err, re.M))
        assert (int(shown.group(1)) if shown else 0) == n_skipped, (seed, err)
    assert n_all_bad <= 5  # the files keep most of their lines


def test_skip_invalid_counts_and_names_every_kind_of_bad_line(tmp_path, capsys):
    good = answer_lines(3, 1, broken=0)[0]
    lines = [json.dumps(good).encode(), b'{"gt": ', b'{"category": "caf\xe9"}', json.dumps(good).encode(),
             json.dumps({"gt": {"objects": 5}}).encode(), b"NaN]", json.dumps(good).encode()]
    data = b"\n".join(lines) + b"\n"
    assert _run(tmp_path, data) == 2
    assert "line 2: not valid JSON" in capsys.readouterr().err
    assert _run(tmp_path, data, "--skip-invalid") == 0
    err = capsys.readouterr().err
    assert "skipped 4 unusable lines: 2-3, 5-6" in err
    assert "line 3: not valid UTF-8" in err and "line 5: gt.objects" in err
    m = ObjectLevelMetric()
    for _ in range(3):
        m.update(good)
    assert (tmp_path / "r.json").read_text(encoding="utf-8") == result_text(m.result())


def _mask_sample(mask_path: str) -> dict:
    aff = {"action": "grasp", "affordance_bbox": [0, 0, 4, 4], "mask_path": mask_path}
    part = {"part_name": "handle", "bbox": [0, 0, 10, 10], "affordances": [aff, dict(aff)]}
    pred = {"part_name": "handle", "bbox": [0, 0, 10, 10], "affordances": [{"action": "grasp", "point": [2, 2]}]}
    return {"gt": {"objects": [{"name": "mug", "bbox": [0, 0, 10, 10], "parts": [part]}]},
            "extracted_predictions": {"objects": [{"name": "mug", "bbox": [0, 0, 10, 10], "parts": [pred]}]}}


@pytest.mark.parametrize("level", ["object", "scene"])
def test_missing_and_unreadable_masks_are_reported_and_scored_with_the_box(tmp_path, capsys, level):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    rows = [_mask_sample("broken.png"), _mask_sample("nowhere.png"), _mask_sample("broken.png")]
    data = tmp_path / "answer.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    stats: dict = {}
    with_masks = evaluate_file(data, level, mask_root=tmp_path, stats=stats)
    assert stats["masks"] == {"missing": {"affordances": 2, "files": 1, "example": "nowhere.png"},
                              "unreadable": {"affordances": 4, "files": 1, "example": "broken.png"}}
    no_masks = [json.loads(json.dumps(r).replace('"broken.png"', "null").replace('"nowhere.png"', "null"))
                for r in rows]
    plain = tmp_path / "plain.jsonl"
    plain.write_text("".join(json.dumps(r) + "\n" for r in no_masks), encoding="utf-8")
    assert result_text(with_masks) == result_text(evaluate_file(plain, level))  # scores: the box, unchanged

    out = tmp_path / "r.json"
    rc = main(["metrics", "--data-path", str(data), "--output-path", str(out), "--mask-root", str(tmp_path),
               "--level", level])
    err = capsys.readouterr().err
    assert rc == 0
    assert ("warning: GT affordances scored with their box instead of the mask: 2 with a missing mask "
            "(1 file, e.g. nowhere.png); 4 with a present but unreadable mask (1 file, e.g. broken.png)") in err
    assert out.read_text(encoding="utf-8") == result_text(with_masks)  # the reference format, no new key
    rc = main(["metrics", "--data-path", str(plain), "--output-path", str(out), "--level", level])
    assert rc == 0 and "warning" not in capsys.readouterr().err

"""The crash-safe answer files and the run manifest behind ``sceneparser eval``'s resume."""

from __future__ import annotations

import json
import os

import pytest

from sceneparser.errors import InputError
from sceneparser.evaluation import answers, manifest


def _row(i, cat="mug"):
    return {"image_path": f"img/{i}.png", "category": cat, "record_index": i, "raw_response": "é" * i}


def test_append_then_reopen_round_trips(tmp_path):
    path = tmp_path / "parts" / "a.jsonl"
    with answers.AnswerWriter(path) as w:
        assert w.existing == []
        assert w.append([_row(0), _row(1)]) == 2
        assert w.append([]) == 0
        w.append([_row(2)])
    with answers.AnswerWriter(path) as w:
        assert w.existing == [_row(0), _row(1), _row(2)]
        assert w.dropped_tail_bytes == 0
    assert answers.read_answers(path) == [_row(0), _row(1), _row(2)]
    assert [answers.sample_key(r) for r in answers.read_answers(path)] == [
        (0, "img/0.png", "mug"), (1, "img/1.png", "mug"), (2, "img/2.png", "mug")
    ]


@pytest.mark.parametrize("cut", [1, 5, -1])
def test_torn_tail_is_ignored_by_readers_and_dropped_by_the_writer(tmp_path, cut):
    path = tmp_path / "a.jsonl"
    good = answers.encode_line(_row(0)) + answers.encode_line(_row(1))
    torn = answers.encode_line(_row(2))[:cut]  # a kill in the middle of the last write
    path.write_bytes(good + torn)
    assert answers.read_answers(path) == [_row(0), _row(1)]
    assert path.read_bytes() == good + torn  # readers never modify a file
    with answers.AnswerWriter(path) as w:
        assert w.existing == [_row(0), _row(1)]
        assert w.dropped_tail_bytes == len(torn)
        w.append([_row(2)])
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(x) for x in lines] == [_row(0), _row(1), _row(2)]  # no duplicate, no corruption


def test_corrupt_complete_line_is_refused_with_its_line_number(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(answers.encode_line(_row(0)) + b"{not json}\n" + answers.encode_line(_row(1)))
    with pytest.raises(InputError, match=r"a.jsonl:2: .*--overwrite"):
        answers.read_answers(path)


def test_second_writer_on_the_same_file_is_refused(tmp_path):
    path = tmp_path / "a.jsonl"
    with answers.AnswerWriter(path):
        with pytest.raises(InputError, match="another sceneparser eval"):
            answers.AnswerWriter(path).open()


def _manifest(tmp_path, *, data_text="{}\n", settings=None, model_bytes=b"w"):
    data = tmp_path / "val.jsonl"
    data.write_text(data_text)
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "model.safetensors").write_bytes(model_bytes)
    return manifest.build_manifest(model=model, data=data, settings=settings or {"level": "object"})


def test_manifest_guards_resume(tmp_path):
    out = tmp_path / "out"
    m = _manifest(tmp_path)
    assert manifest.check_or_write(out, m) is False  # fresh
    assert manifest.read_manifest(out)["settings"] == {"level": "object"}
    assert manifest.check_or_write(out, m) is True  # same run: resume
    (out / "parts").mkdir()
    (out / "parts" / answers.shard_file_name(0, 1)).write_text("")
    (out / "notes.txt").write_text("mine")

    for other, what in [
        (_manifest(tmp_path, settings={"level": "scene"}), "level"),
        (_manifest(tmp_path, data_text='{"a": 1}\n'), "data"),
        (_manifest(tmp_path, model_bytes=b"other weights"), "model"),
    ]:
        with pytest.raises(InputError, match=f"{what}.*--overwrite"):
            manifest.check_or_write(out, other)
        assert (out / "parts").is_dir()  # nothing lost on refusal
    other = _manifest(tmp_path, settings={"level": "scene"})
    assert manifest.check_or_write(out, other, overwrite=True) is False
    assert not (out / "parts").exists()
    assert (out / "notes.txt").read_text() == "mine"  # only eval's own files are removed
    assert manifest.read_manifest(out)["settings"] == {"level": "scene"}


def test_directory_from_another_program_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "answer.jsonl").write_text('{"gt": {}}\n')  # e.g. the reference driver's output
    m = _manifest(tmp_path)
    with pytest.raises(InputError, match="answer.jsonl.*--overwrite"):
        manifest.check_or_write(out, m)
    assert manifest.check_or_write(out, m, overwrite=True) is False
    assert not (out / "answer.jsonl").exists()


def test_model_fingerprint_tracks_content_not_mtime(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text("{}")
    fp = manifest.model_fingerprint(d)
    os.utime(d / "config.json", (1, 1))
    assert manifest.model_fingerprint(d) == fp
    (d / "config.json").write_text('{"a": 1}')
    assert manifest.model_fingerprint(d) != fp
    assert manifest.model_fingerprint("org/name") == "id:org/name"

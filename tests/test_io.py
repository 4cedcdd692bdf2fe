"""sceneparser.io: the one atomic-write helper."""

import json

import pytest

from sceneparser import io as atomic


def test_writers_round_trip_and_leave_no_temporary_file(tmp_path):
    n = atomic.write_jsonl(tmp_path / "a" / "x.jsonl", [{"k": "é"}, {"k": 2}])
    assert n == 2
    assert (tmp_path / "a" / "x.jsonl").read_text(encoding="utf-8") == '{"k": "é"}\n{"k": 2}\n'
    atomic.write_json(tmp_path / "x.json", {"L1": 0.5})
    assert json.loads((tmp_path / "x.json").read_text()) == {"L1": 0.5}
    atomic.write_text(tmp_path / "t.txt", "a\nb")
    atomic.write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "t.txt").read_bytes() == b"a\nb"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_a_failed_write_keeps_the_old_content(tmp_path):
    target = tmp_path / "x.json"
    target.write_text("old")

    def rows():
        yield {"a": 1}
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic.write_jsonl(target, rows())
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_bad_mode_is_refused(tmp_path):
    with pytest.raises(ValueError):
        with atomic.atomic_open(tmp_path / "x", "a"):
            pass


def test_files_get_the_usual_permissions_not_mkstemps_0600(tmp_path):
    atomic.write_text(tmp_path / "a.txt", "x")
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~atomic._UMASK

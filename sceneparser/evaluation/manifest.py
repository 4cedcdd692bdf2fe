"""The run manifest of ``sceneparser eval``: which model, data and settings an output dir holds.

Resuming appends to the answers already in ``--out``; that is only sound when they came from the
same model, the same val file and the same answer-changing settings. :func:`check_or_write`
compares the stored manifest with the current one and refuses a mismatch (or a directory that
another program wrote) unless ``overwrite`` is set, in which case only the files that
``sceneparser eval`` itself writes are removed.

Fingerprints: the val file by its SHA-256 (moving it is fine, editing it is not); a model
directory by the names and sizes of its files plus a SHA-256 of the small ones and of the first
and last MiB of the large ones (hashing multi-GB weights in full would take longer than a
resume saves); a hub id by its name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from sceneparser import __version__
from sceneparser import io as atomic
from sceneparser.errors import InputError

MANIFEST_NAME = "manifest.json"
PARTS_DIR = "parts"
# Everything eval writes into --out; --overwrite removes exactly these.
OWNED_OUTPUTS = (
    MANIFEST_NAME,
    "answer.jsonl",
    "eval_results_full.json",
    "eval_results_filtered.json",
    "final_metrics.json",
    "eval_summary.json",
)
_SMALL = 8 << 20
_EDGE = 1 << 20


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_fingerprint(model: str | os.PathLike | None) -> str:
    """A cheap, content-based fingerprint of a model directory (or the id string otherwise)."""
    if model is None:
        return "none"
    path = Path(model)
    if not path.is_dir():
        return f"id:{model}"
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        if rel.startswith(".") or "/." in rel:
            continue
        size = f.stat().st_size
        h.update(f"{rel}\0{size}\0".encode())
        with open(f, "rb") as fh:
            if size <= _SMALL:
                h.update(fh.read())
            else:
                h.update(fh.read(_EDGE))
                fh.seek(size - _EDGE)
                h.update(fh.read(_EDGE))
    return h.hexdigest()


def build_manifest(*, model: str | os.PathLike | None, data: str | os.PathLike, settings: dict) -> dict:
    """The manifest for a run: fingerprints plus the settings that change answers."""
    return {
        "format": 1,
        "model": {"path": str(model), "fingerprint": model_fingerprint(model)},
        "data": {"path": str(Path(data).resolve()), "sha256": file_sha256(data)},
        "settings": dict(settings),
        "sceneparser_version": __version__,
    }


def _differences(old: dict, new: dict) -> list[str]:
    diffs = []
    if old.get("model", {}).get("fingerprint") != new["model"]["fingerprint"]:
        diffs.append(f"model: {old.get('model', {}).get('path')!s} -> {new['model']['path']}")
    if old.get("data", {}).get("sha256") != new["data"]["sha256"]:
        diffs.append(f"data: {old.get('data', {}).get('path')!s} -> {new['data']['path']} (content differs)")
    old_s, new_s = old.get("settings", {}), new["settings"]
    for key in sorted(set(old_s) | set(new_s)):
        if old_s.get(key) != new_s.get(key):
            diffs.append(f"{key}: {old_s.get(key)!r} -> {new_s.get(key)!r}")
    return diffs


def clear_outputs(out_dir: Path) -> None:
    """Remove what ``sceneparser eval`` writes into ``out_dir`` (and nothing else)."""
    for name in OWNED_OUTPUTS:
        for p in (out_dir / name, out_dir / (name + ".tmp")):
            if p.is_file():
                p.unlink()
    parts = out_dir / PARTS_DIR
    if parts.is_dir():
        shutil.rmtree(parts)


def check_or_write(out_dir: str | os.PathLike, manifest: dict, *, overwrite: bool = False) -> bool:
    """Validate ``out_dir`` against ``manifest``; write it when new. Returns True when resuming.

    Raises :class:`InputError` when ``out_dir`` holds another run (different model, data or
    settings) or files that ``sceneparser eval`` did not write, unless ``overwrite``.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} exists and is not a directory")
    path = out_dir / MANIFEST_NAME
    resuming = False
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(old, dict):
                raise ValueError("not an object")
        except (ValueError, OSError) as exc:
            old = None
            problem = f"its {MANIFEST_NAME} is unreadable ({exc})"
        else:
            diffs = _differences(old, manifest)
            problem = "it holds a run with other " + "; ".join(diffs) if diffs else ""
        if not problem:
            resuming = True
        elif overwrite:
            clear_outputs(out_dir)
        else:
            raise InputError(
                f"--out {out_dir}: {problem}. Use another --out, or pass --overwrite to discard "
                "those answers and start afresh."
            )
    elif out_dir.is_dir():
        ours = [n for n in (*OWNED_OUTPUTS, PARTS_DIR) if (out_dir / n).exists()]
        if ours:
            if not overwrite:
                raise InputError(
                    f"--out {out_dir} already holds results ({', '.join(ours)}) that are not from a "
                    "sceneparser eval run with a manifest. Use another --out, or pass --overwrite "
                    "to replace them."
                )
            clear_outputs(out_dir)
    if not resuming:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic.write_json(path, manifest, indent=2)
    return resuming


def read_manifest(out_dir: str | os.PathLike) -> dict[str, Any] | None:
    path = Path(out_dir) / MANIFEST_NAME
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))

"""The documentation stands alone and its examples run as written.

* Every fenced ```` ```bash ```` / ```` ```python ```` block of ``README.md`` and ``docs/*.md`` that
  uses the shipped example image runs, in a temporary directory that holds a copy of
  ``examples/``. A block that must not run (GPU, vLLM, a running server, a download) carries an
  HTML comment ``<!-- no-test ... -->`` on the line before its fence.
* The request and response examples of ``docs/serving.md`` use the field names that
  ``sceneparser/serve/schemas.py`` defines and that the running service returns.
* ``docs/reference.md`` quotes the prompts and constants of the code byte for byte, and keeps the
  section names that code comments cite.
* Links between the documents resolve; nothing cites the private reference notes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import typing
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLE_IMAGE = "examples/scene.jpg"
REFERENCE_SECTIONS = (
    "prompts", "coordinates", "resize", "decoding", "parser", "object-metric", "scene-metric",
    "filters", "final-metrics", "tokenizer", "mrope", "training-data", "training", "known-bugs",
)
SETUP_COMMANDS = (
    "pip install torch==2.13.0 && pip install -e . && sceneparser parse examples/scene.jpg "
    "-q mug -q bottle -q pan --out scene.json --viz scene.png --tree",
    "bash scripts/test.sh",
)

_FENCE = re.compile(r"^```\s*([\w+-]*)\s*$")
_COMMENT = re.compile(r"^<!--\s*(.*?)\s*-->$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    marker: str | None  # the HTML comment on the line before the fence, if any

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def skipped(self) -> bool:
        return self.marker is not None and self.marker.startswith("no-test")


def read_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start = i
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        prev = lines[start - 1].strip() if start > 0 else ""
        c = _COMMENT.match(prev)
        text = "\n".join(lines[start + 1 : j]) + "\n"
        blocks.append(Block(path, start + 1, m.group(1).lower(), text, c.group(1) if c else None))
        i = j + 1
    return blocks


ALL_BLOCKS = [b for p in DOC_FILES for b in read_blocks(p)]
EXAMPLE_BLOCKS = [b for b in ALL_BLOCKS if b.lang in ("bash", "sh", "python") and EXAMPLE_IMAGE in b.text]
RUNNABLE = [b for b in EXAMPLE_BLOCKS if not b.skipped]


def marked(path: Path, prefix: str) -> list[tuple[str, Block]]:
    """(argument, block) for every block whose marker reads ``<prefix>: <argument>``."""
    out = []
    for b in read_blocks(path):
        if b.marker and b.marker.startswith(prefix + ":"):
            out.append((b.marker[len(prefix) + 1 :].strip(), b))
    return out


# ------------------------------------------------------------------------------------------
# the examples run
# ------------------------------------------------------------------------------------------


def _env(tmp_path: Path) -> dict:
    bindir = tmp_path / "_bin"
    bindir.mkdir(exist_ok=True)
    for name in ("python", "python3"):  # the blocks' `python` is this interpreter
        link = bindir / name
        if not link.exists():
            link.symlink_to(sys.executable)
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(bindir), str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env["SCENEPARSER_CACHE"] = str(tmp_path / "_cache")
    return env


def test_the_examples_are_found_and_few_are_skipped():
    readme = [b for b in RUNNABLE if b.path.name == "README.md"]
    assert {b.lang for b in readme} >= {"bash", "python"}, "the README must keep a runnable CLI and Python example"
    assert len(RUNNABLE) >= 6
    skipped = [b.id for b in ALL_BLOCKS if b.skipped]
    # GPU, vLLM / SGLang, a running server, downloads, the released checkpoint, the whole suite
    assert len(skipped) <= 16, f"too many blocks marked no-test: {skipped}"


@pytest.mark.slow
@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_example_block_runs(block: Block, tmp_path: Path):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    if block.lang == "python":
        cmd = [sys.executable, "-c", block.text]
    else:
        cmd = ["bash", "-euo", "pipefail", "-c", block.text]
    proc = subprocess.run(cmd, cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (
        f"{block.id} failed (exit {proc.returncode}):\n{block.text}\n--- stdout\n{proc.stdout[-3000:]}"
        f"\n--- stderr\n{proc.stderr[-3000:]}"
    )


def test_readme_is_short_and_keeps_the_setup_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 220
    lines = text.splitlines()
    for command in SETUP_COMMANDS:
        assert command in lines, f"the README must keep this set-up command verbatim: {command}"


# ------------------------------------------------------------------------------------------
# the serving doc's schemas
# ------------------------------------------------------------------------------------------

SERVING = ROOT / "docs" / "serving.md"


def _models_in(annotation) -> list[type]:
    """Pydantic model classes inside an annotation (through Optional, Union, list, Annotated)."""
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type] = []
    for arg in typing.get_args(annotation):
        out += _models_in(arg)
    return out


def _pick_model(value: dict, candidates: list[type]) -> type | None:
    for model in candidates:  # a literal "type" discriminates first, then the key set
        field = model.model_fields.get("type")
        if field is not None and typing.get_origin(field.annotation) is typing.Literal:
            if value.get("type") in typing.get_args(field.annotation):
                return model
    for model in candidates:
        if set(value) <= set(model.model_fields):
            return model
    return None


def _check_against_model(value, model, path: str, *, exact: bool) -> None:
    assert isinstance(value, dict), f"{path}: expected a JSON object"
    fields = model.model_fields
    unknown = set(value) - set(fields)
    assert not unknown, f"{path}: the doc names fields {sorted(unknown)} that {model.__name__} does not define"
    if exact:
        assert set(value) == set(fields), f"{path}: {model.__name__} defines {sorted(fields)}, the doc shows {sorted(value)}"
    for key, item in value.items():
        nested = _models_in(fields[key].annotation)
        if not nested:
            continue
        for i, element in enumerate(item if isinstance(item, list) else [item]):
            if not isinstance(element, dict):
                continue
            sub = _pick_model(element, nested)
            assert sub is not None, f"{path}.{key}[{i}]: no schema of {[m.__name__ for m in nested]} fits {sorted(element)}"
            _check_against_model(element, sub, f"{path}.{key}[{i}]", exact=False)


def test_serving_request_examples_use_the_schema_fields():
    pytest.importorskip("pydantic")
    from sceneparser.serve import schemas

    blocks = marked(SERVING, "schema")
    assert {name for name, _ in blocks} >= {"ParseRequest", "ChatCompletionRequest"}
    for name, block in blocks:
        model = getattr(schemas, name)
        data = json.loads(block.text)
        _check_against_model(data, model, f"{block.id} {name}", exact=True)
        model.model_validate(data)  # and the example is a valid request


def _same_keys(doc, live, path: str) -> None:
    if isinstance(doc, dict) and isinstance(live, dict):
        assert set(doc) == set(live), f"{path}: the doc shows {sorted(doc)}, the server returns {sorted(live)}"
        for key in doc:
            _same_keys(doc[key], live[key], f"{path}.{key}")
    elif isinstance(doc, list) and isinstance(live, list) and doc and live:
        _same_keys(doc[0], live[0], f"{path}[0]")


@pytest.mark.slow
def test_serving_response_examples_match_the_service():
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    import base64

    from fastapi.testclient import TestClient

    from sceneparser.serve.app import ServeConfig, create_app
    from sceneparser.serve.jobs import load_parser, make_batch_fn

    image = (ROOT / EXAMPLE_IMAGE).read_bytes()
    url = "data:image/jpeg;base64," + base64.b64encode(image).decode()
    chat = {"model": "default_model", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "bottle"}]}]}
    app = create_app(make_batch_fn(load_parser(None)), ServeConfig(model_name="default_model"))
    with TestClient(app) as client:
        live = {
            "POST /v1/parse": client.post("/v1/parse", files={"image": ("scene.jpg", image, "image/jpeg")},
                                          data={"query": "mug"}),
            "POST /v1/chat/completions": client.post("/v1/chat/completions", json=chat),
            "GET /health": client.get("/health"),
            "GET /v1/models": client.get("/v1/models"),
            "error": client.post("/v1/parse", json={"image": "not base64!", "query": "mug"}),
        }
    blocks = marked(SERVING, "response")
    assert {name for name, _ in blocks} == set(live)
    for name, block in blocks:
        response = live[name]
        if name != "error":
            assert response.status_code == 200, (name, response.text)
        else:
            assert response.status_code == 400, response.text
        _same_keys(json.loads(block.text), response.json(), f"{block.id} {name}")


# ------------------------------------------------------------------------------------------
# docs/reference.md matches the code
# ------------------------------------------------------------------------------------------

REFERENCE = ROOT / "docs" / "reference.md"


def test_reference_sections_exist():
    headings = re.findall(r"^## (.+)$", REFERENCE.read_text(encoding="utf-8"), flags=re.M)
    assert [h for h in headings if h in REFERENCE_SECTIONS] == list(REFERENCE_SECTIONS)


def test_reference_quotes_prompts_and_constants_exactly():
    from sceneparser import coords, prompts
    from sceneparser.model import processor

    text = REFERENCE.read_text(encoding="utf-8")
    banks = dict(marked(REFERENCE, "bank"))
    assert banks["object"].text.splitlines() == list(prompts.OBJECT_PROMPTS_WHEN_AVAILABLE[::2])
    assert [p[:1].lower() + p[1:] for p in prompts.OBJECT_PROMPTS_WHEN_AVAILABLE[::2]] == list(
        prompts.OBJECT_PROMPTS_WHEN_AVAILABLE[1::2]
    )
    chats = dict(marked(REFERENCE, "chat"))
    question = prompts.object_question("mug")
    assert chats["inference"].text == prompts.chat_text(question, layout="inference")
    assert chats["training"].text == prompts.chat_text(question, layout="training", answer="ANSWER")
    assert "```text\n" + prompts.JSON_ONLY_PREFIX + "```" in text
    assert "```text\n" + prompts.DEFAULT_SCENE_PROMPT + "\n```" in text
    assert len(prompts.SCENE_PROMPTS) == 30 and "bank of 30 scene-level templates" in text
    assert prompts.REFERENCE_OBJECT_QUESTION == prompts.JSON_ONLY_PREFIX + prompts.OBJECT_PROMPTS_WHEN_AVAILABLE[0]

    quant = re.search(r"quantize\(value, size\) = (.+)", text).group(1)
    dequant = re.search(r"dequantize\(bin, size\) = (.+)", text).group(1)
    assert quant in coords.quantize.__doc__ and dequant in coords.dequantize.__doc__
    assert (coords.NUM_BINS, coords.MAX_BIN) == (1000, 999)
    decoded = [coords.dequantize(b, s) for b, s in zip((185, 0, 446, 411), (1920, 1080, 1920, 1080))]
    assert str(decoded) in text

    assert (processor.MIN_PIXELS, processor.MAX_PIXELS) == (12544, 2007040)
    assert "`min_pixels = 12544`" in text and "`max_pixels = 2007040`" in text
    assert str(processor.OPENAI_CLIP_MEAN) in text and str(processor.OPENAI_CLIP_STD) in text
    resize = text[text.index("## resize") : text.index("## decoding")]
    examples = re.findall(r"(\d[\d,]*) × (\d[\d,]*) → (\d[\d,]*) × (\d[\d,]*)", resize)
    assert len(examples) >= 4
    for h, w, h2, w2 in examples:
        n = [int(x.replace(",", "")) for x in (h, w, h2, w2)]
        assert processor.smart_resize(n[0], n[1]) == (n[2], n[3])


# ------------------------------------------------------------------------------------------
# links and citations
# ------------------------------------------------------------------------------------------


def _slug(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_between_documents_resolve():
    link = re.compile(r"\]\(([^)\s]+)\)")
    problems = []
    for path in [*DOC_FILES, ROOT / "examples" / "README.md"]:
        for target in link.findall(path.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path
            if not dest.exists():
                problems.append(f"{path.relative_to(ROOT)}: {target} (no such file)")
                continue
            if anchor and dest.suffix == ".md":
                slugs = {_slug(h) for h in re.findall(r"^#+ (.+)$", dest.read_text(encoding="utf-8"), flags=re.M)}
                if anchor not in slugs:
                    problems.append(f"{path.relative_to(ROOT)}: {target} (no such section)")
    assert not problems, "\n".join(problems)


def _tracked_text_files() -> list[tuple[str, str]]:
    try:
        names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    out = []
    for name in names.decode().split("\0"):
        if not name or name == "tests/test_docs.py":
            continue
        try:
            out.append((name, (ROOT / name).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError):
            continue
    return out


def test_nothing_points_at_the_private_reference_notes():
    needles = ("/work/" + "shared", "../" + "shared", "shared/" + "reference")
    hits = [f"{name}: {n}" for name, text in _tracked_text_files() for n in needles if n in text]
    assert not hits, "\n".join(hits)


def test_doc_citations_carry_the_docs_prefix():
    names = "|".join(("evaluation", "training", "rex" + "_omni"))
    bare = re.compile(r"(?<!docs/)(?<![\w.-])(?:" + names + r")\.md")
    hits = [
        f"{name}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
        for name, text in _tracked_text_files()
        for m in bare.finditer(text)
    ]
    assert not hits, "cite docs/reference.md (or docs/<name>.md) instead:\n" + "\n".join(hits[:50])

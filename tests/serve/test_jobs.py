"""The service over the real SceneParser (tiny random model): batch function and HTTP round trips."""

from __future__ import annotations

import base64
import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from sceneparser.serve.app import ServeConfig, create_app
from sceneparser.serve.jobs import job_items, make_batch_fn, result_to_dict
from sceneparser.serve.schemas import ParseJob

RESULT_KEYS = {"query", "scene", "question", "status", "reason", "objects", "raw_text", "timing", "image_size"}


@pytest.fixture(scope="module")
def image():
    from sceneparser.demo.examples import write_examples
    import tempfile

    path = write_examples(tempfile.mkdtemp(), count=1, size=(160, 120))[0][0]
    return Image.open(path).convert("RGB")


def test_batch_fn_flattens_jobs_and_regroups_in_order(tiny_parser, image):
    fn = make_batch_fn(tiny_parser)
    jobs = [
        ParseJob(image=image, queries=("mug", "door")),
        ParseJob(image=image, scene=True),
        ParseJob(image=image, question="Return a single JSON object only.\nParse the knife in this image."),
        ParseJob(image=image, queries=("lamp",)),
    ]
    out = fn(jobs)
    assert [len(x) for x in out] == [2, 1, 1, 1]
    assert [r["query"] for r in out[0]] == ["mug", "door"]
    assert out[1][0]["scene"] is True and out[1][0]["query"] is None
    assert out[2][0]["question"] == "Return a single JSON object only.\nParse the knife in this image."
    assert out[2][0]["query"] is None
    assert out[3][0]["query"] == "lamp"
    for group in out:
        for r in group:
            assert RESULT_KEYS <= set(r)
            assert r["status"] in {"ok", "repaired", "failed"}
            assert r["image_size"] == [160, 120]
            assert r["usage"]["completion_tokens"] <= 12


def test_a_question_is_asked_verbatim_with_the_json_prefix_kept_or_added(image):
    from sceneparser.prompts import JSON_ONLY_PREFIX

    (item,) = job_items(ParseJob(image=image, question=JSON_ONLY_PREFIX + "Find [OBJ] now."))
    assert item["question"] == JSON_ONLY_PREFIX + "Find [OBJ] now."  # no template: [OBJ] stays as written
    (item,) = job_items(ParseJob(image=image, question="Where is the mug?"))
    assert item["question"] == JSON_ONLY_PREFIX + "Where is the mug?"


def test_http_round_trip_with_the_tiny_model(tiny_parser, image):
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    b64 = base64.b64encode(buf.getvalue()).decode()
    cfg = ServeConfig(max_batch_size=4, max_wait_ms=20, model_name="tiny")
    with TestClient(create_app(make_batch_fn(tiny_parser), cfg)) as client:
        body = client.post("/v1/parse", json={"image": b64, "query": ["mug", "door"]}).json()
        assert [r["query"] for r in body["results"]] == ["mug", "door"]
        assert body["width"] == 160 and isinstance(body["objects"], list)
        assert body["status"] in {"ok", "repaired", "failed"}
        up = client.post("/v1/parse", files={"image": ("s.png", buf.getvalue(), "image/png")}, data={"scene": "1"})
        assert up.status_code == 200 and up.json()["results"][0]["scene"] is True
        chat = client.post("/v1/chat/completions", json={"model": "tiny", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64}},
            {"type": "text", "text": "mug"}]}]}).json()
        assert chat["choices"][0]["message"]["content"] == result_to_dict(tiny_parser.parse(image, "mug"))["raw_text"]
        assert chat["usage"]["completion_tokens"] >= 1

"""The remote backend against ``sceneparser serve`` on loopback: the same answers as in process,
retries, per-sample failures that are asked again, and clear errors for a wrong key."""

from __future__ import annotations

import http.server
import json
import threading

import numpy as np
import pytest
from PIL import Image

from sceneparser.errors import ModelLoadError
from sceneparser.inference.api import SceneParser
from sceneparser.inference.remote_backend import OpenAIBackend, offsets_from_logprobs
from sceneparser.model.loading import model_pixel_range
from sceneparser.serve.app import ServeConfig, create_app
from sceneparser.serve.jobs import load_parser, make_batch_fn

pytest.importorskip("openai")
KEY = "k-123"


@pytest.fixture(scope="module")
def local(tiny_model_dir):
    return SceneParser.from_pretrained(tiny_model_dir, device="cpu", max_new_tokens=12)


@pytest.fixture(scope="module")
def server(tiny_model_dir, live_server):
    parser = load_parser(str(tiny_model_dir), max_new_tokens=12, batch_size=8)
    cfg = ServeConfig(max_batch_size=8, max_wait_ms=5, max_new_tokens=12, api_key=KEY, model_name="tiny")
    with live_server(create_app(make_batch_fn(parser), cfg)) as srv:
        yield srv


@pytest.fixture(scope="module")
def remote(server, tiny_model_dir):
    lo, hi = model_pixel_range(tiny_model_dir, (0, 0))
    return SceneParser.from_server(server.url + "/v1", api_key=KEY, min_pixels=lo, max_pixels=hi,
                                   max_new_tokens=12, concurrency=4)


def _images():
    rs = np.random.RandomState(3)
    return [Image.fromarray((rs.rand(h, w, 3) * 255).astype("uint8")) for w, h in ((150, 100), (97, 131), (64, 64))]


def test_remote_answers_equal_the_in_process_ones(local, remote):
    assert remote.backend.model == "tiny"
    items = [{"image": im, "query": ["mug", "pan"]} for im in _images()] + [{"image": _images()[0], "scene": True}]
    ours = local.parse_many(items)
    theirs = remote.parse_many(items)
    assert [r.raw_text for r in theirs] == [r.raw_text for r in ours]
    assert [r.prediction for r in theirs] == [r.prediction for r in ours]
    assert [r.status for r in theirs] == [r.status for r in ours]
    for a, b in zip(ours, theirs):
        assert a.image_size == b.image_size  # dequantised against the original image, not the resized one
        sa = [o.score for o in a.hierarchy.objects]
        sb = [o.score for o in b.hierarchy.objects]
        assert sb == pytest.approx(sa, abs=1e-5)  # scores from the server's logprobs


def test_wrong_key_is_a_clear_error(server):
    with pytest.raises(ModelLoadError, match="401|API key"):
        SceneParser.from_server(server.url + "/v1", api_key="wrong")


class _Broken(http.server.BaseHTTPRequestHandler):
    """Lists a model, then answers chat requests with 500 or with a body that is not JSON."""

    calls = 0

    def log_message(self, *a):
        pass

    def do_GET(self):
        body = json.dumps({"object": "list", "data": [{"id": "m", "object": "model", "created": 0, "owned_by": "x"}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def do_POST(self):
        type(self).calls += 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if "nojson" in self.path or type(self).mode == "nojson":
            body, status, ctype = b"<html>oops</html>", 200, "text/html"
        elif type(self).mode == "empty":
            body, status, ctype = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                                              "choices": []}).encode(), 200, "application/json"
        else:
            body, status, ctype = b'{"error": {"message": "boom"}}', 500, "application/json"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.mark.parametrize("mode", ["500", "nojson", "empty"])
def test_a_failing_server_gives_failed_samples_never_lost_ones(mode):
    _Broken.mode, _Broken.calls = mode, 0
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Broken)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        parser = SceneParser(OpenAIBackend(f"http://127.0.0.1:{httpd.server_port}/v1", max_retries=1, timeout=10))
        results = parser.parse_many([(im, "mug") for im in _images()])
    finally:
        httpd.shutdown()
    assert len(results) == 3
    assert all(r.status == "failed" and r.backend_error and "backend error" in r.reason for r in results)
    if mode == "500":
        assert _Broken.calls == 6  # each request tried twice (one retry)


def test_a_server_that_is_down_fails_each_sample_with_the_reason():
    backend = OpenAIBackend("http://127.0.0.1:9/v1", model="m", max_retries=0, timeout=5)
    (r,) = SceneParser(backend).parse_many([(_images()[0], "mug")])
    assert r.status == "failed" and "Connection" in r.backend_error


def test_eval_over_the_remote_backend_retries_backend_errors_and_matches_in_process(
        tiny_model_dir, synth_dir, tmp_path, live_server, unused_port, monkeypatch):
    """Kill-and-resume for the remote path: a run while the server is down stores every sample as a
    backend error (scored empty, nothing lost); the same command once the server is up asks them
    again, and the scores equal the in-process run's."""
    import sceneparser.inference.remote_backend as rb
    from sceneparser.evaluation.runner import EvalConfig, run_eval

    lo, hi = model_pixel_range(tiny_model_dir, (0, 0))
    common = dict(data=str(synth_dir / "val.jsonl"), image_root=str(synth_dir), progress=False, batch_size=4,
                  max_new_tokens=12, min_pixels=lo, max_pixels=hi)
    ref = run_eval(EvalConfig(model=str(tiny_model_dir), out=str(tmp_path / "local"), **common), log=lambda m: None)
    port = unused_port()
    remote_cfg = EvalConfig(model="tiny", backend="openai", base_url=f"http://127.0.0.1:{port}/v1",
                            remote_model="tiny", api_key=KEY, out=str(tmp_path / "remote"), **common)
    real = rb.OpenAIBackend.__init__
    monkeypatch.setattr(rb.OpenAIBackend, "__init__", lambda self, *a, **k: real(self, *a, **dict(k, max_retries=0)))
    first = run_eval(remote_cfg, log=lambda m: None)
    total = first.summary["samples_total"]
    assert first.summary["parse_status"] == {"backend_error": total}
    assert first.final["L1"] == 0.0

    parser = load_parser(str(tiny_model_dir), max_new_tokens=12, batch_size=8)
    cfg = ServeConfig(max_batch_size=8, max_wait_ms=5, max_new_tokens=12, api_key=KEY, model_name="tiny")
    with live_server(create_app(make_batch_fn(parser), cfg), port=port):
        second = run_eval(remote_cfg, log=lambda m: None)
    assert second.summary["answered_this_run"] == total and "backend_error" not in second.summary["parse_status"]
    assert second.final == ref.final
    local_rows = (tmp_path / "local" / "answer.jsonl").read_text().splitlines()
    remote_rows = (tmp_path / "remote" / "answer.jsonl").read_text().splitlines()
    strip = lambda row: {k: v for k, v in json.loads(row).items() if k != "record_index"}  # noqa: E731
    assert [strip(r) for r in remote_rows] == [strip(r) for r in local_rows]


def test_offsets_from_logprobs():
    content = [{"token": "ab", "logprob": -0.1}, {"token": "é", "logprob": -0.2, "bytes": [195, 169]},
               {"token": "<1>", "logprob": -0.3}]
    offs, lps = offsets_from_logprobs(content, "abé<1>")
    assert offs == [0, 2, 3] and lps == [-0.1, -0.2, -0.3]
    assert offsets_from_logprobs(content, "xyz") is None

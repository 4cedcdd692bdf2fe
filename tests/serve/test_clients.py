"""The service on a real socket, driven by real clients: the official ``openai`` package, ``urllib``
and raw sockets (stalled uploads, short bodies, disconnects), with and without an API key.

A uvicorn server runs in a thread on loopback with the tiny random model behind the real
:class:`SceneParser`; every loop here is bounded in count and time."""

from __future__ import annotations

import base64
import io
import json
import logging
import socket
import time
import urllib.error
import urllib.request

import pytest
from PIL import Image

from sceneparser.serve.app import ServeConfig, create_app
from sceneparser.serve.jobs import load_parser, make_batch_fn

KEY = "s3cret-key"


def _png_b64() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 40, 200)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


B64 = _png_b64()


@pytest.fixture(scope="module")
def parser(tiny_model_dir):
    # at least 6 tokens per answer, so a stream has several pieces
    return load_parser(str(tiny_model_dir), max_new_tokens=10, batch_size=8)


@pytest.fixture(scope="module")
def server(parser, live_server):
    parser.backend.settings = parser.backend.settings.__class__(
        **{**parser.backend.settings.__dict__, "min_new_tokens": 6}
    )
    cfg = ServeConfig(max_batch_size=4, max_wait_ms=5, max_new_tokens=10, max_request_bytes=2 * 1024 * 1024,
                      max_inflight=8, body_timeout_s=1.0, body_timeout_s_per_mb=1.0, api_key=KEY,
                      model_name="tiny")
    with live_server(create_app(make_batch_fn(parser), cfg)) as srv:
        yield srv


def _messages(text="mug"):
    return [{"role": "user", "content": [{"type": "text", "text": text},
                                         {"type": "image_url", "image_url": {"url": "data:image/png;base64," + B64}}]}]


def _post(url, body: bytes, headers: dict, timeout=30):
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_openai_client_plain_streamed_and_length(server):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0, timeout=60)
    plain = client.chat.completions.create(model="tiny", messages=_messages())
    assert plain.choices[0].finish_reason in ("stop", "length") and plain.usage.completion_tokens >= 6
    assert plain.choices[0].message.content

    stream = client.chat.completions.create(model="tiny", messages=_messages(), stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) >= 2, "the answer must arrive in several pieces"
    assert "".join(pieces) == plain.choices[0].message.content  # greedy: the same answer
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == plain.usage.total_tokens
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [plain.choices[0].finish_reason]

    one = client.chat.completions.create(model="tiny", messages=_messages(), max_tokens=1)
    assert one.choices[0].finish_reason == "length" and one.usage.completion_tokens == 1
    two = client.chat.completions.create(model="tiny", messages=_messages(), max_completion_tokens=2)
    assert two.choices[0].finish_reason == "length" and two.usage.completion_tokens == 2
    huge = client.chat.completions.create(model="tiny", messages=_messages(), max_tokens=10**12)
    assert huge.usage.completion_tokens <= 10  # capped by the server's own limit

    for bad in (-1, 0, "abc", 1.5):
        with pytest.raises(openai.BadRequestError) as e:
            client.chat.completions.create(model="tiny", messages=_messages(), max_tokens=bad)
        assert e.value.body["param"] == "max_tokens"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="tiny", messages=_messages(), n=2)
    assert e.value.body["param"] == "n"
    a = client.chat.completions.create(model="tiny", messages=_messages(), temperature=1.0, seed=5)
    b = client.chat.completions.create(model="tiny", messages=_messages(), temperature=1.0, seed=5)
    assert a.choices[0].message.content == b.choices[0].message.content


def test_api_key_required_but_not_for_health(server):
    body = json.dumps({"image": B64, "query": "mug"}).encode()
    status, err = _post(server.url + "/v1/parse", body, {"Content-Type": "application/json"})
    assert status == 401 and err["error"]["code"] == "invalid_api_key"
    status, _ = _post(server.url + "/v1/parse", body, {"Content-Type": "application/json",
                                                        "Authorization": "Bearer wrong"})
    assert status == 401
    status, ok = _post(server.url + "/v1/parse", body, {"Content-Type": "application/json",
                                                         "Authorization": f"Bearer {KEY}"})
    assert status == 200 and ok["status"] in ("ok", "repaired", "failed")
    with urllib.request.urlopen(server.url + "/health", timeout=10) as resp:
        assert resp.status == 200
    head = urllib.request.Request(server.url + "/health", method="HEAD")
    with urllib.request.urlopen(head, timeout=10) as resp:
        assert resp.status == 200


def test_oversized_body_413_reaches_urllib(server):
    body = b"x" * (64 * 1024 * 1024)
    status, err = _post(server.url + "/v1/parse", body, {"Content-Type": "application/json",
                                                          "Authorization": f"Bearer {KEY}"}, timeout=60)
    assert status == 413 and err["error"]["code"] == "too_large"


def _stalled(port: int, declared: int, send: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall((f"POST /v1/parse HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n").encode() + b"{" * send)
    return s


def test_stalled_uploads_do_not_starve_real_requests(server, caplog):
    body = json.dumps({"image": B64, "query": "mug"}).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
    socks = [_stalled(server.port, 100_000, 100) for _ in range(40)]
    try:
        time.sleep(0.2)
        status, ok = _post(server.url + "/v1/parse", body, headers)
        assert status == 200, ok
        # the stalled ones get 408 once their deadline passes, and the slots are free again
        s = socks[0]
        s.settimeout(15)
        answer = s.recv(4096).decode("latin-1")
        assert answer.startswith("HTTP/1.1 408"), answer[:80]
    finally:
        for s in socks:
            s.close()
    time.sleep(0.3)
    status, _ = _post(server.url + "/v1/parse", body, headers)
    assert status == 200
    with urllib.request.urlopen(server.url + "/health", timeout=10) as resp:
        assert json.loads(resp.read())["status"] == "ok"


def test_short_body_gets_408_and_disconnect_is_one_info_line(server, caplog):
    s = _stalled(server.port, 5000, 10)  # declares 5000 bytes, sends 10, waits
    s.settimeout(15)
    t0 = time.time()
    answer = s.recv(4096).decode("latin-1")
    assert answer.startswith("HTTP/1.1 408") and time.time() - t0 < 10
    s.close()
    with caplog.at_level(logging.INFO, logger="sceneparser.serve"):
        s = _stalled(server.port, 5000, 10)
        s.close()  # goes away mid-body
        time.sleep(0.5)
    lines = [r for r in caplog.records if r.name == "sceneparser.serve"]
    assert any("disconnected" in r.getMessage() for r in lines)
    assert not any(r.exc_info for r in lines)

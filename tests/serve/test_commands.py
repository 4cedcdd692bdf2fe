"""``sceneparser serve`` and ``sceneparser demo`` as a user runs them: flags, clear errors, and a
real server process on loopback. (``sceneparser demo`` runs for real in test_demo_browser.py.)"""

from __future__ import annotations

import base64
import io
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
from PIL import Image

from sceneparser.cli import main


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _default_model_installed() -> bool:
    from sceneparser.model.loading import default_model_dir

    return (default_model_dir() / "config.json").is_file()


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_help_lists_the_flags(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--model" in out and "--port" in out and "127.0.0.1" in out
    if command == "serve":
        for flag in ("--max-batch-size", "--max-wait-ms", "--max-image-pixels", "--max-request-bytes"):
            assert flag in out


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_missing_model_is_a_clear_error(command, capsys, tmp_path):
    code = main([command, "--model", str(tmp_path / "no-such-model"), "--port", str(_free_port())])
    err = capsys.readouterr().err
    assert code == 2 and "model directory not found" in err and "Traceback" not in err
    if not _default_model_installed():
        code = main([command, "--port", str(_free_port())])
        err = capsys.readouterr().err
        assert code == 2 and "--model" in err and "Traceback" not in err


def test_bad_flags_are_refused_before_loading(capsys):
    assert main(["serve", "--max-batch-size", "0"]) == 2
    assert "--max-batch-size" in capsys.readouterr().err
    assert main(["serve", "--port", "70000"]) == 2


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 120) -> httpx.Response:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
        try:
            return httpx.get(url, timeout=2)
        except httpx.HTTPError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def _start(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    return subprocess.Popen([sys.executable, "-m", "sceneparser.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_serve_command_answers_on_loopback(tiny_model_dir):
    port = _free_port()
    proc = _start(["serve", "--model", str(tiny_model_dir), "--port", str(port), "--max-new-tokens", "8",
                   "--max-batch-size", "4", "--served-model-name", "tiny", "--log-level", "warning"])
    try:
        health = _wait_http(f"http://127.0.0.1:{port}/health", proc)
        assert health.json()["status"] == "ok" and health.json()["model"] == "tiny"
        buf = io.BytesIO()
        Image.new("RGB", (96, 64), (90, 160, 40)).save(buf, format="PNG")
        resp = httpx.post(f"http://127.0.0.1:{port}/v1/parse", timeout=60,
                          json={"image": base64.b64encode(buf.getvalue()).decode(), "query": "mug"})
        assert resp.status_code == 200 and resp.json()["query"] == "mug"
        bad = httpx.post(f"http://127.0.0.1:{port}/v1/parse", content=b"{", timeout=10,
                         headers={"content-type": "application/json"})
        assert bad.status_code == 400 and "error" in bad.json()
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(30)

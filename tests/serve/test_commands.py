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


def test_public_bind_without_a_key_is_refused_before_loading(capsys, monkeypatch):
    monkeypatch.delenv("SCENEPARSER_API_KEY", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--model", "/no/such/model"]) == 2
    err = capsys.readouterr().err
    assert "--api-key" in err and "--allow-unauthenticated" in err and "model directory" not in err
    # with a key (flag or environment) or the explicit opt-out it goes on (and then meets the missing model)
    assert main(["serve", "--host", "0.0.0.0", "--api-key", "k", "--model", "/no/such/model"]) == 2
    assert "model directory not found" in capsys.readouterr().err
    monkeypatch.setenv("SCENEPARSER_API_KEY", "k")
    assert main(["serve", "--host", "::", "--model", "/no/such/model"]) == 2
    assert "model directory not found" in capsys.readouterr().err
    monkeypatch.delenv("SCENEPARSER_API_KEY")
    assert main(["serve", "--host", "0.0.0.0", "--allow-unauthenticated", "--model", "/no/such/model"]) == 2
    assert "model directory not found" in capsys.readouterr().err


def test_banner_urls_put_ipv6_addresses_in_brackets():
    from sceneparser.commands.serve import is_loopback, url_for

    assert url_for("::", 8000) == "http://[::]:8000"
    assert url_for("::1", 80) == "http://[::1]:80"
    assert url_for("0.0.0.0", 8000) == "http://0.0.0.0:8000"
    assert is_loopback("::1") and is_loopback("127.0.0.2") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("::")

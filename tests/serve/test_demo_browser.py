"""The gradio demo in a real browser: Debian's headless Chromium driven by Playwright.

Starts ``sceneparser demo`` (tiny random model) on loopback, loads the page, checks the empty-input error, uploads an example image,
runs a query and waits for the result image and the JSON tree; saves a screenshot to
``test-artifacts/demo_browser.png`` (gitignored). No browser is ever downloaded: the test uses
``/usr/bin/chromium`` (``scripts/test.sh`` installs Debian's ``chromium``). Outside CI the test
is skipped when Chromium, Playwright or gradio is missing; in CI (``CI`` set) that is a failure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("SCENEPARSER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _missing() -> str | None:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    for module, pkg in (("playwright", "playwright"), ("gradio", "gradio")):
        if importlib.util.find_spec(module) is None:
            return f"{pkg} is not installed (pip install -e '.[test]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo_url(tiny_model_dir, tmp_path_factory):
    """``sceneparser demo`` started as a user starts it, on a free loopback port."""
    reason = _missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"browser test cannot run in CI: {reason}")
        pytest.skip(reason)
    examples_dir = tmp_path_factory.mktemp("examples")
    port = _free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sceneparser.cli", "demo", "--model", str(tiny_model_dir), "--port", str(port),
         "--max-new-tokens", "12", "--examples-dir", str(examples_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"sceneparser demo exited with {proc.returncode}: {proc.stderr.read()[-3000:]}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                pytest.fail("sceneparser demo did not serve its page within 180 s")
            time.sleep(0.3)
        examples = sorted(examples_dir.glob("example_*.png"))
        assert len(examples) == 3
        yield url, examples
    finally:
        proc.terminate()
        proc.wait(30)


def test_demo_page_in_headless_chromium(demo_url, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, examples = demo_url
    outside: list[str] = []

    def loopback_only(route):
        host = urlparse(route.request.url).hostname
        if route.request.url.startswith(("data:", "blob:")) or host in {"127.0.0.1", "localhost"}:
            return route.continue_()
        outside.append(route.request.url)
        return route.abort()

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh, empty user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            ctx.route("**/*", loopback_only)
            page = ctx.new_page()
            page.set_default_timeout(60_000)
            page.goto(url)
            run = page.locator("#sp-run")
            expect(run).to_be_visible()
            expect(page.get_by_text("Examples")).to_be_visible()

            # pressing Parse with no image gives a readable error, not a crash
            run.click()
            expect(page.get_by_text("Upload an image or pick an example first.").first).to_be_visible()

            # upload an example image, type a query, parse
            page.locator("#sp-image input[type=file]").set_input_files(str(examples[0]))
            expect(page.locator("#sp-image img").first).to_be_visible()
            page.locator("#sp-query textarea, #sp-query input").first.fill("mug")
            run.click()

            result_img = page.locator("#sp-result-image img").first
            expect(result_img).to_be_visible()
            assert (result_img.get_attribute("src") or "").strip()
            json_box = page.locator("#sp-result-json")
            expect(json_box).to_contain_text('"objects"')
            expect(json_box).to_contain_text('"mug"')
            expect(json_box).to_contain_text('"raw_text"')
            expect(page.locator("#sp-status")).to_contain_text("parse status")
            with page.expect_download() as download:
                page.locator("#sp-download").click()
            saved = json.loads(Path(download.value.path()).read_text())
            assert saved["query"] == "mug" and isinstance(saved["objects"], list)
            page.screenshot(path=str(ARTIFACTS / "demo_browser.png"), full_page=True)
        finally:
            ctx.close()
    assert (ARTIFACTS / "demo_browser.png").stat().st_size > 10_000
    assert outside == [], f"the page tried to reach outside the machine: {outside}"

"""The evaluation report in a real browser: Debian's headless Chromium driven by Playwright.

Builds the report of a real eval folder (the shipped default model on 8 synthetic images, shared
with test_report.py), opens it from disk (``file://``, no server), checks that nothing is
fetched from anywhere, that there are no console errors, that the tables sort on a header click
and that the gallery toggle switches views and the raw text opens. Saves a screenshot to
``test-artifacts/report_browser.png`` (gitignored); ``SCENEPARSER_REPORT_SCREENSHOT=PATH`` also
writes the top of the page to PATH (how ``docs/images/report.png`` is made). No browser is ever
downloaded: ``/usr/bin/chromium`` (``scripts/test.sh`` installs Debian's ``chromium``). Outside CI
the test is skipped when Chromium or Playwright is missing; in CI that is a failure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest

from sceneparser.evaluation.report import build_report

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = os.environ.get("SCENEPARSER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _missing() -> str | None:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="module")
def report_file(tmp_path_factory, real_eval):
    reason = _missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"browser test cannot run in CI: {reason}")
        pytest.skip(reason)
    res = real_eval
    return build_report(res, tmp_path_factory.mktemp("report") / "report.html", num_examples=4).path


def _column(table, col: int) -> list[str]:
    """The sort values (``data-v``, else the text) of column ``col`` of a table locator, top to bottom."""
    values = table.evaluate(
        f"t => Array.from(t.tBodies[0].rows).map(r => r.cells[{col}].getAttribute('data-v') || r.cells[{col}].textContent.trim())")
    assert len(values) >= 3
    return values


def test_report_in_headless_chromium(report_file, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    problems: list[str] = []
    outside: list[str] = []

    def local_only(route):
        url = route.request.url
        if url.startswith(("file:", "data:", "blob:")):
            return route.continue_()
        outside.append(url)
        return route.abort()

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            ctx.route("**/*", local_only)
            page = ctx.new_page()
            page.set_default_timeout(30_000)
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(report_file.as_uri())
            expect(page.locator("h1")).to_contain_text("SceneParser evaluation report")
            final = json.loads((report_file.parent / "report.html").read_text().split(
                'id="report-data">')[1].split("</script>")[0])["final"]
            expect(page.locator("#metric-L1")).to_have_text(f"{final['L1']:.4f}")

            # the per-category table starts worst first; a click on "F1" sorts ascending, another descending
            table = page.locator("table.per-name").first
            f1 = [float(v) for v in _column(table, 3)]
            assert f1 == sorted(f1)
            before = _column(table, 4)
            header = table.locator("th", has_text="ground truth")
            header.click()
            gt = [float(v) for v in _column(table, 4)]
            assert gt == sorted(gt) and sorted(gt) == sorted(float(v) for v in before)
            header.click()
            gt = [float(v) for v in _column(table, 4)]
            assert gt == sorted(gt, reverse=True)
            table.locator("th", has_text="category").click()
            names = _column(table, 0)
            assert names == sorted(names)

            # the gallery toggle: side by side -> prediction only -> ground truth only
            card = page.locator(".card").first
            gt_img, pred_img = card.locator("figure.gt img"), card.locator("figure.pred img")
            expect(gt_img).to_be_visible()
            expect(pred_img).to_be_visible()
            card.locator(".toggle button", has_text="prediction").click()
            expect(gt_img).to_be_hidden()
            expect(pred_img).to_be_visible()
            card.locator(".toggle button", has_text="ground truth").click()
            expect(gt_img).to_be_visible()
            expect(pred_img).to_be_hidden()
            card.locator(".toggle button", has_text="side by side").click()
            expect(pred_img).to_be_visible()
            assert page.evaluate("img => img.naturalWidth", gt_img.element_handle()) > 100  # decoded

            # the raw model text one click away
            raw = card.locator("details pre")
            expect(raw).to_be_hidden()
            card.locator("details summary").click()
            expect(raw).to_be_visible()
            expect(raw).to_contain_text("objects")

            page.screenshot(path=str(ARTIFACTS / "report_browser.png"), full_page=True)
            shot = os.environ.get("SCENEPARSER_REPORT_SCREENSHOT")
            if shot:
                page.set_viewport_size({"width": 1280, "height": 1000})
                page.goto(report_file.as_uri())
                page.screenshot(path=shot)
        finally:
            ctx.close()
    assert problems == [], f"console errors: {problems}"
    assert outside == [], f"the page tried to fetch: {outside}"
    assert (ARTIFACTS / "report_browser.png").stat().st_size > 20_000

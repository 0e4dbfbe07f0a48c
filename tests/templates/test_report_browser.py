"""The reports as a person sees them: opened in headless Chromium (Debian's, never downloaded)."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from report_db import CORNWALL, CORNWALL_ICB, SCILLY

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# Screenshots go to the test's tmp folder, and also here when set (e.g. a CI artefacts folder).
ARTIFACTS_ENV = "JOINEDUP_TEST_ARTIFACTS"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed"),
]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _open(browser, path: Path):
    """Open a page, recording console errors, page errors and every request it makes."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    seen = {"console": [], "errors": [], "requests": []}
    page.on("console", lambda m: seen["console"].append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.goto(path.as_uri(), wait_until="load")
    return page, seen


def _keep(screenshot: Path) -> None:
    target = os.environ.get(ARTIFACTS_ENV)
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(target) / screenshot.name)


@pytest.mark.parametrize("relative", [f"2025-11/{SCILLY}.html", f"2025-11/{CORNWALL_ICB}.html",
                                      "index.html"])
def test_page_opens_cleanly_and_alone(browser, rendered, tmp_path, relative):
    path = rendered / relative
    page, seen = _open(browser, path)
    try:
        assert seen["console"] == [] and seen["errors"] == []
        assert [u for u in seen["requests"] if not u.startswith("data:")] == [path.as_uri()]
        header = page.locator(".site-header").evaluate("e => getComputedStyle(e).backgroundColor")
        assert header == "rgb(0, 94, 184)"                     # NHS blue
        assert page.get_by_role("heading", level=1).count() == 1
        shot = tmp_path / (relative.replace("/", "_") + ".png")
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        _keep(shot)
    finally:
        page.close()


def test_charts_are_images_with_names_and_rag_reads_as_text(browser, rendered):
    page, _seen = _open(browser, rendered / "2025-11" / f"{CORNWALL_ICB}.html")
    try:
        charts = page.get_by_role("img")
        assert charts.count() >= 4
        assert all(charts.nth(i).get_attribute("aria-label") for i in range(charts.count()))
        statuses = page.locator(".tag--red, .tag--green, .tag--amber, .tag--none").all_inner_texts()
        assert statuses and all(any(c.isalpha() for c in s) for s in statuses)
    finally:
        page.close()


def test_prints_to_a4(browser, rendered, tmp_path):
    page, _seen = _open(browser, rendered / "2025-11" / f"{SCILLY}.html")
    try:
        page.emulate_media(media="print")
        assert page.locator(".contents").is_hidden()           # print CSS applies
        pdf = tmp_path / "scilly.pdf"
        page.pdf(path=str(pdf), format="A4", print_background=True)
        pages = len(re.findall(rb"/Type\s*/Page(?!s)", pdf.read_bytes()))
        assert pages > 2, "each metric section starts a new A4 page"
        _keep(pdf)
    finally:
        page.close()


def test_spc_chart_and_icons_as_a_person_sees_them(browser, rendered, tmp_path):
    page, seen = _open(browser, rendered / "2025-11" / f"{CORNWALL}.html")
    try:
        assert seen["errors"] == []
        section = page.locator("#metric-discharge_delay_days")
        chart = section.get_by_role("img").first
        label = chart.get_attribute("aria-label")
        assert label.startswith("Statistical process control chart")
        # the rebase is marked on the chart and named, in the chart and in words beside it
        assert chart.locator("text", has_text="Discharge to assess service").count() == 1
        assert "Discharge to assess service (from January 2025)" in section.locator(
            ".change-reading").inner_text()
        # icons: drawn, coloured, and each with a text label a screen reader reads
        icons = page.locator("#summary .spc-icon")
        assert icons.count() >= 2
        assert all(any(c.isalpha() for c in t) for t in icons.all_inner_texts())
        fills = {page.locator("#summary .spc-icon circle").nth(i).evaluate("e => getComputedStyle(e).fill")
                 for i in range(icons.count())}
        assert fills <= {"rgb(118, 134, 146)", "rgb(0, 94, 184)", "rgb(237, 139, 0)", "rgb(51, 0, 114)"}
        assert page.locator("#summary .spc-icon svg").first.bounding_box()["width"] == 20
        shot = tmp_path / "spc_chart.png"
        section.screenshot(path=str(shot))
        assert shot.stat().st_size > 5_000
        _keep(shot)
    finally:
        page.close()

"""report.html opened from disk in Chromium: images load, TOC links land, no errors, nothing fetched."""
from __future__ import annotations

import shutil

import pytest

from conftest import ARTIFACTS

pytestmark = [pytest.mark.slow, pytest.mark.browser]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_report_in_a_browser(quick_report):
    from playwright.sync_api import sync_playwright

    url = (quick_report["out"] / "report.html").resolve().as_uri()
    errors, outside = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("data:", url)) else None)
        page.goto(url, wait_until="load")
        broken = page.evaluate("Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
                               ".map(i => i.alt)")
        images = page.evaluate("document.images.length")
        missing_alt = page.evaluate("Array.from(document.images).filter(i => !i.alt.trim()).length")
        dead_links = page.evaluate("""Array.from(document.querySelectorAll('a[href^="#"]'))
            .map(a => a.getAttribute('href').slice(1))
            .filter(id => { const t = document.getElementById(id);
                            return !t || !/^H[1-6]$/.test(t.tagName); })""")
        toc = page.evaluate("document.querySelectorAll('nav.toc a').length")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report-fullpage.png"), full_page=True)
        browser.close()
    assert images >= 3 and broken == []
    assert missing_alt == 0
    assert toc >= 5 and dead_links == []
    assert errors == []
    assert outside == []

"""report.html opened from disk in Chromium: images load, links land on headings, the glance table leads
to every answer, figures open full size, the 4d table sorts, no errors, nothing fetched."""
from __future__ import annotations

import shutil

import pytest
from conftest import ARTIFACTS

pytestmark = [pytest.mark.slow, pytest.mark.browser]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


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
        # the glance table: one row per answer block, each linking to the heading right above that answer
        glance = page.evaluate("""Array.from(document.querySelectorAll('table.glance tbody tr')).map(r => {
            const target = document.getElementById(r.querySelector('a').getAttribute('href').slice(1));
            let n = target && target.nextElementSibling;
            while (n && !n.classList.contains('answer')) n = n.nextElementSibling;
            return [r.dataset.question, n ? n.dataset.question : null]; })""")
        answers = page.evaluate("document.querySelectorAll('div.answer').length")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report-first-screen.png"))
        page.screenshot(path=str(ARTIFACTS / "report-fullpage.png"), full_page=True)
        # click a figure: it opens full size over the page; a second click closes it
        figure = page.locator("figure.key img").first
        figure.click()
        zoomed = page.evaluate("""(() => { const i = document.querySelector('figure.zoomed img');
            return i ? [getComputedStyle(i).position, i.getBoundingClientRect().width] : null; })()""")
        page.mouse.click(5, 5)
        closed = page.evaluate("document.querySelectorAll('figure.zoomed').length")
        # sort the 4d grid by validation accuracy: the rows follow their data-sort values
        page.locator("#table-4d thead th", has_text="validation accuracy").click()
        ascending = page.evaluate("""Array.from(document.querySelectorAll('#table-4d tbody tr'))
            .map(r => parseFloat(r.cells[2].dataset.sort))""")
        listings_closed = page.evaluate("Array.from(document.querySelectorAll('details.listing'))"
                                        ".every(d => !d.open)")
        browser.close()
    assert images >= 3 and broken == []
    assert missing_alt == 0
    assert toc >= 5 and dead_links == []
    assert len(glance) == answers >= 15 and all(row == answer for row, answer in glance), glance
    assert zoomed is not None and zoomed[0] == "fixed" and closed == 0
    assert len(ascending) > 2 and ascending == sorted(ascending)
    assert listings_closed
    assert errors == []
    assert outside == []

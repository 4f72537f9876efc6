"""report.pdf as a reader gets it: pages, every section heading in the text, bookmarks, the page target
of the main body, readable source listings; report.html within its size target."""
from __future__ import annotations

import inspect
import re

import pytest
from pypdf import PdfReader

from miniplaces.report import listings, sections

pytestmark = pytest.mark.slow
MAIN_BODY_PAGES = 15        # everything before Appendix A, whatever the number of scenes
PAGES_PER_SCENE = 3         # Appendix A: every figure of one scene
APPENDIX_B_PAGES = 5        # every training run of the quick grid
HTML_BYTES = 1_200_000      # the page without the scenes' figures ...
HTML_BYTES_PER_SCENE = 600_000   # ... and each scene's, embedded


def outline(reader: PdfReader, items=None) -> list[tuple[str, int]]:
    """(title, 1-based page) of every bookmark, in document order."""
    entries = []
    for item in reader.outline if items is None else items:
        if isinstance(item, list):
            entries += outline(reader, item)
        else:
            entries.append((item.title, reader.get_destination_page_number(item) + 1))
    return entries


def test_pdf_pages_headings_and_bookmarks(quick_report):
    reader = PdfReader(quick_report["out"] / "report.pdf")
    assert len(reader.pages) >= 4
    text = " ".join(page.extract_text() for page in reader.pages)
    titles = [t for t, _ in outline(reader)]
    for section in quick_report["results"]["run"]["sections"]:
        number = sections.get(section).problem
        assert f"Problem {number}:" in text
        assert any(t.startswith(f"Problem {number}:") for t in titles), titles
    for heading in ("Run summary", "Answers at a glance", "Contents", "Provenance",
                    "Appendix A: every scene"):
        assert heading in text and heading in titles
    assert "page 2 of" in text  # page numbers printed


def test_every_report_file_carries_the_run_id(quick_report):
    run_id = quick_report["results"]["run"]["run_id"]
    assert PdfReader(quick_report["out"] / "report.pdf").metadata["/miniplacesrunid"] == run_id
    html = (quick_report["out"] / "report.html").read_text()
    assert f'<meta name="miniplaces-run-id" content="{run_id}">' in html


def test_main_body_ends_before_the_appendix_within_the_page_target(quick_report):
    reader = PdfReader(quick_report["out"] / "report.pdf")
    marks = outline(reader)
    page = dict(marks)
    appendix = page["Appendix A: every scene"]
    assert page["Provenance"] < appendix
    assert all(p <= appendix for t, p in marks if t.startswith("Problem "))
    assert appendix - 1 <= MAIN_BODY_PAGES, f"main body: {appendix - 1} pages"
    count = len(quick_report["results"]["scenes"])
    assert len(reader.pages) <= MAIN_BODY_PAGES + PAGES_PER_SCENE * count + APPENDIX_B_PAGES
    scenes = [t for t, _ in marks if re.match(r"A\.\d+ ", t)]      # one bookmark per scene, after the body
    assert len(scenes) == len(quick_report["results"]["scenes"])
    assert all(page[t] >= appendix for t in scenes)


def test_html_within_its_size_target(quick_report):
    size = (quick_report["out"] / "report.html").stat().st_size
    scenes = len(quick_report["results"]["scenes"])
    assert size <= HTML_BYTES + HTML_BYTES_PER_SCENE * scenes, \
        f"report.html: {size / 1e6:.2f} MB, {scenes} scenes"


def test_listings_are_whole_in_the_pdf(quick_report):
    """Every line of every listing is in the PDF's text: wrapped if long, never clipped."""
    text = re.sub(r"\s+", "", " ".join(page.extract_text() for page in
                                       PdfReader(quick_report["out"] / "report.pdf").pages))
    for section in sections.REGISTRY:
        for name in (n for q in section.questions for n in q.listed):
            for line in inspect.getsource(listings.resolve(name)).splitlines():
                assert re.sub(r"\s+", "", line) in text, f"{name}: {line!r}"


def test_weasyprint_progress_lines_stay_off_the_terminal(quick_report):
    assert "Step 2 - Fetching" not in quick_report["stderr"]
    assert "Fetching and parsing CSS" not in quick_report["stderr"]

"""report.pdf as a reader gets it: pages, every section heading in the text, bookmarks."""
from __future__ import annotations

import pytest
from pypdf import PdfReader

pytestmark = pytest.mark.slow


def outline_titles(items) -> list[str]:
    titles = []
    for item in items:
        if isinstance(item, list):
            titles += outline_titles(item)
        else:
            titles.append(item.title)
    return titles


def test_pdf_pages_headings_and_bookmarks(quick_report):
    reader = PdfReader(quick_report["out"] / "report.pdf")
    assert len(reader.pages) >= 4
    text = " ".join(page.extract_text() for page in reader.pages)
    titles = outline_titles(reader.outline)
    for section in quick_report["results"]["run"]["sections"]:
        number = {"filters": 1, "units": 2, "cam": 3, "fashion_mnist": 4}[section]
        assert f"Problem {number}:" in text
        assert any(t.startswith(f"Problem {number}:") for t in titles), titles
    for heading in ("Run summary", "Contents", "Provenance"):
        assert heading in text and heading in titles
    assert "page 2 of" in text  # page numbers printed

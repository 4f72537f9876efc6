"""Rendering: results -> Jinja templates -> self-contained report.html, and WeasyPrint -> report.pdf.

Templates only display. The same templates serve both outputs; ``for_pdf`` switches image
sources from embedded data URIs (HTML opens offline as one file) to file paths (smaller PDF work).
"""
from __future__ import annotations

import base64
import logging
import mimetypes
from pathlib import Path
from typing import Any

import jinja2

from miniplaces import atomic, resources
from miniplaces.report import listings
from miniplaces.report.sections import template_dirs
from miniplaces.report.wording import num, p_value, pct, signed

log = logging.getLogger(__name__)
TEMPLATES = resources.folder("templates")


def table_of_contents(sections: list[dict], scenes: list[dict], gates: list, changes: dict | None
                      ) -> list[list[dict]]:
    """The contents as two columns of numbered entries (``number``, ``href``, ``label``, ``children``),
    split where their line counts come closest to equal.

    The PDF sets the two lists side by side. CSS columns would balance them too, but WeasyPrint balances
    by laying the list out again and again, which took half of the PDF's layout time.
    """
    entries = [("run-summary", "Run summary", [])]
    entries += [("gates", "Quality gates", [])] if gates else []
    entries += [("changes", "Changes since the last report", [])] if changes else []
    entries.append(("answers-at-a-glance", "Answers at a glance", []))
    entries += [(s["name"], f"Problem {s['number']}: {s['title']}", [(t["id"], t["label"]) for t in s["toc"]])
                for s in sections]
    entries.append(("provenance", "Provenance", []))
    if scenes:
        entries.append(("appendix-scenes", "Appendix A: every scene",
                        [(f"scene-{sc['id']}", f"A.{i} {sc['image']}") for i, sc in enumerate(scenes, 1)]))
    entries += [(s["appendix"]["anchor"], s["appendix"]["title"], []) for s in sections if s["appendix"]]
    numbered = [{"number": n, "href": href, "label": label,
                 "children": [{"href": h, "label": lab} for h, lab in children]}
                for n, (href, label, children) in enumerate(entries, 1)]
    lines = [1 + len(e["children"]) for e in numbered]
    split = min(range(1, len(numbered) + 1), key=lambda k: max(sum(lines[:k]), sum(lines[k:])))
    return [column for column in (numbered[:split], numbered[split:]) if column]


def environment(out: Path, for_pdf: bool) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader([TEMPLATES, *template_dirs()]), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)

    def src(relative: str) -> str:
        path = (out / relative).resolve()
        if for_pdf:
            return path.as_uri()
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"

    env.filters["src"] = src
    env.filters["pct"] = pct
    env.filters["num"] = num
    env.filters["signed"] = signed
    env.filters["p_value"] = p_value
    env.globals["for_pdf"] = for_pdf
    env.globals["css"] = (TEMPLATES / "report.css").read_text(encoding="utf-8") + listings.stylesheet()
    env.globals["script"] = (TEMPLATES / "report.js").read_text(encoding="utf-8")
    return env


def render_html(context: dict[str, Any], out: Path, for_pdf: bool = False) -> str:
    return environment(out, for_pdf).get_template("report.html.j2").render(**context)


def write_html(context: dict[str, Any], out: Path) -> Path:
    path = out / "report.html"
    atomic.write_text(path, render_html(context, out))
    return path


def quiet_weasyprint() -> None:
    """WeasyPrint announces each rendering step at INFO level, three of them while it is imported
    ("Step 2 - Fetching and parsing CSS"): keep its warnings and errors, drop the progress lines."""
    logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)
    logging.getLogger("fontTools").setLevel(logging.ERROR)   # font subsetting notes, not problems


def write_pdf(context: dict[str, Any], out: Path) -> Path:
    """Print the same templates through WeasyPrint (print CSS: page numbers, TOC, no split figures)."""
    quiet_weasyprint()
    import weasyprint

    html = render_html(context, out, for_pdf=True)
    document = weasyprint.HTML(string=html, base_url=str(out.resolve()))
    path = out / "report.pdf"
    atomic.write_with(path, lambda handle: document.write_pdf(handle, custom_metadata=True))  # the run id
    return path

"""Source listings of the functions that earn the implementation points (1a, 2a, 3a, 3b, 4a, 4b, 4c).

A grader awards those points by reading the code, so the report shows the source of the function
that produced the numbers, read with ``inspect`` when the report is rendered (never a copy), with
its file and first line, highlighted by Pygments.
"""
from __future__ import annotations

import importlib
import inspect
from pathlib import Path

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from miniplaces import resources
from miniplaces.report.sections import running

REPO = resources.ROOT
CSS_CLASS = "highlight"


def resolve(dotted: str):
    module, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def listing(dotted: str) -> dict:
    """One function's current source: {name, file, line, lines, source, html}."""
    func = inspect.unwrap(resolve(dotted))
    source = inspect.getsource(func)
    _, line = inspect.getsourcelines(func)
    path = Path(inspect.getsourcefile(func)).resolve()
    try:
        shown = path.relative_to(REPO).as_posix()
    except ValueError:
        shown = str(path)
    html = highlight(source, PythonLexer(), HtmlFormatter(cssclass=CSS_CLASS, wrapcode=True))
    return {"name": dotted, "function": dotted.rpartition(".")[2], "file": shown, "line": line,
            "lines": source.count("\n"), "source": source, "html": html}


def build(ran: list[str]) -> dict[str, list[dict]]:
    """The listings of every sub-question whose section ran (``Question.listed``)."""
    return {q.key: [listing(d) for d in q.listed] for s in running(ran) for q in s.questions if q.listed}


def stylesheet() -> str:
    """Pygments' colours for the listings, embedded in the page (no external stylesheet)."""
    return HtmlFormatter(style="default", cssclass=CSS_CLASS).get_style_defs(f".{CSS_CLASS}")

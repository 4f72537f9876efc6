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

REPO = resources.ROOT
CSS_CLASS = "highlight"

# sub-question -> (section that must have run, dotted names of the functions shown)
LISTED: dict[str, tuple[str, tuple[str, ...]]] = {
    "1a": ("filters", ("analyses.filters.normalize_tensor",)),
    "2a": ("units", ("analyses.feature_maps.chop",)),
    "3a": ("cam", ("analyses.cam.reshape_hw_c",)),
    "3b": ("cam", ("analyses.cam.fc_per_position",)),
    "4a": ("fashion_mnist", ("analyses.fashion_mnist.train.train",)),
    "4b": ("fashion_mnist", ("analyses.fashion_mnist.train.get_prediction",
                             "analyses.fashion_mnist.train.evaluate")),
    "4c": ("fashion_mnist", ("analyses.fashion_mnist.train.make_optimizer",)),
}


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


def build(sections: list[str]) -> dict[str, list[dict]]:
    """The listings of every sub-question whose section ran."""
    return {key: [listing(d) for d in names] for key, (section, names) in LISTED.items()
            if section in sections}


def stylesheet() -> str:
    """Pygments' colours for the listings, embedded in the page (no external stylesheet)."""
    return HtmlFormatter(style="default", cssclass=CSS_CLASS).get_style_defs(f".{CSS_CLASS}")

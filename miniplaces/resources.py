"""The files the report reads besides its code: the templates, the grid files and the default scenes'
concept files and shipped photo.

A wheel carries them as package data under ``miniplaces/_data/`` (pyproject.toml maps the checkout's
``templates/``, ``grids/`` and ``data/scenes/`` there), read through ``importlib.resources``; a source
checkout or an editable install reads them where they stand in the checkout.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent   # the checkout (or site-packages, installed)
IN_CHECKOUT = {"templates": "templates", "grids": "grids", "scenes": "data/scenes"}


def folder(name: str) -> Path:
    """The folder of ``name`` ("templates", "grids" or "scenes"), installed or in the checkout."""
    packaged = resources.files(__package__) / "_data" / name
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(str(resources.files(__package__))).parent / IN_CHECKOUT[name]

"""The third view of a run: ``report.ipynb``, the notebook the problem set asks students to hand in.

``write`` builds it from results.json (``build``), runs it in a real kernel (``execute``) unless the
cache holds the outputs of exactly these code cells on exactly these inputs, and writes it beside
report.html with the scene images it reads. Outputs are only ever what a kernel produced for the
same code: markdown (the answers, the run's id) is rebuilt every run and never affects the key.
"""
from __future__ import annotations

import io
import logging
import platform
import time
from pathlib import Path
from typing import Any

import nbformat

from miniplaces import atomic
from miniplaces.cache import Cache, code_version, file_sha256
from miniplaces.report import sections
from miniplaces.report.notebook.build import IMAGES_DIR, build
from miniplaces.report.notebook.kernel import BLOCKER, NotebookError, execute

__all__ = ["FILE", "NotebookError", "write"]
log = logging.getLogger("miniplaces")
FILE = "report.ipynb"
CELL_TIMEOUT_S = 600          # RETRAIN = False cells take seconds; a stuck cell must still end the run


def write(results: dict, out: Path, scenes: list, cache: Cache) -> dict[str, Any]:
    """Write OUT/report.ipynb with its cells run; its summary for results.json. NotebookError when a
    cell fails (report.html and results.json are written all the same)."""
    start = time.perf_counter()
    for scene in scenes:
        buffer = io.BytesIO()
        scene.image.save(buffer, format="PNG")
        atomic.write_bytes(out / IMAGES_DIR / f"{scene.id}.png", buffer.getvalue())
    notebook, params = build(results)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    key = {"code": [c.source for c in code], "inputs": input_hashes(results, params, out),
           "versions": versions(), "kernel": code_version(Path(__file__).with_name("kernel.py"))}

    def run() -> list[dict]:
        ran = execute(nbformat.from_dict(notebook), out, CELL_TIMEOUT_S)
        return [{"outputs": c.outputs, "execution_count": c.execution_count}
                for c in ran.cells if c.cell_type == "code"]

    outputs, cached = cache.get_or_compute("notebook", key, run)
    for cell, ran in zip(code, outputs):
        cell.outputs = [nbformat.from_dict(o) for o in ran["outputs"]]
        cell.execution_count = ran["execution_count"]
    nbformat.validate(notebook)
    atomic.write_bytes(out / FILE, nbformat.writes(notebook).encode())
    return {"file": FILE, "images_dir": IMAGES_DIR, "parameters": params, "code_cells": len(code),
            "figures": figures_by_question(notebook), "cached": cached,
            "seconds": time.perf_counter() - start}


def input_hashes(results: dict, params: dict, out: Path) -> dict:
    """What the cells read besides their code: the checkpoint, categories, scenes, data and model."""
    model = results.get("model") or {}
    categories = params.get("CATEGORIES")
    return {"weights": model.get("sha256"),
            "categories": file_sha256(categories) if categories and Path(categories).is_file() else None,
            "scenes": [s.get("sha256") for s in results.get("scenes", [])],
            "data": {s.name: ((results.get(s.name) or {}).get("data") or {}).get("sha256")
                     for s in sections.REGISTRY if s.input_label},
            "model_file": file_sha256(out / params["MODEL_FILE"]) if params.get("MODEL_FILE") else None,
            "blocker": BLOCKER}


def versions() -> dict:
    import matplotlib
    import numpy
    import torch
    import torchvision

    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "numpy": numpy.__version__,
            "matplotlib": matplotlib.__version__}


def figures_by_question(notebook: nbformat.NotebookNode) -> dict[str, int]:
    """PNG outputs per sub-question tag: what a reader (and the tests) can check is there."""
    counts: dict[str, int] = {}
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        tags = [t for t in cell.metadata.get("tags", []) if not t.startswith("problem-")]
        png = sum("image/png" in o.get("data", {}) for o in cell.outputs)
        for tag in tags:
            counts[tag] = counts.get(tag, 0) + png
    return counts

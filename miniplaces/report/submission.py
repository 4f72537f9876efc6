"""The submission zip the problem set asks for: "the python notebook ..., with the cells run and the
relevant source code" and "your trained model file for Problem 4 at the root of your submission".

NAME.zip holds NAME.ipynb (report.ipynb, cells run) and the model file at its root, the scene images
the notebook reads (notebook_images/), and report.html and report.pdf as extras."""
from __future__ import annotations

import logging
import re
import zipfile
from pathlib import Path

from miniplaces import atomic
from miniplaces.errors import UserError
from miniplaces.inputs.checkpoint import untrained
from miniplaces.report.sections import model_section, saved_model_record

log = logging.getLogger(__name__)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_name(name: str) -> str:
    """A kerberos-like name: it becomes a file name in the out dir, so no paths or odd characters."""
    stem = name[:-4] if name.lower().endswith(".zip") else name
    if not NAME.fullmatch(stem):   # fullmatch: '$' alone would accept a trailing newline
        raise UserError(f"--submission {name!r}: use letters, digits, '.', '_' or '-' (your kerberos), "
                        "no paths")
    return stem


def check_allowed(demo: bool, allow_demo: bool) -> None:
    """Refuse before any work to pack a report whose Places answers come from untrained weights."""
    if demo and not allow_demo:
        raise UserError("--submission refuses a report made with DEMO (untrained) Places365 weights; pass "
                        "--weights, or --allow-demo-submission if you really mean it")


def write_submission(out: Path, name: str, results: dict, allow_demo: bool) -> Path:
    """Write OUT/NAME.zip with the files at the zip's root and log what was packed."""
    stem = check_name(name)
    if not allow_demo and untrained(results.get("model")):
        raise UserError("--submission refuses a report whose Places365 weights behave as untrained "
                        "(model.weights_check in results.json); the report is written, but pass a trained "
                        "checkpoint, or --allow-demo-submission if you really mean it")
    final = saved_model_record(results)
    if not final.get("model_file"):
        raise UserError(f"--submission needs the saved model file: do not --skip {model_section().name}")
    notebook = results.get("notebook") or {}
    if not notebook.get("file"):
        raise UserError("--submission needs report.ipynb with its cells run: "
                        + notebook.get("error", "the notebook was not written"))
    images = [out / p for p in notebook["parameters"]["IMAGES"]]
    named = {f"{stem}.ipynb": out / notebook["file"], final["model_file"]: out / final["model_file"],
             "report.html": out / "report.html", "report.pdf": out / "report.pdf",
             **{f.relative_to(out).as_posix(): f for f in images}}
    missing = [str(f) for f in named.values() if not f.is_file()]
    if missing:
        raise UserError(f"--submission: missing {', '.join(missing)} (was --no-pdf given?)")
    path = out / f"{stem}.zip"

    def pack(handle) -> None:
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for arcname, file in named.items():
                archive.write(file, arcname=arcname)

    atomic.write_with(path, pack)
    sizes = ", ".join(f"{name} ({f.stat().st_size / 1e6:.1f} MB)" for name, f in named.items())
    log.info("submission %s holds: %s", path, sizes)
    return path

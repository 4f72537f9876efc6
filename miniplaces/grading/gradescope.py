"""``grade --gradescope``: grade the one submission Gradescope hands to an autograder.

Gradescope (https://gradescope-autograders.readthedocs.io/en/latest/specs/) unpacks the student's
upload into ``/autograder/submission/``, describes it in ``/autograder/submission_metadata.json``
(``created_at``, ``assignment.due_date``) and reads ``/autograder/results/results.json``. This runs
the same checks as the folder mode (safe unzip, a limited child per submission, the notebook read
as data, the model re-scored) and turns them into one Gradescope test per check, each with its
points and a message a student understands; the late factor multiplies the score. Whatever the
submission holds, a valid results.json is written (score 0 with the reason when nothing could be
checked): Gradescope fails the whole run otherwise. autograder/ holds setup.sh and run_autograder.
"""
from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import stat
import tempfile
import time
import traceback
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

from miniplaces import atomic, resources
from miniplaces.grading import late_policy, safe_zip
from miniplaces.inputs import bounded

log = logging.getLogger("miniplaces")

ACCURACY_POINTS = 2.0     # Problem 4: "You will receive credit if your model attains > 90% accuracy";
                          # the rest of the problem set is graded by hand
METADATA_BYTES = 4 << 20  # previous_submissions grows with each submission
VISIBLE = "visible"
FORMATS = ["text", "html", "simple_format", "md", "ansi"]
# every message is plain text: a student's strings (an error message, a file name) are never markup
TEXT = {"output_format": "text", "test_output_format": "text", "test_name_format": "text"}

# Gradescope's documented results.json, as a JSON Schema (the fields this autograder may write).
RESULTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["tests"],
    "properties": {
        "score": {"type": "number"},
        "execution_time": {"type": "number", "minimum": 0},
        "output": {"type": "string"},
        "output_format": {"enum": FORMATS},
        "test_output_format": {"enum": FORMATS},
        "test_name_format": {"enum": FORMATS},
        "visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
        "stdout_visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
        "extra_data": {"type": "object"},
        "tests": {"type": "array", "items": {
            "type": "object",
            "required": ["name", "score", "max_score", "status", "output", "visibility"],
            "properties": {
                "name": {"type": "string"}, "score": {"type": "number"},
                "max_score": {"type": "number", "minimum": 0}, "status": {"enum": ["passed", "failed"]},
                "output": {"type": "string"}, "number": {"type": "string"},
                "visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
                "tags": {"type": "array", "items": {"type": "string"}},
                "extra_data": {"type": "object"}},
            "additionalProperties": False}},
        "leaderboard": {"type": "array", "items": {
            "type": "object", "required": ["name", "value"],
            "properties": {"name": {"type": "string"}, "value": {"type": ["number", "string"]},
                           "order": {"enum": ["asc", "desc"]}}}},
    },
    "additionalProperties": False,
}


def _test(name: str, passed: bool, output: str, max_score: float = 0.0) -> dict[str, Any]:
    return {"name": name, "score": max_score if passed else 0.0, "max_score": max_score,
            "status": "passed" if passed else "failed", "output": output, "visibility": VISIBLE}


def _about(row: dict[str, Any], *words: str) -> str:
    return "\n".join(p for p in row.get("problems") or [] if any(w in p for w in words))


def tests_for(row: dict[str, Any], pass_mark: float) -> list[dict[str, Any]]:
    """One Gradescope test per check of a graded row (grade.finish's), in the order a student fixes them."""
    notebook = row.get("notebook") or "missing"
    layout_ok = notebook != "missing" and bool(row.get("model_file"))
    ran = (row.get("notebook_ran") or "").startswith("yes")
    errors = row.get("notebook_errors") or ""
    accuracy = row.get("accuracy")
    html, pdf = row.get("report_html") or "missing", row.get("report_pdf") or "missing"
    report_ok = (html != "missing" and not html.startswith("none")) or pdf != "missing"
    return [
        _test("Zip layout: <kerberos>.ipynb and the model file at the root", layout_ok,
              "Both found." if layout_ok else
              (_about(row, "zip refused", "layout", "no notebook", "no model file", "could not be checked")
               or "Put the notebook and the model file at the root of the zip (zip the files, not their "
                  "folder).")),
        _test("Notebook: every code cell ran, in order (Restart & Run All)", ran,
              row.get("notebook_ran") or f"Not checked: notebook {notebook}."),
        _test("Notebook: no errors in the outputs", errors == "none",
              "No error outputs." if errors == "none" else
              f"Error output in {errors}." if errors else f"Not checked: notebook {notebook}."),
        _test("Model file loads safely (torch.load weights_only) and rebuilds", accuracy is not None,
              f"Loaded {row.get('model_file')}." if accuracy is not None else
              (row.get("model_error") or "The model could not be loaded.")),
        _test(f"Problem 4: re-scored test accuracy > {100 * pass_mark:.0f} %", bool(row.get("credit")),
              f"Your model scores {100 * accuracy:.2f} % on the 10 000 FashionMNIST test images "
              f"(credit needs more than {100 * pass_mark:.0f} %)." if accuracy is not None else
              "Not scored: the model file could not be loaded (see above).", ACCURACY_POINTS),
        _test("Report (report.html or report.pdf), optional", report_ok,
              f"report.html: {html}; report.pdf: {pdf}."),
    ]


def raw_points(row: dict[str, Any], pass_mark: float) -> float:
    return sum(t["score"] for t in tests_for(row, pass_mark))


def results(row: dict[str, Any], pass_mark: float, seconds: float) -> dict[str, Any]:
    """results.json of a graded row whose late columns are set (late_policy.apply)."""
    tests = tests_for(row, pass_mark)
    lines = [f"Autograded points: {row['raw']:g} of {sum(t['max_score'] for t in tests):g}."]
    if row.get("factor") is not None and row["factor"] != 1:
        lines.append(f"Submitted {row['submitted']}, {row['days_late']} day(s) late (rounded up): "
                     f"late factor {row['factor']:.3f}, score {row['final']:g}.")
    elif row.get("submitted_from", "").startswith("unknown"):
        lines.append("The submission time was not known: no late factor applied.")
    failed = [t["name"] for t in tests if t["status"] == "failed"]
    if failed:
        lines.append("To fix: " + "; ".join(failed) + ".")
    late = {key: row.get(key) for key in ("submitted", "days_late", "factor", "raw")}
    return {"score": float(row["final"]), "execution_time": round(seconds, 1), "output": "\n".join(lines),
            **TEXT, "visibility": VISIBLE, "stdout_visibility": "hidden", "extra_data": late, "tests": tests}


def failure_results(reason: str, seconds: float) -> dict[str, Any]:
    """Score 0 with the reason: what Gradescope gets when nothing could be checked."""
    return {"score": 0.0, "execution_time": round(seconds, 1),
            "output": f"The submission could not be graded: {reason}", **TEXT, "visibility": VISIBLE,
            "stdout_visibility": "hidden",
            "tests": [_test("Submission could be read", False, reason, ACCURACY_POINTS)]}


def submission_time(root: Path) -> tuple[datetime | None, datetime | None, str]:
    """(due, submitted, note) from submission_metadata.json; Nones with the reason when unreadable."""
    path = root / "submission_metadata.json"
    try:
        meta = json.loads(bounded.read_bytes(path, METADATA_BYTES, "submission metadata"))
        return (late_policy.parse_time(meta["assignment"]["due_date"]),
                late_policy.parse_time(meta["created_at"]), "submission_metadata.json")
    except (bounded.InputError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        return None, None, f"no usable submission_metadata.json ({str(exc)[:120]})"


def pack_submission(folder: Path, dest: Path, limits: safe_zip.Limits) -> Path:
    """The upload as one zip for grade_one: the zip itself when the student's upload is a lone zip
    that Gradescope left packed, else the folder's files zipped (no links, within the limits)."""
    entries = sorted(folder.iterdir()) if folder.is_dir() else []
    if len(entries) == 1 and entries[0].suffix.lower() == ".zip" and entries[0].is_file():
        return entries[0]
    files, total = [], 0
    for path in sorted(folder.rglob("*")):
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode) or not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise safe_zip.UnsafeZip(f"{path.relative_to(folder)} is a link or special file")
        if stat.S_ISREG(mode):
            files.append(path)
            total += path.lstat().st_size
        if len(files) > limits.max_entries or total > limits.max_bytes:
            raise safe_zip.UnsafeZip(f"more than {limits.max_entries} files or "
                                     f"{limits.max_bytes / 2**20:.0f} MiB")
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as archive:
        for path in files:
            archive.write(path, path.relative_to(folder).as_posix())
    return dest


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="generate_report.py grade",
        description="Grade the one submission in Gradescope's autograder folder and write its "
                    "results/results.json (see autograder/README.md).")
    p.add_argument("--gradescope", action="store_true", required=True)
    p.add_argument("--autograder-root", type=Path, default=Path("/autograder"),
                   help="Gradescope's folder (default /autograder): submission/, "
                        "submission_metadata.json, results/")
    p.add_argument("--data-dir", type=Path, help="folder with the FashionMNIST test IDX files")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds for the model (default 300)")
    p.add_argument("--memory-mb", type=int, default=512,
                   help="memory the model may use (default 512; Gradescope's default container has 768 MB)")
    p.add_argument("--pass-mark", type=float, default=0.90, help="credit above this test accuracy "
                                                                  "(default 0.90, the problem set's)")
    p.add_argument("--build-zip", type=Path, metavar="ZIP",
                   help="instead of grading, write the autograder zip to upload to Gradescope")
    a = p.parse_args(argv)
    if a.timeout <= 0 or a.memory_mb < 64 or not 0 < a.pass_mark < 1:
        p.error("--timeout must be positive, --memory-mb at least 64, --pass-mark between 0 and 1")
    if a.build_zip is None and not a.autograder_root.is_dir():
        p.error(f"--autograder-root {a.autograder_root}: no such folder")
    return a


def main(argv: list[str]) -> int:
    """Exit 0 whenever results.json was written (a failed submission is a score, not an error)."""
    a = parse_args(argv)
    if a.build_zip is not None:
        return build_zip(a.build_zip, a.data_dir)
    start = time.monotonic()
    out = a.autograder_root / "results" / "results.json"
    try:
        result = grade_submission(a)
    except Exception as exc:  # noqa: BLE001 - Gradescope must get a results.json whatever happened
        log.error("%s", traceback.format_exc())
        result = failure_results(f"the autograder failed ({type(exc).__name__}: {str(exc)[:160]}); "
                                 "please tell the course staff", time.monotonic() - start)
    atomic.write_text(out, json.dumps(result, indent=1))
    print(f"score {result['score']:g}; {out}")
    return 0


def grade_submission(a: argparse.Namespace) -> dict[str, Any]:
    from analyses.fashion_mnist import data as fdata
    from miniplaces.grading import grade

    start = time.monotonic()
    test_files = [fdata.FILES["test_images"], fdata.FILES["test_labels"]]
    if a.data_dir and all(fdata._find(a.data_dir, stem) for stem in test_files):
        data_dir = a.data_dir    # the autograder zip carries only the test files
    else:
        data_dir = fdata.locate(a.data_dir, None, offline=True)
    limits = safe_zip.Limits()
    opts = grade.Options((), a.autograder_root / "results", data_dir, 1, a.timeout, a.memory_mb, limits,
                         a.pass_mark)
    due, submitted, source = submission_time(a.autograder_root)
    with tempfile.TemporaryDirectory(prefix="miniplaces-gradescope-") as work:
        try:
            path = pack_submission(a.autograder_root / "submission", Path(work) / "submission.zip", limits)
        except (safe_zip.UnsafeZip, OSError) as exc:
            return failure_results(f"the upload was refused: {exc}", time.monotonic() - start)
        # one submission: its child is forked from this process (torch already imported), no server
        row = grade.grade_one(path, Path(work) / "unpacked", opts, multiprocessing.get_context("fork"))
    late_policy.apply(row, raw_points(row, opts.pass_mark), due, submitted,
                      source if submitted else "")
    if due is None:
        row["submitted_from"] = f"unknown: {source}"
    return results(row, opts.pass_mark, time.monotonic() - start)



def _add(archive: zipfile.ZipFile, name: str, data: bytes, executable: bool = False) -> None:
    info = zipfile.ZipInfo(name, date_time=(2022, 3, 29, 0, 0, 0))
    info.external_attr = (0o100755 if executable else 0o100644) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)


def build_zip(out: Path, data_dir: Path | None) -> int:
    """The one zip to upload: setup.sh and run_autograder at its root, this checkout's tracked files
    in project/ (setup.sh installs them) and the FashionMNIST test files in fashion-mnist/."""
    import subprocess

    from analyses.fashion_mnist import data as fdata

    checkout = resources.ROOT
    try:
        listed = subprocess.run(["git", "-C", str(checkout), "ls-files", "-z"], capture_output=True,
                                check=True).stdout.decode().split("\0")
        data_dir = fdata.locate(data_dir, None, offline=True)
    except (OSError, subprocess.CalledProcessError):
        log.error("error: --build-zip needs a git checkout of the project (%s is not one)", checkout)
        return 2
    except fdata.DataError as exc:
        log.error("error: %s", exc)
        return 2
    with atomic.atomic_open(out) as handle, zipfile.ZipFile(handle, "w") as archive:
        for script in ("setup.sh", "run_autograder"):
            _add(archive, script, (checkout / "autograder" / script).read_bytes(), executable=True)
        for name in filter(None, listed):
            if (checkout / name).is_file():
                _add(archive, f"project/{name}", (checkout / name).read_bytes())
        for stem in (fdata.FILES["test_images"], fdata.FILES["test_labels"]):
            path = fdata._find(data_dir, stem)
            _add(archive, f"fashion-mnist/{path.name}", path.read_bytes())
    print(f"wrote {out}: upload it as the assignment's autograder (Ubuntu 24.04 image)")
    return 0

"""``generate_report.py grade``: check a folder of student submissions (``<kerberos>.zip``) at once.

Every zip is unpacked by ``safe_zip`` (nothing leaves its folder, bombs are refused) and everything
in it that a student made is read in a child process with resource limits (``grade_worker``): the
model file is loaded without running code, rebuilt from its stored config and re-scored on the
FashionMNIST test set; the report is checked. One broken submission never stops the others: each
gets its own verdict. The grades go to OUT/grades.csv and a self-contained OUT/grades.html.

Exit codes: 0 every submission was judged; 2 bad arguments or no FashionMNIST test data.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import multiprocessing
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from miniplaces import atomic, resources
from miniplaces.errors import UserError
from miniplaces.grading import gradescope, late_policy, notebook_check, safe_zip, similarity
from miniplaces.progress import PoolForecast, Ticker

log = logging.getLogger("miniplaces")

PASS_MARK = 0.90              # "You will receive credit if your model attains > 90% accuracy."
CLAIM_TOLERANCE = 0.001       # 10 of the 10 000 test images
MAX_MESSAGE = 1 << 20         # bytes of one answer from the child
MAX_TIMEOUT_S = 7 * 24 * 3600
HIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Zl", "Zp"}  # Unicode categories that do not show as themselves
COLUMNS = ("name", "file", "verdict", "accuracy", "credit", "claimed", "claimed_from", "claims",
           "claim_check", "report_html", "report_pdf", "pdf_pages", "model_file", "problems",
           *notebook_check.COLUMNS, *late_policy.COLUMNS)


@dataclass(frozen=True)
class Options:
    zips: tuple[Path, ...]
    out: Path
    data_dir: Path
    workers: int = 1
    timeout_s: float = 120.0
    memory_mb: int = 4096
    limits: safe_zip.Limits = safe_zip.Limits()
    pass_mark: float = PASS_MARK
    late: late_policy.Submitted | None = None        # --due with --submitted-csv or the zips' times
    starter: frozenset[int] = frozenset()            # shingles of --starter-notebook's code


def parse_args(argv: list[str]) -> Options:
    p = argparse.ArgumentParser(
        prog="generate_report.py grade",
        description="Check a folder of student submissions (<kerberos>.zip): re-score each model on the "
                    "FashionMNIST test set, check each report, write grades.csv and grades.html.",
        epilog="Exit codes: 0 every submission was judged (see grades.csv for each verdict), "
               "2 bad arguments or no FashionMNIST test data.")
    p.add_argument("zips", nargs="+", type=Path, metavar="ZIP_OR_FOLDER",
                   help="submission zips (<kerberos>.zip), or folders holding them")
    p.add_argument("--out", type=Path, default=Path("grades"), help="where grades.csv and grades.html go "
                                                                      "(default: grades/)")
    p.add_argument("--data-dir", type=Path, help="folder with the FashionMNIST IDX files (default: the "
                                                 "Debian package's)")
    p.add_argument("--workers", type=int, default=1,
                   help="submissions graded at once (same results for any N)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds (wall and CPU) per submission before it is stopped (default 120)")
    p.add_argument("--memory-mb", type=int, default=4096,
                   help="memory a submission's model may use (default 4096)")
    p.add_argument("--max-unzipped-mb", type=int, default=500, help="largest total unpacked size of a zip "
                                                                     "(default 500)")
    p.add_argument("--max-entries", type=int, default=1000, help="most files in a zip (default 1000)")
    p.add_argument("--pass-mark", type=float, default=PASS_MARK, help="credit above this test accuracy "
                                                                       "(default 0.90, the problem set's)")
    late_policy.add_arguments(p)
    similarity.add_arguments(p)
    p.add_argument("--gradescope", action="store_true", help="Gradescope autograder mode: grade the one "
                   "submission in --autograder-root (default /autograder); see autograder/README.md")
    p.add_argument("--autograder-root", type=Path, help="Gradescope's folder (with --gradescope)")
    a = p.parse_args(argv)
    if a.autograder_root is not None:
        p.error("--autograder-root goes with --gradescope")
    if not 0 < a.timeout <= MAX_TIMEOUT_S:  # NaN and inf too
        p.error(f"--timeout {a.timeout}: give the seconds per submission, at most {MAX_TIMEOUT_S} (a week)")
    hard = address_space_hard_limit()
    if a.memory_mb * 2**20 >= hard:
        p.error(f"--memory-mb {a.memory_mb}: more than this process may ever map "
                f"(the hard address-space limit, {hard // 2**20} MB)")
    for name, value, low in (("--workers", a.workers, 1),
                             ("--memory-mb", a.memory_mb, 64), ("--max-unzipped-mb", a.max_unzipped_mb, 1),
                             ("--max-entries", a.max_entries, 1)):
        if value < low:
            p.error(f"{name} {value}: must be at least {low:g}")
    if not 0 < a.pass_mark < 1:
        p.error(f"--pass-mark {a.pass_mark}: give an accuracy between 0 and 1, e.g. 0.9")
    zips: list[Path] = []
    for path in a.zips:
        if path.is_dir():
            found = sorted(f for f in path.iterdir() if f.suffix.lower() == ".zip" and f.is_file())
            if not found:
                p.error(f"{path}: no .zip files in this folder")
            zips += found
        elif not path.is_file():
            p.error(f"{path}: no such file or folder")
        elif path.suffix.lower() != ".zip":
            p.error(f"{path}: not a .zip file (submissions are <kerberos>.zip)")
        else:
            zips.append(path)
    unique = list({z.resolve(): z for z in zips}.values())
    from analyses.fashion_mnist import data as fdata

    try:
        data_dir = fdata.locate(a.data_dir, None, offline=True)
    except fdata.DataError as exc:
        p.error(str(exc))
    return Options(tuple(unique), a.out, data_dir, a.workers, a.timeout, a.memory_mb,
                   safe_zip.Limits(a.max_unzipped_mb * 2**20, a.max_entries), a.pass_mark,
                   late_policy.from_args(p, a), similarity.starter_from_args(p, a))


def address_space_hard_limit() -> int:
    """The most address space a child may be given (``ulimit -H -v``; 2**62 bytes when unlimited)."""
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    return 2**62 if hard == resource.RLIM_INFINITY else hard


def main(argv: list[str]) -> int:
    if "--gradescope" in argv:
        return gradescope.main(argv)
    opts = parse_args(argv)
    from miniplaces.outdir import lock_out_dir

    try:
        with lock_out_dir(opts.out):
            rows = grade_all(opts)
            write_outputs(rows, opts)
    except UserError as exc:
        log.error("error: %s", exc)
        return exc.exit_code
    credit = sum(r["verdict"] == "credit" for r in rows)
    scored = sum(r["accuracy"] is not None for r in rows)
    print(f"graded {len(rows)} submissions: {credit} with credit, {scored - credit} scored without, "
          f"{len(rows) - scored} not scored; {opts.out / 'grades.csv'}, {opts.out / 'grades.html'}",
          file=sys.stderr)
    return 0


def grade_all(opts: Options) -> list[dict[str, Any]]:
    """One row per zip, in the order given, whatever the number of workers."""
    context = multiprocessing.get_context("forkserver")
    # torch is imported once, not per child
    context.set_forkserver_preload(["miniplaces.grading.grade_worker"])
    from miniplaces.grading.grade_worker import PRELOAD_ENV

    os.environ[PRELOAD_ENV] = str(opts.data_dir)   # and the test set read once, by the server
    warm_up = context.Process(target=int)  # the server's start must not count against a submission's time
    warm_up.start()
    warm_up.join()
    rows: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="miniplaces-grade-") as work, \
            ThreadPoolExecutor(max_workers=opts.workers) as pool:
        futures = {pool.submit(grade_one, path, Path(work) / str(i), opts, context): i
                   for i, path in enumerate(opts.zips)}
        forecast = PoolForecast(len(futures), opts.workers)   # the pool takes the zips in this order
        with Ticker("grading", len(futures)) as ticker:
            for future in as_completed(futures):
                rows[futures[future]] = future.result()
                ticker.update(left=forecast.finished(futures[future]))
    return [rows[i] for i in range(len(opts.zips))]


def grade_one(path: Path, folder: Path, opts: Options, context) -> dict[str, Any]:
    """Unpack one zip, check it in a limited child process, and turn the answers into a row."""
    row: dict[str, Any] = {"name": path.stem, "file": path.name, "accuracy": None, "claimed": None,
                           "claimed_from": "", "report_html": "", "report_pdf": "", "pdf_pages": None,
                           "model_file": "", "problems": [], "likeness": {}}
    folder.mkdir(parents=True)
    try:
        safe_zip.extract(path, folder, opts.limits)
        answers, failure = run_child(folder, opts, context)
    except safe_zip.UnsafeZip as exc:
        answers, failure = [], f"zip refused: {exc}"
    except Exception as exc:  # noqa: BLE001 - one submission never stops the others
        log.warning("%s: %s: %s", path.name, type(exc).__name__, exc)
        answers, failure = [], f"could not be checked ({type(exc).__name__}: {str(exc)[:160]})"
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    for answer in answers:
        take_answer(row, answer)
    if failure:
        row["problems"].insert(0, failure)
        row.setdefault("model_error", failure)
    claims = [(row.get("claimed_model_file"), "model file"),
              (row.get("claimed_results_json"), "results.json")]
    row["claims"] = [(c, f) for c, f in claims if c is not None]
    row["claimed"], row["claimed_from"] = row["claims"][0] if row["claims"] else (None, "")
    graded = {**finish(row, opts), "likeness": row["likeness"], "model_error": row.get("model_error", "")}
    when, source = opts.late.of(row["name"], path) if opts.late else (None, "")
    return late_policy.apply(graded, gradescope.raw_points(graded, opts.pass_mark),
                             opts.late and opts.late.due, when, source)


def take_answer(row: dict[str, Any], answer: dict[str, Any]) -> None:
    """Merge one answer of the child into the row, keeping only known fields of the expected types
    (the child only reads student files, yet its answer is not trusted further than that)."""
    row["problems"] += [str(p) for p in answer.get("problems", []) if isinstance(p, str)]
    if isinstance(answer.get("model_error"), str):
        row["problems"].insert(0, answer["model_error"])
        row["model_error"] = answer["model_error"]
    if "notebook" in answer:
        row["likeness"]["shingles"] = notebook_check.take(row, answer["notebook"])
    similarity.take(row["likeness"], answer)
    for key in ("accuracy", "claimed_model_file", "claimed_results_json"):
        value = answer.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1:
            row[key] = float(value)
    for key in ("report_html", "report_pdf", "model_file"):
        if isinstance(answer.get(key), str):
            row[key] = answer[key]
    if isinstance(answer.get("pdf_pages"), int):
        row["pdf_pages"] = answer["pdf_pages"]


def run_child(folder: Path, opts: Options, context) -> tuple[list[dict[str, Any]], str]:
    """The child's answers (report checks, model checks) and, when it did not finish, why."""
    from miniplaces.grading import grade_worker

    reader, writer = context.Pipe(duplex=False)
    child = context.Process(target=grade_worker.run, daemon=True, args=(
        str(folder), str(opts.data_dir), opts.memory_mb, max(1, int(opts.timeout_s + 0.999)), writer))
    child.start()
    writer.close()
    deadline = time.monotonic() + opts.timeout_s
    answers: list[dict[str, Any]] = []
    timed_out = False
    with reader:
        while len(answers) < 2:
            if not reader.poll(max(0.0, deadline - time.monotonic())):
                timed_out = True
                break
            try:
                answer = json.loads(reader.recv_bytes(MAX_MESSAGE))
            except (EOFError, OSError, ValueError):
                break
            answers.append(answer if isinstance(answer, dict) else {})
    child.join(max(0.1, deadline - time.monotonic()) if not timed_out else 0.1)
    if child.is_alive():
        child.kill()
        child.join()
    if len(answers) == 2:
        return answers, ""
    if timed_out:
        why = f"stopped after {opts.timeout_s:g} s (--timeout): the model takes too long"
    elif child.exitcode == -signal.SIGXCPU:
        why = f"stopped: used more than {opts.timeout_s:g} s of CPU time (--timeout)"
    elif child.exitcode == -signal.SIGKILL:
        why = "killed (out of memory?)"
    else:
        why = f"the checking process ended without an answer (exit code {child.exitcode})"
    return answers, why


def finish(row: dict[str, Any], opts: Options) -> dict[str, Any]:
    """The verdict, credit and claim check of a row whose checks are done (accuracy None: not scored)."""
    accuracy = row["accuracy"]
    row["credit"] = None if accuracy is None else accuracy > opts.pass_mark
    row["verdict"] = "not scored" if accuracy is None else "credit" if row["credit"] else "no credit"
    check_claims(row, accuracy)
    return {column: visible(row.get(column)) for column in COLUMNS}


def visible(value: Any) -> Any:
    """Texts from a submission with every control, format (U+202E, the right-to-left override, and
    the other bidi marks) or lone surrogate character written as <U+XXXX>: a name cannot display as
    another, and grades.csv and grades.html hold only characters that show."""
    if isinstance(value, list):
        return [visible(v) for v in value]
    if not isinstance(value, str):
        return value
    return "".join(f"<U+{ord(c):04X}>" if unicodedata.category(c) in HIDDEN_CATEGORIES else c for c in value)


def check_claims(row: dict[str, Any], accuracy: float | None) -> None:
    """Every claim found (model file, results.json) against the others and against the re-scored
    accuracy; each disagreement is a problem. ``claims`` becomes the text of all of them."""
    claims = row.get("claims", [])
    row["claims"] = "; ".join(f"{100 * c:.2f} % in the {where}" for c, where in claims)
    values = [c for c, _ in claims]
    if values and max(values) - min(values) > CLAIM_TOLERANCE:
        row["problems"].append("the claims disagree: " + row["claims"])
    checks = []
    for claimed, where in claims if accuracy is not None else ():
        if abs(claimed - accuracy) <= CLAIM_TOLERANCE:
            checks.append((where, "matches"))
        else:
            checks.append((where, f"differs by {100 * (claimed - accuracy):+.2f} points"))
            row["problems"].append(f"claims {100 * claimed:.2f} % in the {where}, "
                                   f"re-scored {100 * accuracy:.2f} %")
    if accuracy is None:
        row["claim_check"] = ""
    elif len(checks) < 2:
        row["claim_check"] = checks[0][1] if checks else "no claim"
    else:
        row["claim_check"] = "; ".join(f"{where} {check}" for where, check in checks)


def write_outputs(rows: list[dict[str, Any]], opts: Options) -> None:
    pairs = similarity.find_pairs(rows, [r["likeness"] for r in rows], similarity.test_labels(opts.data_dir),
                                  opts.starter)
    atomic.write_text(opts.out / "grades.csv", to_csv(rows))
    atomic.write_text(opts.out / "similar.csv", to_csv(pairs, similarity.COLUMNS))
    atomic.write_text(opts.out / "grades.html", to_html(rows, opts, pairs))


def _cell(value: Any) -> str:
    """A CSV cell; text a student chose that a spreadsheet would read as a formula gets a leading '."""
    if value is None:
        return ""
    if isinstance(value, list):
        value = "; ".join(value)
    if isinstance(value, float):
        return f"{value:.4f}"
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row[c]) for c in columns])
    return buffer.getvalue()


def to_html(rows: list[dict[str, Any]], opts: Options, pairs: list[dict[str, str]] = ()) -> str:
    """grades.html: one file, inline CSS and script, every submitted value escaped by Jinja."""
    import jinja2

    folder = resources.folder("templates")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(folder), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    counts = {v: sum(r["verdict"] == v for r in rows) for v in ("credit", "no credit", "not scored")}
    return env.get_template("grades.html.j2").render(
        rows=rows, counts=counts, pairs=pairs, due=opts.late.due if opts.late else None,
        pass_mark=opts.pass_mark, data_dir=str(opts.data_dir),
        timeout_s=opts.timeout_s, memory_mb=opts.memory_mb, workers=opts.workers,
        max_unzipped_mb=opts.limits.max_bytes // 2**20, max_entries=opts.limits.max_entries,
        when=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))

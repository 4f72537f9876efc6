"""What ``grade`` runs in a child process per submission: every check that reads a student's files.

The child is forked from a server that has imported torch once, limits its own address space and
CPU time (``resource.setrlimit``) and runs on one thread, so one huge or slow model cannot hang or
starve the batch, and the score does not depend on how many workers run. It answers over a pipe
in two JSON messages, the report checks and then the model's, so a model that is killed for time
or memory loses only its own verdict.
"""
from __future__ import annotations

import json
import logging
import math
import os
import pickle
import resource
import signal
import warnings
from pathlib import Path
from typing import Any

import pypdf
import torch

from analyses.fashion_mnist import data as fdata
from analyses.fashion_mnist.model import FORMAT, ModelConfig, build_model
from analyses.fashion_mnist.train import evaluate
from miniplaces.grading import notebook_check, selfcontained, similarity
from miniplaces.report.sections import saved_model_path, saved_model_record

MODEL_SUFFIXES = (".pt", ".pth")
EVAL_BATCH = 250      # activations of the report's network: ~100 MB, a quarter of the training default
PREFERRED_MODEL = "fashion_mnist_model.pt"     # the name generate_report.py gives it
REPORT_SHARE = 0.25      # of the submission's time, for the report checks: the model keeps the rest
MAX_HTML_BYTES = 32 << 20      # this tool's own report.html is a few MB
MAX_RESULTS_BYTES = 16 << 20
BOUNDED_WHERE_MADE = ("predictions", "shingles")
MAX_TEXT, MAX_ITEMS = 500, 20  # of an answer's texts and lists: the pipe takes at most 1 MiB


def run(folder: str, data_dir: str, memory_mb: int, cpu_s: int, conn) -> None:
    """The child's entry point: limit this process, then send the report and the model checks, each
    answer sent even when its check broke (a failure is a problem line, never a traceback)."""
    limit_resources(memory_mb, cpu_s)
    torch.set_num_threads(1)
    logging.getLogger("pypdf").setLevel(logging.CRITICAL)
    def report_and_notebook() -> dict:
        notebook = _alone("the notebook", lambda: notebook_check.check_folder(Path(folder)))
        return {**report_checks(Path(folder), REPORT_SHARE * cpu_s), "notebook": notebook}

    checks = (("the report", report_and_notebook),
              ("the model", lambda: model_checks(Path(folder), Path(data_dir))))
    with conn:
        for what, check in checks:
            answer = _alone(what, check)
            try:
                conn.send_bytes(json.dumps(_bounded(answer)).encode())
            except OSError:  # the parent stopped listening (it timed out): nothing more to say
                return


def _alone(what: str, check) -> dict:
    """One check's answer, or one problem line saying why it has none: a check fails alone."""
    try:
        return check()
    except Exception as exc:  # noqa: BLE001 - never end without an answer
        why = ("needs more memory than the limit (--memory-mb)" if isinstance(exc, MemoryError)
               else f"could not be checked ({_one_line(exc)})")
        return {"problems": [f"{what} {why}"]}


def _bounded(value: Any) -> Any:
    """An answer of bounded size: long texts (a 2 MB URL) and long lists are cut, except the copied-work
    evidence, which is bounded where it is made (10 000 predicted digits, at most MAX_SHINGLES)."""
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + "…"
    if isinstance(value, list):
        return [_bounded(v) for v in value[:MAX_ITEMS]]
    if isinstance(value, dict):
        return {k: v if k in BOUNDED_WHERE_MADE else _bounded(v) for k, v in value.items()}
    return value


def limit_resources(memory_mb: int, cpu_s: int) -> None:
    """At most ``memory_mb`` more address space than the forked process already maps, and
    ``cpu_s`` seconds of CPU time (then SIGXCPU ends it)."""
    try:
        with open("/proc/self/statm") as handle:
            mapped = int(handle.read().split()[0]) * resource.getpagesize()
    except OSError:  # no /proc (macOS, which does not enforce RLIMIT_AS anyway)
        mapped = 0
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    limit = mapped + memory_mb * 2**20
    limit = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))


class _OutOfTime(Exception):
    """The report checks used up their share of the submission's time."""


def checked_alone(out: dict[str, Any], what: str, check, *args) -> bool:
    """Run one check; whatever it raises (a RecursionError from a nested file, MemoryError) becomes a
    problem line of its own, and the other checks still run. False: the time share is used up."""
    try:
        check(out, *args)
    except _OutOfTime:
        out["problems"].append(f"{what} was not checked: the report checks took more than their share "
                               f"({100 * REPORT_SHARE:.0f} %) of --timeout")
        return False
    except MemoryError:
        out["problems"].append(f"{what} was not checked: it needs more memory than the limit")
    except Exception as exc:  # noqa: BLE001 - a student's file may break any parser
        out["problems"].append(f"{what} could not be checked ({_one_line(exc)})")
    return True


def report_checks(folder: Path, budget_s: float = 0) -> dict[str, Any]:
    """report.html (present, self-contained), report.pdf (readable, pages) and results.json's claim,
    each alone, within ``budget_s`` seconds together (0: no limit)."""
    out: dict[str, Any] = {"report_html": "missing", "html_external": [], "report_pdf": "missing",
                           "pdf_pages": None, "claimed_results_json": None, "problems": []}
    notebooks = sorted(p.name for p in folder.glob("*.ipynb") if p.is_file())
    previous = signal.signal(signal.SIGALRM, _out_of_time)
    signal.setitimer(signal.ITIMER_REAL, budget_s)
    checks = (("report.html", check_html, folder / "report.html", notebooks),
              ("report.pdf", check_pdf, folder / "report.pdf", notebooks),
              ("results.json", check_results, folder / "results.json"))
    try:
        for what, check, *args in checks:
            if not checked_alone(out, what, check, *args):
                break
    except _OutOfTime:  # between two checks
        out["problems"].append("the report checks took more than their share of --timeout")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return out


def _out_of_time(signum, frame):
    raise _OutOfTime


def check_html(out: dict[str, Any], html: Path, notebooks: list[str]) -> None:
    if not html.is_file():
        if notebooks:
            out["report_html"] = f"none (notebook {notebooks[0]})"
        else:
            out["problems"].append("no report.html (nor a notebook) at the zip's root")
        return
    out["report_html"] = "not checked"
    size = html.stat().st_size
    if size > MAX_HTML_BYTES:
        out["problems"].append(f"report.html was not checked: {size / 2**20:.0f} MiB, more than "
                               f"{MAX_HTML_BYTES // 2**20} MiB")
        return
    findings = selfcontained.check(html.read_bytes())
    out["report_html"] = findings.verdict
    urls = findings.requests
    out["html_external"] = urls[:5]
    if urls:
        out["problems"].append(f"report.html is not self-contained: it loads {urls[0]}"
                               + (f" and {len(urls) - 1} more" if len(urls) > 1 else ""))
    elif findings.scripts or findings.unverifiable:
        reasons = findings.scripts or findings.unverifiable
        out["problems"].append(f"report.html may load from other hosts: it has {reasons[0]}"
                               + (f" and {len(reasons) - 1} more" if len(reasons) > 1 else ""))


def check_pdf(out: dict[str, Any], pdf: Path, notebooks: list[str]) -> None:
    if not pdf.is_file():
        if not notebooks:
            out["problems"].append("no report.pdf at the zip's root")
        return
    try:
        pages = len(pypdf.PdfReader(pdf).pages)
        out["report_pdf"], out["pdf_pages"] = f"{pages} pages", pages
    except (_OutOfTime, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure means "unreadable"
        out["report_pdf"] = "unreadable"
        out["problems"].append(f"report.pdf is unreadable ({_one_line(exc)})")


def check_results(out: dict[str, Any], results: Path) -> None:
    if not results.is_file():
        return
    if results.stat().st_size > MAX_RESULTS_BYTES:
        out["problems"].append(f"results.json was not read: more than {MAX_RESULTS_BYTES // 2**20} MiB")
        return
    try:
        claim = saved_model_record(json.loads(results.read_text(encoding="utf-8")))["test_acc"]
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        out["problems"].append(f"results.json holds no {saved_model_path()}.test_acc")
        return
    out["claimed_results_json"] = _claim(out, claim, "results.json")


def _claim(out: dict[str, Any], value: Any, where: str) -> float | None:
    """A claimed accuracy; one that is not a number in [0, 1] (99 for 99 %?) is a problem."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and 0 <= value <= 1:
        return float(value)
    if value is not None:
        out["problems"].append(f"the {where} claims test_acc {str(value)[:40]}, not an accuracy in [0, 1]")
    return None


def model_checks(folder: Path, data_dir: Path) -> dict[str, Any]:
    """Find the model file at the root, load it without running code, rebuild it and score it."""
    models = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in MODEL_SUFFIXES)
    if not models:
        deeper = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                        if p.is_file() and p.suffix in MODEL_SUFFIXES)
        if deeper:
            return {"model_error": f"wrong layout: the model file {deeper[0]} is not at the zip's root"}
        return {"model_error": "no model file (.pt or .pth) in the zip"}
    path = next((p for p in models if p.name == PREFERRED_MODEL), models[0])
    out: dict[str, Any] = {"model_file": path.name, "problems": []}
    if len(models) > 1:
        out["problems"].append(f"{len(models)} model files at the root "
                               f"({', '.join(p.name for p in models)}); scored {path.name}")
    try:
        with warnings.catch_warnings():   # torch's notes on a student's pickle protocol are not the grader's
            warnings.simplefilter("ignore", UserWarning)
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            return {**out, "model_error": f"refused {path.name}: it holds objects other than tensors "
                                          "(code in the pickle?); nothing in it was run"}
        return {**out, "model_error": f"{path.name} is not a readable torch file ({_one_line(exc)})"}
    except Exception as exc:  # noqa: BLE001 - truncated zip, bad magic number, ...
        return {**out, "model_error": f"{path.name} is corrupt or truncated ({_one_line(exc)})"}
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        return {**out, "model_error": f"{path.name} is not a {FORMAT} file (saved by generate_report.py)"}
    out["claimed_model_file"] = _claim(out, blob.get("test_acc"), "model file")
    if isinstance(blob.get("state_dict"), dict):
        out["weights"] = similarity.weights_digest(blob["state_dict"])
    test_x, test_y = load_test_set(data_dir)
    try:  # the config is the student's: every failure to build or fill the network is theirs
        net = build_model(ModelConfig.from_dict(dict(blob["config"])))
        net.load_state_dict(blob["state_dict"])
        net.eval()
        with torch.inference_mode():
            outputs = tuple(net(test_x[:2]).shape)
        if outputs != (2, len(fdata.CLASSES)):
            return {**out, "model_error": f"the network's output has shape {outputs}, "
                                          f"FashionMNIST needs (batch, {len(fdata.CLASSES)})"}
        with similarity.recording_predictions(net) as predicted:
            out["accuracy"] = evaluate(net, test_x, test_y, batch_size=EVAL_BATCH).accuracy
        out["predictions"] = predicted.digits()
    except MemoryError:
        return {**out, "model_error": "the model needs more memory than the limit (--memory-mb)"}
    except Exception as exc:  # noqa: BLE001
        if "can't allocate memory" in str(exc) or "not enough memory" in str(exc):
            return {**out, "model_error": "the model needs more memory than the limit (--memory-mb)"}
        return {**out, "model_error": f"{path.name} does not rebuild into a working network "
                                      f"({_one_line(exc)})"}
    return out


PRELOAD_ENV = "MINIPLACES_GRADE_TEST_SET"   # grade_all names the data folder here before the fork server
_loaded: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}


def load_test_set(data_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The test set, read once per process: the fork server reads it when it imports this module (see
    PRELOAD_ENV), and every child forked from it shares those pages instead of reading the files again."""
    key = str(data_dir)
    if key not in _loaded:
        _loaded[key] = read_test_set(data_dir)
    return _loaded[key]


def read_test_set(data_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The 10 000 FashionMNIST test images in [0, 1] and their labels (the train files are not read)."""
    x, y = (fdata.read_idx(next(p for p in (data_dir / (stem + ".gz"), data_dir / stem) if p.is_file()))
            for stem in (fdata.FILES["test_images"], fdata.FILES["test_labels"]))
    if tuple(x.shape) != (fdata.COUNTS["test"], 28, 28) or tuple(y.shape) != (fdata.COUNTS["test"],):
        raise fdata.DataError(f"{data_dir}: the test files do not hold 10 000 images of 28 x 28 "
                              "and their labels")
    return x.float().div_(255).unsqueeze(1), y.long()


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:160]}" if lines else type(exc).__name__


if os.environ.get(PRELOAD_ENV):
    try:
        load_test_set(Path(os.environ[PRELOAD_ENV]))
    except Exception:  # noqa: BLE001 - each child then reads it, and reports what is wrong, itself
        pass

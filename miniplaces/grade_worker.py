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
import re
import resource
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pypdf
import torch

from analyses.fashion_mnist import data as fdata
from analyses.fashion_mnist.model import FORMAT, ModelConfig, build_model
from analyses.fashion_mnist.train import evaluate

from . import notebook_check, similarity

MODEL_SUFFIXES = (".pt", ".pth")
EVAL_BATCH = 250      # activations of the report's network: ~100 MB, a quarter of the training default
PREFERRED_MODEL = "fashion_mnist_model.pt"     # the name generate_report.py gives it
EXTERNAL = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.I)     # http://, https://, //host
CSS_URL = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])([^'")\s]+)""", re.I)
LOADING_LINKS = {"stylesheet", "icon", "preload", "prefetch", "modulepreload", "manifest", "import"}


def run(folder: str, data_dir: str, memory_mb: int, cpu_s: int, conn) -> None:
    """The child's entry point: limit this process, then send the report and the model checks."""
    limit_resources(memory_mb, cpu_s)
    torch.set_num_threads(1)
    logging.getLogger("pypdf").setLevel(logging.CRITICAL)
    report = {**report_checks(Path(folder)), "notebook": notebook_check.check_folder(Path(folder))}
    conn.send_bytes(json.dumps(report).encode())
    conn.send_bytes(json.dumps(model_checks(Path(folder), Path(data_dir))).encode())
    conn.close()


def limit_resources(memory_mb: int, cpu_s: int) -> None:
    """At most ``memory_mb`` more address space than the forked process already maps, and
    ``cpu_s`` seconds of CPU time (then SIGXCPU ends it)."""
    try:
        with open("/proc/self/statm") as handle:
            mapped = int(handle.read().split()[0]) * resource.getpagesize()
    except OSError:  # no /proc (macOS, which does not enforce RLIMIT_AS anyway)
        mapped = 0
    limit = mapped + memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))


class _Requests(HTMLParser):
    """Collects the URLs a page fetches from other hosts while it loads (not its plain links)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        loads = [values.get(name) for name in ("src", "poster", "data", "background")]
        loads += [part.split()[0] for part in (values.get("srcset") or "").split(",") if part.split()]
        if tag == "link" and LOADING_LINKS & set((values.get("rel") or "").lower().split()):
            loads.append(values.get("href"))
        if tag == "meta" and (values.get("http-equiv") or "").lower() == "refresh":
            loads.append((values.get("content") or "").partition("url=")[2])
        loads += CSS_URL.findall(values.get("style") or "")
        self.urls += [u for u in loads if u and EXTERNAL.match(u)]
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.urls += [u for u in CSS_URL.findall(data) if EXTERNAL.match(u)]


def external_requests(html: str) -> list[str]:
    parser = _Requests()
    parser.feed(html)
    parser.close()
    return parser.urls


def report_checks(folder: Path) -> dict[str, Any]:
    """report.html (present, self-contained), report.pdf (readable, pages) and results.json's claim."""
    out: dict[str, Any] = {"report_html": "missing", "html_external": [], "report_pdf": "missing",
                           "pdf_pages": None, "claimed_results_json": None, "problems": []}
    html, pdf = folder / "report.html", folder / "report.pdf"
    notebooks = sorted(p.name for p in folder.glob("*.ipynb") if p.is_file())
    if html.is_file():
        urls = external_requests(html.read_text(encoding="utf-8", errors="replace"))
        out["html_external"] = urls[:5]
        out["report_html"] = ("self-contained" if not urls else
                              f"{len(urls)} external request{'s' if len(urls) > 1 else ''}")
        if urls:
            out["problems"].append(f"report.html is not self-contained: it loads {urls[0]}"
                                   + (f" and {len(urls) - 1} more" if len(urls) > 1 else ""))
    elif notebooks:
        out["report_html"] = f"none (notebook {notebooks[0]})"
    else:
        out["problems"].append("no report.html (nor a notebook) at the zip's root")
    if pdf.is_file():
        try:
            pages = len(pypdf.PdfReader(pdf).pages)
            out["report_pdf"], out["pdf_pages"] = f"{pages} pages", pages
        except Exception as exc:  # noqa: BLE001 - any parser failure means "unreadable"
            out["report_pdf"] = "unreadable"
            out["problems"].append(f"report.pdf is unreadable ({_one_line(exc)})")
    elif not notebooks:
        out["problems"].append("no report.pdf at the zip's root")
    results = folder / "results.json"
    if results.is_file():
        try:
            claim = json.loads(results.read_text(encoding="utf-8"))["fashion_mnist"]["final"]["test_acc"]
            out["claimed_results_json"] = _accuracy(claim)
        except (ValueError, KeyError, TypeError):
            out["problems"].append("results.json holds no fashion_mnist.final.test_acc")
    return out


def _accuracy(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok and 0 <= value <= 1 else None


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
    out["claimed_model_file"] = _accuracy(blob.get("test_acc"))
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

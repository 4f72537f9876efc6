"""A whole quick-preset run: outputs exist, numbers agree across results.json, HTML and PDF, cache reuse."""
from __future__ import annotations

import html
import json
import re

import pytest
from pypdf import PdfReader

from conftest import run_cli

pytestmark = pytest.mark.slow


def html_text(out) -> str:
    return html.unescape((out / "report.html").read_text())


def pdf_text(out) -> str:
    return " ".join(page.extract_text() for page in PdfReader(out / "report.pdf").pages)


def test_outputs_exist(quick_report):
    out = quick_report["out"]
    for name in ["report.html", "report.pdf", "results.json"]:
        assert (out / name).stat().st_size > 1000
    assert len(list((out / "figures").glob("*.png"))) >= 3
    report = (out / "report.html").read_text()
    assert "<img" in report and 'src="figures/' not in report and "data:image/png;base64," in report  # self-contained


def test_demo_is_marked_everywhere(quick_report):
    results, out = quick_report["results"], quick_report["out"]
    assert results["model"]["demo"] is True and len(results["model"]["sha256"]) == 64
    assert 'id="demo-banner"' in (out / "report.html").read_text()
    assert "DEMO WEIGHTS" in pdf_text(out)
    assert "UNTRAINED" in quick_report["stderr"]


def test_numbers_agree_between_json_html_and_pdf(quick_report):
    results, out = quick_report["results"], quick_report["out"]
    page, pdf = html_text(out), re.sub(r"\s+", " ", pdf_text(out))
    assert results["model"]["sha256"] in page
    assert f"{results['run']['analysis_seconds']:.1f} s for the analyses" in page
    for layer in results["filters"]["layers"]:
        shape = " x ".join(str(d) for d in layer["shape"])
        for text in (f"{layer['norm_median']:.3f}", shape, layer["layer"]):
            assert text in page and text in pdf
    fm = results.get("fashion_mnist")
    if fm:
        shown = f"{100 * fm['final']['test_acc']:.2f} %"
        assert f"Test accuracy {shown}" in page and f"Test accuracy {shown}" in pdf
        baseline = f"{100 * fm['baseline']['val_acc']:.2f} %"
        assert baseline in page and baseline in pdf
    for scene in results.get("scenes", []):
        assert html.escape(scene["image"], quote=False) in (out / "report.html").read_text() or scene["image"] in page
        best = scene["top5"][0]
        assert best["label"] in page and f"{100 * best['prob']:.1f} %" in page and f"{100 * best['prob']:.1f} %" in pdf
        for cam_class in scene["cam"]["classes"]:
            assert (out / scene["cam"]["file"]).is_file()


def test_second_run_reuses_the_cache(quick_report, tmp_path):
    out = tmp_path / "again"
    result = run_cli("--preset", "quick", cache=quick_report["cache"], out=out, torch_home=quick_report["torch_home"])
    assert result.returncode == 0, result.stderr[-2000:]
    again = json.loads((out / "results.json").read_text())
    assert again["run"]["cache"]["misses"] == [] and again["run"]["cache"]["hits"]
    first = quick_report["results"]
    for key in ("filters", "fashion_mnist", "scenes"):
        if key in first:
            assert _strip_timings(again[key]) == _strip_timings(first[key]), key


def _strip_timings(obj):
    """Timings, cache flags and out-dir paths differ between runs by nature; everything else must not."""
    if isinstance(obj, dict):
        return {k: _strip_timings(v) for k, v in obj.items()
                if not re.search(r"seconds|_s$|time|cached|trained|command|snippet", k)}
    if isinstance(obj, list):
        return [_strip_timings(v) for v in obj]
    return obj


def test_submission_zip(quick_report, tmp_path):
    import zipfile

    common = dict(cache=quick_report["cache"], torch_home=quick_report["torch_home"])
    refused = run_cli("--preset", "quick", "--submission", "jdoe", out=tmp_path / "refused", **common)
    assert refused.returncode == 2 and "DEMO" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "refused" / "results.json").exists()  # refused before any work
    out = tmp_path / "packed"
    packed = run_cli("--preset", "quick", "--submission", "jdoe", "--allow-demo-submission", out=out, **common)
    assert packed.returncode == 0, packed.stderr[-2000:]
    with zipfile.ZipFile(out / "jdoe.zip") as archive:
        names = sorted(archive.namelist())
        model_file = json.loads((out / "results.json").read_text())["fashion_mnist"]["final"]["model_file"]
        assert names == sorted(["report.html", "report.pdf", model_file.split("/")[-1]])
        assert archive.read("report.html") == (out / "report.html").read_bytes()
    assert "jdoe.zip" in packed.stderr

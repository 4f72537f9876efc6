"""A whole quick-preset run: outputs exist, numbers agree across results.json, HTML and PDF, cache reuse."""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import run_here
from pypdf import PdfReader

pytestmark = pytest.mark.slow


def html_text(out) -> str:
    return html.unescape((out / "report.html").read_text())


def pdf_text(out) -> str:
    return " ".join(page.extract_text() for page in PdfReader(out / "report.pdf").pages)


def plain_text(fragment: str) -> str:
    """Visible text of an HTML fragment: tags dropped, entities decoded, whitespace collapsed."""
    fragment = re.sub(r"<(script|style)\b.*?</\1>", " ", fragment, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", fragment))).strip()


def html_section(out, anchor: str) -> str:
    """Text of the report from the heading with id=anchor to the next h1-h3 heading that has an id."""
    page = (out / "report.html").read_text()
    start = page.rfind("<", 0, page.index(f'id="{anchor}"'))
    following = re.compile(r"<h[1-3]\b[^>]*\bid=").search(page, start + 1)
    return plain_text(page[start: following.start() if following else len(page)])


def pdf_section(out, title_prefix: str) -> str:
    """Text of the PDF pages from the bookmark whose title starts with ``title_prefix`` to the next
    bookmark."""
    reader = PdfReader(out / "report.pdf")
    marks = []

    def walk(items):
        for item in items:
            walk(item) if isinstance(item, list) else marks.append(
                (item.title, reader.get_destination_page_number(item)))

    walk(reader.outline)
    i = next(i for i, (title, _) in enumerate(marks) if title.startswith(title_prefix))
    first, last = marks[i][1], marks[i + 1][1] if i + 1 < len(marks) else len(reader.pages) - 1
    return re.sub(r"\s+", " ", " ".join(reader.pages[p].extract_text() for p in range(first, last + 1)))


def scene_parts(text: str, scene: str, others: list[str]) -> list[str]:
    """Each stretch of ``text`` from a mention of ``scene`` to the next mention of another scene."""
    parts = []
    for match in re.finditer(re.escape(scene), text):
        ends = [text.find(o, match.end()) for o in others if o != scene]
        ends = [e for e in ends if e >= 0]
        parts.append(text[match.start(): min(ends) if ends else len(text)])
    return parts


def shown_percent(p: float) -> list[str]:
    """How a probability may be printed: one or two decimals, in per cent."""
    return [f"{100 * p:.1f} %", f"{100 * p:.2f} %"]


def test_outputs_exist(quick_report):
    out = quick_report["out"]
    for name in ["report.html", "report.pdf", "results.json"]:
        assert (out / name).stat().st_size > 1000
    assert len(list((out / "figures").glob("*.png"))) >= 3
    report = (out / "report.html").read_text()
    assert ("<img" in report and 'src="figures/' not in report
            and "data:image/png;base64," in report)  # self-contained


def test_demo_is_marked_everywhere(quick_report):
    results, out = quick_report["results"], quick_report["out"]
    assert results["model"]["demo"] is True and len(results["model"]["sha256"]) == 64
    assert 'id="demo-banner"' in (out / "report.html").read_text()
    assert "DEMO WEIGHTS" in pdf_text(out)
    assert "UNTRAINED" in quick_report["stderr"]


def test_numbers_agree_between_json_html_and_pdf(quick_report):
    """Each number is looked for in the section that answers with it, not anywhere on the page."""
    results, out = quick_report["results"], quick_report["out"]
    page = html_text(out)
    assert results["model"]["sha256"] in page
    assert f"{results['run']['analysis_seconds']:.1f} s for the analyses" in page
    filters_html, filters_pdf = html_section(out, "filters-1b"), pdf_section(out, "1b.")
    for layer in results["filters"]["layers"]:
        shape = " x ".join(str(d) for d in layer["shape"])
        for text in (f"{layer['norm_median']:.3f}", shape, layer["layer"]):
            assert text in filters_html and text in filters_pdf, (layer["layer"], text)
    fm = results.get("fashion_mnist")
    if fm:
        test_images = f"{fm['data']['test_images']:,}"
        said = f"scores {100 * fm['final']['test_acc']:.2f} % on the {test_images} test images"
        assert said in html_section(out, "fm-final") and said in pdf_section(out, "The final model")
        baseline = f"{100 * fm['baseline']['val_acc']:.2f} %"
        assert baseline in html_section(out, "fm-4d") and baseline in pdf_section(out, "4d.")
    names = [scene["image"] for scene in results.get("scenes", [])]
    ablation_html, sweep_html = html_section(out, "units-2c"), html_section(out, "units-2d")
    for scene in results.get("scenes", []):
        # 2c: the top-1 class and its probability, in this scene's part of the section
        best = scene["top5"][0]
        assert scene["ablation"]["prob_before"] == pytest.approx(best["prob"], abs=1e-5)   # pooled vs forward
        assert any(best["label"] in part and any(p in part for p in shown_percent(best["prob"]))
                   for part in scene_parts(ablation_html, scene["image"], names)), scene["image"]
        # 2d: the exact minimum with its units, in this scene's part of the section
        exact = scene["sweep"]["exact"]
        if exact["k"] is not None:
            units = ", ".join(str(u) for u in exact["units"])
            assert any(units in part and exact["new_top1"]["label"] in part
                       for part in scene_parts(sweep_html, scene["image"], names)), scene["image"]
        # 3: the raw CAM of every top-5 class is in the .npz the report names
        with np.load(out / scene["cam"]["file"]) as arrays:
            for cam_class in scene["cam"]["classes"]:
                assert arrays[str(cam_class)].shape == tuple(scene["cam"]["raw_shape"])


def _strip_timings(obj):
    """Timings, cache flags and out-dir paths differ between runs by nature; everything else must not."""
    if isinstance(obj, dict):
        return {k: _strip_timings(v) for k, v in obj.items()
                if not re.search(r"seconds|_s$|time|cache|trained|command|snippet", k)}
    if isinstance(obj, list):
        return [_strip_timings(v) for v in obj]
    return obj


def test_warm_rerun_reuses_the_cache_and_packs_the_submission_zip(quick_report, tmp_path, monkeypatch,
                                                                  capsys):
    import zipfile

    common = dict(cache=quick_report["cache"], torch_home=quick_report["torch_home"])
    for preset, words in (("quick", "quick preset"), ("standard", "DEMO")):   # the smoke test, demo weights
        refused = run_here("--preset", preset, "--offline", "--submission", "jdoe", "--out",
                           str(tmp_path / "refused"), tmp_path=tmp_path, monkeypatch=monkeypatch,
                           capsys=capsys, notebook=True)
        assert refused.returncode == 2 and words in refused.stderr and "Traceback" not in refused.stderr
        assert not (tmp_path / "refused" / "results.json").exists()  # refused before any work
    out = tmp_path / "packed"
    packed = run_here("--preset", "quick", "--offline", "--submission", "jdoe", "--allow-demo-submission",
                      "--out", str(out), tmp_path=tmp_path, monkeypatch=monkeypatch, capsys=capsys,
                      cwd=Path.cwd(), notebook=True, **common)   # the quick report's working directory:
                                                                  # the same shown paths
    assert packed.returncode == 0, packed.stderr[-2000:]
    # a second run with nothing changed computes nothing and gives the same numbers
    again, first = json.loads((out / "results.json").read_text()), quick_report["results"]
    assert again["run"]["cache"]["misses"] == [] and again["run"]["cache"]["hits"]
    for key in ("filters", "fashion_mnist", "scenes"):
        if key in first:
            assert _strip_timings(again[key]) == _strip_timings(first[key]), key
    with zipfile.ZipFile(out / "jdoe.zip") as archive:
        names = sorted(archive.namelist())
        model_file = json.loads((out / "results.json").read_text())["fashion_mnist"]["final"]["model_file"]
        images = json.loads((out / "results.json").read_text())["notebook"]["parameters"]["IMAGES"]
        assert names == sorted(["jdoe.ipynb", "report.html", "report.pdf", model_file.split("/")[-1],
                                *images])
        assert archive.read("report.html") == (out / "report.html").read_bytes()
        assert archive.read("jdoe.ipynb") == (out / "report.ipynb").read_bytes()
    assert "jdoe.zip" in packed.stderr

"""``generate_report.py grade`` on a folder of fixture submissions, each broken in its own way."""
from __future__ import annotations

import csv
import io
import struct
import time
import zipfile
from pathlib import Path

import notebooks
import pytest
import torch
from checkpoints import write_malicious

import generate_report
from analyses.fashion_mnist import data as fdata
from analyses.fashion_mnist.model import ModelConfig, build_model, model_file_bytes
from analyses.fashion_mnist.train import evaluate
from miniplaces.grading import grade, grade_worker, safe_zip, selfcontained
from miniplaces.grading.grade_worker import load_test_set
from miniplaces.grading.selfcontained import external_requests

pytestmark = pytest.mark.skipif(not fdata.SYSTEM_DIR.is_dir(), reason="needs dataset-fashion-mnist")

MODEL = "fashion_mnist_model.pt"
REPORT_HTML = (b"<!DOCTYPE html><html><head><style>body{color:#222}</style></head>"
               b"<body><p>report</p></body></html>")
EXTERNAL_HTML = (b'<html><head><script src="https://cdn.example.com/plot.js"></script></head>'
                 b'<body></body></html>')
SCRIPTED_HTML = b"<html><body><script>fetch('http://127.0.0.1:8765/leak')</script></body></html>"


def tiny_model(seed: int = 0, **config):
    torch.manual_seed(seed)
    return build_model(ModelConfig(**{"channels": (4,), **config}))


def pdf_bytes(pages: int) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(72, 72)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return path


def symlink_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        link = zipfile.ZipInfo("passwd")
        link.external_attr = (0o120777 << 16)  # S_IFLNK
        archive.writestr(link, "/etc/passwd")
    return path


def lying_bomb(path: Path, size: int) -> Path:
    """A zip whose headers declare 1 000 bytes for an entry that inflates to ``size``."""
    write_zip(path, {"report.html": b"\0" * size})
    blob = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local header, central directory
        at = blob.find(signature)
        struct.pack_into("<I", blob, at + offset, 1000)
    path.write_bytes(bytes(blob))
    return path


@pytest.fixture(scope="module")
def measured():
    """The tiny model's file and its accuracy, scored here with the project's own evaluate()."""
    net = tiny_model()
    x, y = load_test_set(fdata.SYSTEM_DIR)
    accuracy = evaluate(net, x, y).accuracy
    return net, accuracy


@pytest.fixture(scope="module")
def submissions(tmp_path_factory, measured):
    net, accuracy = measured
    folder = tmp_path_factory.mktemp("grading") / "submissions"  # its parent holds only this module's files
    folder.mkdir()
    good_model = model_file_bytes(net, {"test_acc": accuracy})
    report = {"report.html": REPORT_HTML, "report.pdf": pdf_bytes(2)}
    marker = folder.parent / "PAYLOAD_RAN"
    write_zip(folder / "good.zip", {MODEL: good_model, **report,
                                    "good.ipynb": notebooks.to_bytes(notebooks.executed())})
    write_zip(folder / "boaster.zip", {MODEL: model_file_bytes(net, {"test_acc": 0.95}),
                                        "report.html": EXTERNAL_HTML, "report.pdf": b"%PDF-1.4 garbage"})
    write_zip(folder / "layout.zip", {f"alice/{MODEL}": good_model, "alice/report.html": REPORT_HTML})
    write_zip(folder / "slip.zip", {"../evil.txt": b"escaped", MODEL: good_model})
    write_zip(folder / "absolute.zip", {str(folder.parent / "evil_abs.txt"): b"escaped"})
    symlink_zip(folder / "symlink.zip")
    write_zip(folder / "bomb.zip", {"report.html": b"\0" * (8 * 2**20)})
    lying_bomb(folder / "liar.zip", 8 * 2**20)
    write_malicious(folder / MODEL, marker)
    write_zip(folder / "pickle.zip", {MODEL: (folder / MODEL).read_bytes(), **report})
    (folder / MODEL).unlink()
    write_zip(folder / "=1+1.zip", {MODEL: good_model[:len(good_model) // 2], **report})
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    write_zip(folder / "stranger.zip", {"model.pth": buffer.getvalue(), **report})
    write_zip(folder / "noreport.zip", {MODEL: good_model})
    hungry = tiny_model(channels=(512,))      # 400 MB per activation of a batch of 250
    write_zip(folder / "hungry.zip", {MODEL: model_file_bytes(hungry)})
    write_zip(folder / "<script>alert(1).zip", {MODEL: good_model, **report})
    (folder / "broken.zip").write_bytes(b"PK\x03\x04 this is not a zip")
    claims_99 = b'{"fashion_mnist": {"final": {"test_acc": 0.99}}}'
    write_zip(folder / "conflicting.zip", {MODEL: good_model, "results.json": claims_99, **report})
    write_zip(folder / "alice\u202egpj.zip", {MODEL: good_model, **report})  # shows as "alicejpg.zip"
    write_zip(folder / "scripted.zip", {MODEL: good_model, "report.html": SCRIPTED_HTML})
    write_zip(folder / "nested.zip", {MODEL: good_model, "results.json": b"[" * 200_000 + b"]" * 200_000,
                                      "report.html": b'<img src="http://evil.example/%s">' % (b"a" * 2**21)})
    return folder, marker


def run_grade(folder: Path, out: Path, *extra: str) -> tuple[int, dict[str, dict], str]:
    code = generate_report.main(["grade", str(folder), "--out", str(out), "--max-unzipped-mb", "4", *extra])
    rows = {}
    if (out / "grades.csv").is_file():
        rows = {r["file"]: r for r in csv.DictReader(io.StringIO((out / "grades.csv").read_text()))}
    return code, rows, (out / "grades.html").read_text() if (out / "grades.html").is_file() else ""


@pytest.fixture(scope="module")
def graded(submissions, tmp_path_factory):
    folder, marker = submissions
    return run_grade(folder, tmp_path_factory.mktemp("grades"), "--workers", "2", "--memory-mb", "500")


def test_every_submission_is_judged_and_the_run_exits_0(graded, submissions):
    code, rows, _ = graded
    assert code == 0
    files = sorted(("'" if p.name[0] == "=" else "") + grade.visible(p.name)
                   for p in submissions[0].glob("*.zip"))
    assert sorted(rows) == files  # =1+1.zip as '=1+1.zip: the CSV escapes formulas


def test_good_submission_is_rescored_to_the_same_accuracy(graded, measured):
    row = graded[1]["good.zip"]
    assert row["verdict"] == "no credit"  # a tiny untrained model: the pass mark is 90 %
    assert float(row["accuracy"]) == pytest.approx(measured[1], abs=5e-5)
    assert (row["credit"] == "False" and row["claim_check"] == "matches"
            and row["claimed_from"] == "model file")
    assert row["report_html"] == "self-contained" and row["report_pdf"] == "2 pages" and row["problems"] == ""


def test_false_claim_external_requests_and_bad_pdf_are_problems(graded, measured):
    row = graded[1]["boaster.zip"]
    assert float(row["accuracy"]) == pytest.approx(measured[1], abs=5e-5)
    assert row["claim_check"].startswith("differs by +") and "claims 95.00 %" in row["problems"]
    assert row["report_html"] == "1 external request" and "https://cdn.example.com/plot.js" in row["problems"]
    assert row["report_pdf"] == "unreadable"


def test_every_claim_is_reported_and_disagreement_flagged(graded, measured):
    row = graded[1]["conflicting.zip"]  # the model file's claim is right, results.json's 99 % is not
    measured_pct = f"{100 * measured[1]:.2f} %"
    assert row["claims"] == f"{measured_pct} in the model file; 99.00 % in the results.json"
    assert row["claim_check"].startswith("model file matches; results.json differs by +")
    disagree = f"the claims disagree: {measured_pct} in the model file; 99.00 % in the results.json"
    assert disagree in row["problems"]
    assert f"claims 99.00 % in the results.json, re-scored {measured_pct}" in row["problems"]
    assert graded[1]["good.zip"]["claims"] == f"{measured_pct} in the model file"


def test_a_page_with_a_script_is_not_called_self_contained(graded):
    row = graded[1]["scripted.zip"]
    assert row["report_html"] == "cannot verify: scripts" and "has an inline <script>" in row["problems"]


def test_a_bad_report_file_does_not_cost_the_model_its_score(graded, measured):
    """A results.json nested 200 000 deep (RecursionError) and a 2 MB URL (an answer too long for the
    pipe) each fail alone: the model is still scored."""
    row = graded[1]["nested.zip"]
    assert float(row["accuracy"]) == pytest.approx(measured[1], abs=5e-5)
    assert "results.json could not be checked (RecursionError" in row["problems"]
    assert row["report_html"] == "1 external request" and "http://evil.example/aaa" in row["problems"]
    assert len(row["problems"]) < 2000


@pytest.mark.parametrize("file, words", [
    ("layout.zip", "wrong layout: the model file alice/fashion_mnist_model.pt is not at the zip's root"),
    ("slip.zip", "zip refused: entry '../evil.txt' points outside the zip"),
    ("absolute.zip", "has an absolute path"),
    ("symlink.zip", "entry 'passwd' is a symbolic link"),
    ("bomb.zip", "unpacks to 8 MiB, more than the limit of 4 MiB"),
    ("liar.zip", "cannot be unpacked"),
    ("pickle.zip", "holds objects other than tensors (code in the pickle?); nothing in it was run"),
    ("'=1+1.zip", "is corrupt or truncated"),
    ("stranger.zip", "model.pth is not a miniplaces-fashion-mnist-model/1 file"),
    ("broken.zip", "zip refused: not a readable zip"),
    ("hungry.zip", "the model needs more memory than the limit (--memory-mb)"),
])
def test_bad_submissions_are_not_scored_and_say_why(graded, file, words):
    row = graded[1][file]
    assert row["verdict"] == "not scored" and row["accuracy"] == ""
    assert words in row["problems"]


def test_no_payload_runs_and_no_file_escapes(graded, submissions):
    folder, marker = submissions
    assert not marker.exists()
    assert not (folder.parent / "evil_abs.txt").exists()
    assert not list(folder.parent.rglob("evil*"))


def test_missing_report_is_a_problem_but_the_model_is_scored(graded, measured):
    row = graded[1]["noreport.zip"]
    assert row["verdict"] == "no credit" and float(row["accuracy"]) == pytest.approx(measured[1], abs=5e-5)
    assert "no report.html (nor a notebook)" in row["problems"] and "no report.pdf" in row["problems"]


def test_submitted_names_are_escaped_in_html_and_csv(graded):
    _, rows, html = graded
    assert "&lt;script&gt;alert(1)" in html and "<script>alert(1)" not in html
    assert html.count("<script") == 1  # the table's own sorting script
    assert external_requests(html) == []  # self-contained
    assert rows["'=1+1.zip"]["name"] == "'=1+1"  # a spreadsheet would run =1+1 as a formula


def test_bidi_and_control_characters_in_names_show_as_code_points(graded):
    _, rows, html = graded
    row = rows["alice<U+202E>gpj.zip"]  # the right-to-left override made it display as alicejpg.zip
    assert row["name"] == "alice<U+202E>gpj" and row["verdict"] == "no credit"
    assert "alice&lt;U+202E&gt;gpj" in html and "\u202e" not in html
    assert grade.visible("a\u2066b\u200fc\x07d\udcffe") == "a<U+2066>b<U+200F>c<U+0007>d<U+DCFF>e"


def test_workers_do_not_change_the_grades(graded, submissions, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("good.zip", "boaster.zip", "pickle.zip", "layout.zip"):
        (folder / name).write_bytes((submissions[0] / name).read_bytes())
    code, rows, _ = run_grade(folder, tmp_path / "out", "--workers", "1", "--memory-mb", "500")
    assert code == 0 and rows == {name: graded[1][name] for name in rows} and len(rows) == 4


def test_a_slow_model_is_stopped_at_the_timeout(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    slow = model_file_bytes(tiny_model(channels=(64, 256, 256)))  # ~0.6 TMAC for the test set: minutes
    write_zip(folder / "slow.zip", {MODEL: slow, "report.html": REPORT_HTML})
    code, rows, _ = run_grade(folder, tmp_path / "out", "--timeout", "1")
    assert code == 0
    row = rows["slow.zip"]
    assert row["verdict"] == "not scored" and "stopped after 1 s (--timeout)" in row["problems"]
    assert row["report_html"] == "self-contained"  # the report's verdict arrived before the model's


@pytest.mark.parametrize("args, words", [
    (["nowhere.zip"], "no such file or folder"),
    (["--workers", "0", "."], "--workers 0"),
    (["--pass-mark", "90", "."], "--pass-mark"),
    (["--data-dir", ".", "."], "missing FashionMNIST IDX file"),
    (["--timeout", "nan", "."], "--timeout nan"),  # issue 38: NaN and inf were accepted
    (["--timeout", "inf", "."], "--timeout inf"),
    (["--timeout", "0", "."], "--timeout 0"),
    (["--memory-mb", "9000", "."], "--memory-mb 9000: more than this process may ever map"),
])
def test_bad_arguments_exit_2(args, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(grade, "address_space_hard_limit", lambda: 8192 * 2**20)  # as under ulimit -H -v
    monkeypatch.setattr(fdata, "SYSTEM_DIR", tmp_path / "no-debian-package")
    (tmp_path / "a.zip").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SystemExit) as exit_:
        generate_report.main(["grade", *args])
    assert exit_.value.code == 2 and words in capsys.readouterr().err


@pytest.mark.parametrize("accuracy, verdict", [(0.9001, "credit"), (0.9, "no credit"), (None, "not scored")])
def test_credit_needs_more_than_the_pass_mark(accuracy, verdict):
    row = {"accuracy": accuracy, "claimed": None, "problems": []}
    opts = grade.Options(zips=(), out=Path("."), data_dir=Path("."))
    assert grade.finish(row, opts)["verdict"] == verdict


def test_refused_zip_writes_nothing(submissions, tmp_path):
    folder, _ = submissions
    for name in ("slip.zip", "absolute.zip", "symlink.zip", "bomb.zip"):
        dest = tmp_path / name / "dest"
        dest.mkdir(parents=True)
        with pytest.raises(safe_zip.UnsafeZip):
            safe_zip.extract(folder / name, dest, safe_zip.Limits(max_bytes=4 * 2**20))
        assert list((tmp_path / name).rglob("*")) == [dest]
    write_zip(tmp_path / "collide.zip", {"a": b"file", "a/b": b"under a file"})
    with pytest.raises(safe_zip.UnsafeZip, match="'a/b' collides with another entry"):
        safe_zip.extract(tmp_path / "collide.zip", tmp_path / "collide", safe_zip.Limits())
    with pytest.raises(safe_zip.UnsafeZip, match="4 entries, more than the limit of 2"):
        safe_zip.extract(folder / "good.zip", tmp_path, safe_zip.Limits(max_entries=2))


@pytest.mark.parametrize("html, found", [
    ('<link rel="stylesheet" href="https://fonts.example.com/a.css">', ["https://fonts.example.com/a.css"]),
    ('<img srcset="data:image/png;base64,AA 1x, //cdn.example.com/b.png 2x">', ["//cdn.example.com/b.png"]),
    ("<style>@import 'http://x.example.com/c.css'; p { background: url(data:,) }</style>",
     ["http://x.example.com/c.css"]),
    ('<div style="background: url(https://x.example.com/d.png)"></div>', ["https://x.example.com/d.png"]),
    ('<a href="https://example.com">a link loads nothing</a><img src="data:image/png;base64,AA">', []),
])
def test_external_requests_are_found_and_links_are_not(html, found):
    assert external_requests(html) == found


@pytest.mark.parametrize("html, found", [  # issue 38: each of these fooled the regular expressions
    ('<meta http-equiv=refresh content="0; URL=http://evil.example/">', "http://evil.example/"),
    ("<META HTTP-EQUIV=Refresh CONTENT=\"0;url='//evil.example/r'\">", "//evil.example/r"),
    ('<img src="h&#9;ttp://evil.example/tab.png">', "http://evil.example/tab.png"),
    ('<base href="http://evil.example/"><img src="figures/a.png">', "http://evil.example/figures/a.png"),
    ('<svg><image href="http://evil.example/i.png"/></svg>', "http://evil.example/i.png"),
    ('<svg><image xlink:href="https://evil.example/x.png"/></svg>', "https://evil.example/x.png"),
    ('<svg><use href="http://evil.example/sprite.svg#a"/></svg>', "http://evil.example/sprite.svg#a"),
    ('<iframe srcdoc="&lt;img src=//evil.example/f.png&gt;"></iframe>', "//evil.example/f.png"),
    (r"<style>p { background: \75rl(http://evil.example/e.png) }</style>", "http://evil.example/e.png"),
    ("<style>p { background: image-set('http://evil.example/s.png' 1x) }</style>",
     "http://evil.example/s.png"),
    ('<img src="http:/evil.example/one-slash">', "http:/evil.example/one-slash"),
    (r'<img src="http:\\evil.example\back">', r"http:\\evil.example\back"),
    (r'<img src="\\evil.example\unc">', r"\\evil.example\unc"),
    ("<style>/* a comment */@import'http://evil.example/c.css';</style>", "http://evil.example/c.css"),
    ('<style>@import"http://evil.example/i.css";</style>', "http://evil.example/i.css"),
    ('<iframe src="data:text/html,%3Cimg%20src%3Dhttp://evil.example/d%3E"></iframe>',
     "http://evil.example/d"),
    ('<svg><rect fill="url(http://evil.example/g#p)"/></svg>', "http://evil.example/g#p"),
    ('<svg><image href="#a"><set attributeName="href" to="//evil.example/s"/></image></svg>',
     "//evil.example/s"),
])
def test_requests_to_other_hosts_are_found_as_a_browser_parses_them(html, found):
    findings = selfcontained.check(html)
    assert findings.requests == [found] and findings.verdict == "1 external request"


@pytest.mark.parametrize("html", [
    "<script>fetch('http://127.0.0.1:8765/leak')</script>",
    "<script>window['fe' + 'tch']('//evil.example/')</script>",  # no list of names could catch this
    '<img src="data:image/png;base64,AA" onerror="new Image().src = \'//evil.example\'">',
    '<iframe src="javascript:parent.location=\'//evil.example\'"></iframe>',
    '<script src="extra.js"></script>',
])
def test_pages_with_scripts_cannot_be_verified(html):
    findings = selfcontained.check(html)
    assert findings.requests == [] and findings.verdict == "cannot verify: scripts"


@pytest.mark.parametrize("html", [
    "<style>p { color: red } /* url(http://evil.example/comment) */</style>",
    '<a href="https://example.com">a link</a><svg><use href="#icon"/></svg>',
    '<script type="application/json">{"url": "http://evil.example/data"}</script>',
    '<link rel="canonical" href="https://example.com/report"><img src="figures/local.png">',
])
def test_what_loads_nothing_from_other_hosts_is_self_contained(html):
    assert selfcontained.check(html).verdict == "self-contained"


def test_this_tools_own_report_page_is_self_contained(tmp_path):
    """The report inlines templates/report.js: the one script trusted (it is the project's own)."""
    from miniplaces.report import render

    env = render.environment(tmp_path, for_pdf=False)
    page = env.from_string('<!DOCTYPE html><html><head><meta charset="utf-8"><style>{{ css | safe }}</style>'
                           '</head><body><figure><img src="data:image/png;base64,AA"></figure>'
                           '<script>{{ script | safe }}</script></body></html>').render()
    assert selfcontained.check(page.encode()).verdict == "self-contained"
    tampered = page.replace("<script>", '<script>fetch("//evil.example");', 1)
    assert tampered != page and selfcontained.check(tampered).verdict == "cannot verify: scripts"


def test_a_page_that_parses_slowly_leaves_the_model_its_time(tmp_path):
    """Nested tags parse in quadratic time; the report checks stop at their share of the time."""
    (tmp_path / "report.html").write_bytes(b"<div>" * 100_000)  # about 15 s to parse
    (tmp_path / "results.json").write_text('{"fashion_mnist": {"final": {"test_acc": 0.5}}}')
    started = time.monotonic()
    out = grade_worker.report_checks(tmp_path, budget_s=0.5)
    assert time.monotonic() - started < 5
    assert out["report_html"] == "not checked"
    assert out["problems"][0].startswith("report.html was not checked")


@pytest.mark.slow
def test_a_report_this_tool_wrote_grades_as_self_contained(quick_report):
    page = (quick_report["out"] / "report.html").read_bytes()
    assert b"<script>" in page and selfcontained.check(page).verdict == "self-contained"

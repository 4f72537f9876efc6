"""``grade`` reads a notebook without running it: good, unexecuted, erroring, out of order, hostile."""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone

import notebooks
import pytest
from nbformat.v4 import new_output
from test_grade import MODEL, tiny_model, write_zip

import generate_report
from analyses.fashion_mnist import data as fdata
from analyses.fashion_mnist.model import model_file_bytes
from miniplaces.grading import notebook_check

SCRIPT = "<script>alert('nb')</script>"
HTML_OUTPUT = new_output("display_data", data={"text/html": f"<img src=x onerror=alert(1)>{SCRIPT}",
                                                "text/plain": "plot"})


def check(tmp_path, content: bytes | str, name: str = "alice.ipynb", **kwargs) -> dict:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_bytes(content.encode() if isinstance(content, str) else content)
    return notebook_check.check_folder(tmp_path, **kwargs)


def test_a_run_notebook_passes_every_check(tmp_path):
    out = check(tmp_path, notebooks.to_bytes(notebooks.executed()))
    assert out["notebook"] == "alice.ipynb" and out["problems"] == []
    assert out["notebook_ran"] == "yes, all 4 code cells in order"      # the blank cell is not counted
    assert out["notebook_errors"] == "none" and out["notebook_outputs"] == "1 2 3 4"


def test_an_unexecuted_notebook_is_not_run(tmp_path):
    out = check(tmp_path, notebooks.to_bytes(notebooks.unexecuted()))
    assert out["notebook_ran"] == "no: 4 of 4 code cells not run" and out["notebook_outputs"] == ""
    assert any("Restart & Run All" in p for p in out["problems"])
    assert any("no outputs under Problem 1, 2, 3, 4" in p for p in out["problems"])


def test_an_error_output_names_the_first_failing_cell(tmp_path):
    out = check(tmp_path, notebooks.to_bytes(notebooks.executed(error_in=3)))
    assert out["notebook_errors"] == "cell 7: NameError: name 'net' is not defined"
    assert out["notebook_ran"].startswith("yes")


def test_cells_run_out_of_order_are_found(tmp_path):
    out = check(tmp_path, notebooks.to_bytes(notebooks.executed(counts=[1, 3, 2, 4])))
    assert out["notebook_ran"] == "no: out of order, cell 7 (In [2]) ran before the one above it (In [3])"


def test_a_missing_problem_has_no_outputs(tmp_path):
    out = check(tmp_path, notebooks.to_bytes(notebooks.executed(problems=(1, 2, 4))))
    assert out["notebook_outputs"] == "1 2 4" and any("Problem 3" in p for p in out["problems"])


@pytest.mark.parametrize("content, words", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not a notebook"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    (json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {"x": json.loads("[" * 200 + "]" * 200)},
                 "cells": []}), "nested more than 64 deep"),
    (json.dumps({"nbformat": 3, "nbformat_minor": 0, "worksheets": []}), "nbformat 3, not 4"),
    (json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "code"}]}),
     "not valid nbformat 4"),
    (b"\xff\xfe\x00garbage", "not valid JSON"),
])
def test_hostile_notebooks_are_refused_with_a_reason(tmp_path, content, words):
    out = check(tmp_path, content)
    assert words in out["notebook"] and any(words in p for p in out["problems"])
    assert out["notebook_ran"] == "" and out["shingles"] == []


def test_a_huge_notebook_is_refused_unread(tmp_path):
    (tmp_path / "huge.ipynb").touch()
    import os
    os.truncate(tmp_path / "huge.ipynb", notebook_check.MAX_BYTES + 1)   # sparse: nothing is written
    out = notebook_check.check_folder(tmp_path)
    assert "refused" in out["notebook"] and "more than the 52428800" in out["notebook"]


def test_layout_problems(tmp_path):
    out = check(tmp_path / "nested", notebooks.to_bytes(notebooks.executed()), name="alice/alice.ipynb")
    assert out["notebook"] == "missing" and "not at the zip's root" in out["problems"][0]
    assert notebook_check.check_folder(tmp_path / "nested" / "alice")["notebook"] == "alice.ipynb"
    (tmp_path / "empty").mkdir()
    problems = notebook_check.check_folder(tmp_path / "empty")["problems"]
    assert problems == ["no notebook (.ipynb) at the zip's root"]


@pytest.mark.skipif(not fdata.SYSTEM_DIR.is_dir(), reason="needs dataset-fashion-mnist")
def test_grade_reports_notebooks_and_the_late_policy(tmp_path):
    """A folder through ``grade``: notebook columns in grades.csv, escaped in grades.html, late factors."""
    model = model_file_bytes(tiny_model())
    hostile = notebooks.executed(error_in=2, extra_outputs=[HTML_OUTPUT])
    hostile.cells[4].outputs[0]["evalue"] = SCRIPT
    folder = tmp_path / "submissions"
    folder.mkdir()
    cases = {"good": notebooks.executed(), "unrun": notebooks.unexecuted(), "erring": hostile,
             "shuffled": notebooks.executed(counts=[2, 1, 3, 4])}
    for name, nb in cases.items():
        write_zip(folder / f"{name}.zip", {MODEL: model, f"{name}.ipynb": notebooks.to_bytes(nb)})
    write_zip(folder / "broken.zip", {MODEL: model, "broken.ipynb": b"{" * 10})
    due = datetime(2022, 3, 29, 23, 59, tzinfo=timezone(timedelta(hours=-4)))
    (tmp_path / "times.csv").write_text("name,submitted\n" + "\n".join(
        f"{name},{(due + timedelta(days=late)).isoformat()}"
        for name, late in (("good", -1), ("unrun", 3.2), ("erring", 9))))
    out = tmp_path / "grades"
    code = generate_report.main(["grade", str(folder), "--out", str(out), "--due", due.isoformat(),
                                 "--submitted-csv", str(tmp_path / "times.csv"), "--pass-mark", "0.01"])
    assert code == 0
    rows = {r["name"]: r for r in csv.DictReader(io.StringIO((out / "grades.csv").read_text()))}
    assert rows["good"]["notebook_ran"].startswith("yes") and rows["good"]["notebook_errors"] == "none"
    assert rows["unrun"]["notebook_ran"] == "no: 4 of 4 code cells not run"
    assert rows["erring"]["notebook_errors"].startswith("cell 5: NameError")
    assert rows["shuffled"]["notebook_ran"].startswith("no: out of order")
    assert "not valid JSON" in rows["broken"]["notebook"]
    good = rows["good"]
    assert (good["factor"], good["raw"], good["final"]) == ("1.0000", "2.0000", "2.0000")
    assert rows["unrun"]["factor"] == f"{1 - 0.5 * 4 / 7:.4f}" and rows["unrun"]["days_late"] == "4"
    assert rows["unrun"]["final"] == f"{2 * (1 - 0.5 * 4 / 7):.4f}"
    assert rows["erring"]["factor"] == "0.0000" and rows["erring"]["final"] == "0.0000"
    assert rows["shuffled"]["submitted_from"] == "zip timestamps (unreliable)"   # not in the CSV
    html = (out / "grades.html").read_text()
    assert SCRIPT not in html and "onerror" not in html and "&lt;script&gt;alert(&#39;nb&#39;)" in html
    assert "zip timestamps (unreliable)" in html and "0.714" in html


@pytest.mark.parametrize("args, words", [
    (["--due", "2022-03-29T23:59"], "no UTC offset"),
    (["--due", "tuesday"], "not an ISO 8601 time"),
    (["--submitted-csv", "times.csv"], "needs --due"),
    (["--due", "2022-03-29T23:59Z", "--submitted-csv", "bad.csv"], "line 2"),
    (["--due", "2022-03-29T23:59Z", "--submitted-csv", "nohead.csv"], "columns name,submitted"),
    (["--autograder-root", "."], "goes with --gradescope"),
])
def test_bad_late_and_gradescope_arguments_exit_2(tmp_path, monkeypatch, capsys, args, words):
    monkeypatch.chdir(tmp_path)
    write_zip(tmp_path / "a.zip", {"x": b"x"})
    (tmp_path / "times.csv").write_text("name,submitted\n")
    (tmp_path / "bad.csv").write_text("name,submitted\nalice,soon\n")
    (tmp_path / "nohead.csv").write_text("alice,2022-03-29T23:59Z\n")
    with pytest.raises(SystemExit) as exit_info:
        generate_report.main(["grade", "a.zip", *args])
    assert exit_info.value.code == 2 and words in capsys.readouterr().err

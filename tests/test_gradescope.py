"""``grade --gradescope``: one submission in Gradescope's folder layout gives a valid results.json."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import notebooks
import pytest
from checkpoints import write_malicious
from test_grade import MODEL, REPORT_HTML, tiny_model, write_zip

import generate_report
from analyses.fashion_mnist import data as fdata
from analyses.fashion_mnist.model import model_file_bytes
from miniplaces.grading import gradescope, late_policy

pytestmark = pytest.mark.skipif(not fdata.SYSTEM_DIR.is_dir(), reason="needs dataset-fashion-mnist")

DUE = datetime(2022, 3, 29, 23, 59, tzinfo=timezone(timedelta(hours=-4)))
PASS_MARK = "0.01"   # the tiny untrained test model scores a few %: this lets its points show the late factor


def autograder_root(tmp: Path, files: dict[str, bytes], late_days: float = 0.0, metadata: bytes | None = None,
                    as_zip: str = "") -> Path:
    """Gradescope's /autograder: the upload unpacked in submission/ (or left as one zip), the metadata."""
    (tmp / "submission").mkdir(parents=True)
    if as_zip:
        write_zip(tmp / "submission" / as_zip, files)
    for name, content in ({} if as_zip else files).items():
        (tmp / "submission" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / "submission" / name).write_bytes(content)
    created = (DUE + timedelta(days=late_days)).isoformat()
    (tmp / "submission_metadata.json").write_bytes(metadata if metadata is not None else json.dumps(
        {"id": 1, "created_at": created, "assignment": {"due_date": DUE.isoformat(), "title": "Miniplaces"},
         "users": [{"email": "alice@mit.edu", "id": 1, "name": "Alice"}],
         "previous_submissions": []}).encode())
    return tmp


def run(root: Path, *extra: str) -> dict:
    code = generate_report.main(["grade", "--gradescope", "--autograder-root", str(root),
                                 "--pass-mark", PASS_MARK, *extra])
    assert code == 0
    result = json.loads((root / "results" / "results.json").read_text())
    jsonschema.validate(result, gradescope.RESULTS_SCHEMA)
    return result


def by_name(result: dict) -> dict[str, dict]:
    return {t["name"].split(":")[0]: t for t in result["tests"]}


@pytest.fixture(scope="module")
def good_files():
    return {"alice.ipynb": notebooks.to_bytes(notebooks.executed()), MODEL: model_file_bytes(tiny_model()),
            "report.html": REPORT_HTML}


def test_a_good_submission_late_by_3_2_days_gets_the_factor_of_4_days(tmp_path, good_files):
    result = run(autograder_root(tmp_path, good_files, late_days=3.2))
    assert all(t["status"] == "passed" for t in result["tests"]), result["tests"]
    factor = 1 - 0.5 * 4 / 7
    assert result["extra_data"]["factor"] == pytest.approx(factor) and result["extra_data"]["days_late"] == 4
    assert result["score"] == pytest.approx(gradescope.ACCURACY_POINTS * factor, abs=1e-4)
    assert "4 day(s) late" in result["output"]


def test_an_uploaded_zip_and_an_on_time_submission_score_in_full(tmp_path, good_files):
    result = run(autograder_root(tmp_path, good_files, late_days=-1, as_zip="alice.zip"))
    assert result["score"] == gradescope.ACCURACY_POINTS and result["extra_data"]["factor"] == 1


def test_a_hostile_zip_scores_0_with_the_reason(tmp_path):
    result = run(autograder_root(tmp_path, {"../escape.txt": b"x", MODEL: b"junk"}, as_zip="evil.zip"))
    assert result["score"] == 0
    layout = by_name(result)["Zip layout"]
    assert layout["status"] == "failed" and "points outside the zip" in layout["output"]
    assert not (tmp_path / "escape.txt").exists()


def test_a_pickle_with_code_is_refused_and_never_run(tmp_path, good_files):
    marker = tmp_path / "PAYLOAD_RAN"
    write_malicious(tmp_path / "payload.pt", marker)
    files = {**good_files, MODEL: (tmp_path / "payload.pt").read_bytes()}
    result = run(autograder_root(tmp_path / "root", files))
    assert result["score"] == 0 and not marker.exists()
    assert "refused" in next(t for t in result["tests"] if t["name"].startswith("Model file"))["output"]


def test_a_link_in_the_upload_is_refused(tmp_path, good_files):
    root = autograder_root(tmp_path, good_files)
    (root / "submission" / "passwd").symlink_to("/etc/passwd")
    result = run(root)
    assert result["score"] == 0 and "link" in result["output"]


def test_no_model_fails_its_tests_and_says_so(tmp_path, good_files):
    files = {k: v for k, v in good_files.items() if k != MODEL}
    result = run(autograder_root(tmp_path, files))
    tests = by_name(result)
    assert result["score"] == 0 and tests["Zip layout"]["status"] == "failed"
    model = next(t for t in result["tests"] if t["name"].startswith("Model file"))
    assert "no model file" in model["output"]
    assert tests["Notebook"]["status"] == "passed"


def test_a_notebook_error_names_its_cell(tmp_path, good_files):
    nb = notebooks.executed(error_in=2)
    nb.cells[4].outputs[0]["evalue"] = "<script>alert(1)</script>"
    result = run(autograder_root(tmp_path, {**good_files, "alice.ipynb": notebooks.to_bytes(nb)}))
    errors = next(t for t in result["tests"] if t["name"].startswith("Notebook: no errors"))
    assert errors["status"] == "failed" and "cell 5: NameError" in errors["output"]
    assert result["test_output_format"] == "text"     # the student's message is shown as text, not run


@pytest.mark.parametrize("metadata", [b"{not json", b'{"created_at": "yesterday"}', b"[]"])
def test_unreadable_metadata_applies_no_factor_and_says_so(tmp_path, good_files, metadata):
    result = run(autograder_root(tmp_path, good_files, metadata=metadata))
    assert result["score"] == gradescope.ACCURACY_POINTS and "not known" in result["output"]


def test_an_autograder_failure_still_writes_a_valid_result(tmp_path, good_files):
    result = run(autograder_root(tmp_path, good_files), "--data-dir", str(tmp_path / "no-such-data"))
    assert result["score"] == 0 and "could not be graded" in result["output"]


@pytest.mark.parametrize("late_days, factor", [
    (-0.5, 1.0), (0.0, 1.0), (0.001, 1 - 0.5 / 7), (1.0, 1 - 0.5 / 7), (3.2, 1 - 0.5 * 4 / 7), (7.0, 0.5),
    (7.01, 0.0), (30, 0.0)])
def test_late_factor(late_days, factor):
    assert late_policy.late_factor(DUE, DUE + timedelta(days=late_days)) == pytest.approx(factor)


def test_the_built_zip_runs_as_gradescope_would(tmp_path, good_files):
    """Build the upload, unpack it as /autograder/source, run its run_autograder script."""
    upload = tmp_path / "autograder.zip"
    assert generate_report.main(["grade", "--gradescope", "--build-zip", str(upload)]) == 0
    with zipfile.ZipFile(upload) as archive:
        names = set(archive.namelist())
        assert {"setup.sh", "run_autograder", "project/pyproject.toml",
                "project/miniplaces/grading/grade.py"} <= names
        assert archive.getinfo("run_autograder").external_attr >> 16 == 0o100755
        archive.extractall(tmp_path / "ag" / "source")
    root = autograder_root(tmp_path / "ag", good_files, late_days=3.2)
    script = root / "source" / "run_autograder"
    script.chmod(0o755)
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "MINIPLACES_PYTHON": sys.executable,
           "PYTHONPATH": str(root / "source" / "project")}
    subprocess.run([str(script)], env=env, check=True, capture_output=True, timeout=300)
    result = json.loads((root / "results" / "results.json").read_text())
    jsonschema.validate(result, gradescope.RESULTS_SCHEMA)
    assert result["score"] == 0          # the real pass mark: the tiny model has no credit
    assert by_name(result)["Notebook"]["status"] == "passed"
    env["MINIPLACES_PYTHON"] = "/bin/false"     # Python cannot start: the script still leaves a result
    (root / "results" / "results.json").unlink()
    subprocess.run([str(script)], env=env, check=True, capture_output=True, timeout=60)
    fallback = json.loads((root / "results" / "results.json").read_text())
    jsonschema.validate(fallback, gradescope.RESULTS_SCHEMA)
    assert fallback["score"] == 0 and "could not run" in fallback["output"]

"""The command line: exit codes, one-line errors without tracebacks, the out-dir lock."""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_here

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, tmp_path: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "TORCH_HOME": str(tmp_path / "torch"), **(env or {})}
    return subprocess.run([sys.executable, str(ROOT / "generate_report.py"),
                           "--cache-dir", str(tmp_path / "cache"), "--no-notebook",
                           *args], capture_output=True, text=True, env=environment, cwd=tmp_path, timeout=300)


def assert_clean_error(result: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr


def test_help_documents_every_option_and_exit_codes(tmp_path):
    result = cli("--help", tmp_path=tmp_path)
    assert result.returncode == 0
    for option in ["--out", "--preset", "--only", "--skip", "--weights", "--categories", "--arch", "--images",
                   "--image-size", "--data-dir", "--device", "--seed", "--strict", "--no-pdf", "--verbose",
                   "--quiet", "--submission", "--executor", "--gate", "--compare"]:
        assert option in result.stdout
    assert "Exit codes: 0 success, 1 failure while running, 2 bad input" in result.stdout
    assert "3 a --gate failed" in result.stdout


def test_strict_without_weights_stops_before_work(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    result = run_here("--strict", "--offline", "--only", "filters", "--out", str(out), tmp_path=tmp_path,
                      monkeypatch=monkeypatch, capsys=capsys)
    assert_clean_error(result, 2, "no Places365 weights", "--strict")
    assert not (out / "results.json").exists() and not list((out / "figures").glob("*.png"))


def test_named_unloadable_weights_exit_2(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "w.pth.tar"
    bad.write_text("<html><body>Forbidden</body></html>")
    result = run_here("--weights", str(bad), "--only", "filters", "--out", str(tmp_path / "o"),
                      tmp_path=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert_clean_error(result, 2, str(bad), "HTML page")


@pytest.mark.parametrize("args, words", [
    (["--image-size", "8"], "--image-size 8"),
    (["--sweep-limit", "0"], "--sweep-limit 0"),
    (["--preset", "huge"], "invalid choice: 'huge'"),
    (["--only", "filters", "--skip", "filters"], "no section"),
    (["--submission", "../escape"], "--submission"),
    (["--gate", "speed"], "unknown gate 'speed'"),
    (["--only", "filters", "--gate", "min-accuracy"], "needs the fashion_mnist section"),
    (["--gate", "unchanged"], "needs --compare PATH"),
])
def test_bad_options_are_rejected_with_the_bad_value(tmp_path, args, words):
    assert_clean_error(cli(*args, tmp_path=tmp_path), 2, words)


def test_locked_out_dir_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write("4242")
        handle.flush()
        result = cli("--only", "filters", "--offline", "--no-pdf", "--out", str(out), tmp_path=tmp_path)
    assert_clean_error(result, 2, "another run (pid 4242)")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_out_dir_is_refused(tmp_path):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    result = cli("--only", "filters", "--offline", "--out", str(out / "sub"), tmp_path=tmp_path)
    assert_clean_error(result, 2, "--out")


def test_out_path_that_is_a_file_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = cli("--only", "filters", "--offline", "--out", str(blocker / "sub"), tmp_path=tmp_path)
    assert_clean_error(result, 2, "--out")


def test_filters_only_run_writes_outputs_and_reuses_cache(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    args = ("--only", "filters", "--offline", "--arch", "resnet18", "--no-pdf", "--out", str(out))
    first = cli(*args, tmp_path=tmp_path)   # a real command line; the warm rerun runs in this process
    assert first.returncode == 0, first.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["model"]["demo"] is True and results["model"]["arch"] == "resnet18"
    assert [layer["layer"] for layer in results["filters"]["layers"]] == ["conv1", "layer1.0.conv2",
                                                                          "layer4.0.conv2"]
    assert results["filters"]["layers"][0]["shape"] == [64, 3, 7, 7]
    assert "untrained" in first.stderr  # the demo warning on stderr
    second = run_here(*args, tmp_path=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert second.returncode == 0, second.stderr
    again = json.loads((out / "results.json").read_text())
    hits = again["run"]["cache"]["hits"]
    assert again["run"]["cache"]["misses"] == [] and [h.split("/")[0] for h in hits].count("filters") == 1
    assert [h.split("/")[0] for h in hits].count("figures") == 3  # figures are copied, not redrawn
    assert again["filters"] == results["filters"]


def test_bad_grid_file_is_rejected_before_any_section_runs(tmp_path, monkeypatch, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text("[base]\nepochs = -3\n")
    out = tmp_path / "out"
    result = run_here("--grid", str(grid), "--offline", "--out", str(out), tmp_path=tmp_path,
                      monkeypatch=monkeypatch, capsys=capsys)
    assert_clean_error(result, 2, "-3")
    assert "UNTRAINED" not in result.stderr  # stopped before the Places model was even provisioned
    assert not list((out / "figures").glob("*.png"))


def test_no_usable_image_stops_before_any_section(tmp_path, monkeypatch, capsys):
    (tmp_path / "zero.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image")
    out = tmp_path / "out"
    result = run_here("--images", "zero.jpg", "text.jpg", "--replace-images", "--only", "filters", "units",
                      "--offline", "--arch", "resnet18", "--no-pdf", "--out", str(out), tmp_path=tmp_path,
                      monkeypatch=monkeypatch, capsys=capsys)
    assert_clean_error(result, 2, "no usable scene image", "zero.jpg", "text.jpg")
    assert not list((out / "figures").glob("*.png"))  # the filters section never ran


def test_bad_compare_file_stops_before_any_work_and_keeps_the_last_report(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    out.mkdir()
    earlier = {name: f"the last run's {name}" for name in ("report.html", "results.json", "report.pdf")}
    for name, text in earlier.items():
        (out / name).write_text(text)
    bad = tmp_path / "previous.json"
    bad.write_text('{"schema_version": 1, "run": {"config": [1]}}')
    result = run_here("--only", "filters", "--offline", "--no-pdf", "--out", str(out), "--compare", str(bad),
                      tmp_path=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert_clean_error(result, 2, f"--compare {bad}: run.config is a list, not an object")
    assert len(result.stderr.strip().splitlines()) == 1 and "UNTRAINED" not in result.stderr
    assert {name: (out / name).read_text() for name in earlier} == earlier

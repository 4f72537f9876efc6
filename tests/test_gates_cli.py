"""--gate and --compare from the command line: exit codes 0 and 3, every output written, changes.json.

Both runs are filters-only and read the session's quick-preset cache, so they only re-render. The
passing run calls main() in this process (it returns the exit code; torch is already imported); the
failing one is a real command line, for its exit status and its one-line messages.
"""
from __future__ import annotations

import json

from conftest import run_cli

import generate_report


def test_gates_and_compare_from_the_command_line(quick_report, tmp_path, monkeypatch, capsys):
    env = {"cache": quick_report["cache"], "torch_home": quick_report["torch_home"]}
    foreign = tmp_path / "foreign.json"
    foreign.write_text('{"accuracy": 0.93}')
    monkeypatch.setenv("TORCH_HOME", str(env["torch_home"]))
    code = generate_report.main(["--offline", "--cache-dir", str(env["cache"]), "--out", str(tmp_path / "a"),
                                 "--only", "filters", "--no-pdf", "--no-notebook", "--gate", "no-skips",
                                 "--compare", str(foreign)])
    stderr = capsys.readouterr().err
    assert code == 0, stderr[-2000:]
    assert "gate no-skips: passed" in stderr and "not a miniplaces-report results.json" in stderr
    results = json.loads((tmp_path / "a" / "results.json").read_text())
    assert results["gates"] == [{"gate": "no-skips", "passed": True, "measured": 0, "text": "0 skipped"}]
    html = (tmp_path / "a" / "report.html").read_text()
    assert 'id="gates"' in html and "not a miniplaces-report results.json" in html

    # the previous report: one number and one input changed
    results["filters"]["layers"][0]["norm_ratio"] *= 1.5
    results["run"]["versions"]["numpy"] = "0.0-previous"
    previous = tmp_path / "previous.json"
    previous.write_text(json.dumps(results))
    second = run_cli("--only", "filters", "--no-pdf", "--gate", "no-demo", "--gate", "unchanged",
                     "--compare", str(previous), out=tmp_path / "b", **env)
    assert second.returncode == 3, second.stderr[-2000:]
    failed = [line for line in second.stderr.splitlines() if line.startswith("gate failed:")]
    assert len(failed) == 2 and "no-demo: Places365 weights are the untrained demo model" in failed[0]
    assert "unchanged: 1 number(s) beyond tolerance" in failed[1] and "norm_ratio" in failed[1]
    out = tmp_path / "b"
    assert all((out / name).stat().st_size > 0 for name in ("report.html", "results.json", "changes.json"))
    changes = json.loads((out / "changes.json").read_text())
    assert [(i["input"], i["old"]) for i in changes["inputs"]] == [("library numpy", "0.0-previous")]
    assert [(c["question"], c["path"], c["status"]) for c in changes["changes"]] == [
        ("1b", "filters.layers[conv1].norm_ratio", "beyond tolerance")]
    new = json.loads((out / "results.json").read_text())
    assert [(g["gate"], g["passed"]) for g in new["gates"]] == [("no-demo", False), ("unchanged", False)]
    assert new["changes"]["counts"]["beyond_tolerance"] == 1
    html = (out / "report.html").read_text()
    assert "filters.layers[conv1].norm_ratio" in html and "library numpy" in html and "FAILED" in html

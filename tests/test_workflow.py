"""The shipped GitHub Actions workflow parses, and its report command uses options this program has."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from generate_report import parse_args
from miniplaces.ci import gates

WORKFLOW = Path(__file__).resolve().parent.parent / ".github" / "workflows" / "report.yml"


def steps() -> list[dict]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    return workflow["jobs"]["report"]["steps"]


def test_workflow_report_command_parses_with_its_gates():
    script = next(s["run"] for s in steps() if "generate_report.py" in s.get("run", ""))
    words = shlex.split(re.search(r"args=\((.*)\)", script).group(1).replace("$MIN_ACCURACY", "0.85"))
    config = parse_args(words + ["--compare", "previous", "--gate", "unchanged"])   # with a previous report
    assert config.preset == "quick"
    assert {gates.parse(g).name for g in config.gates} == {"no-demo", "no-skips", "min-accuracy", "unchanged"}


def test_workflow_caches_results_and_uploads_every_output():
    by_action = {s["uses"].split("@")[0]: s for s in steps() if "uses" in s}
    assert ".cache/miniplaces-report" in by_action["actions/cache"]["with"]["path"]
    uploaded = by_action["actions/upload-artifact"]["with"]["path"].split()
    outputs = ("report.html", "report.pdf", "results.json", "changes.json")
    assert uploaded == [f"reports/{name}" for name in outputs]
    assert by_action["actions/upload-artifact"]["if"] == "always()"   # a failed gate still publishes it

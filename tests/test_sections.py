"""The section registry: each section is one description, and a new one needs one module, one template
and one registry entry (tests/toy/), nothing else."""
from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path

import pytest
from conftest import ROOT, run_here

from miniplaces.report import listings, sections

TOY = Path(__file__).with_name("toy")


@pytest.fixture
def toy_section(monkeypatch):
    monkeypatch.syspath_prepend(str(TOY))
    toy = importlib.import_module("toy_section").SECTION
    sections.REGISTRY.append(toy)
    yield toy
    sections.REGISTRY.remove(toy)


def test_a_toy_section_renders_is_compared_and_loads_no_places_model(toy_section, tmp_path, monkeypatch,
                                                                      capsys):
    first = run_here("--only", "toy", "--preset", "quick", "--out", str(tmp_path / "a"), tmp_path=tmp_path,
                     monkeypatch=monkeypatch, capsys=capsys)
    assert first.returncode == 0, first.stderr
    results = json.loads((tmp_path / "a" / "results.json").read_text())
    assert results["toy"]["draws"] == 10 and 0 < results["toy"]["mean"] < 1
    assert results["model"] is None and "scenes" not in results
    assert [s["name"] for s in results["run"]["steps"]][:1] == ["toy"]   # no "load Places365 model"
    html = (tmp_path / "a" / "report.html").read_text()
    assert '<h2 id="toy">Problem 5: A toy problem</h2>' in html
    assert '<tr data-question="5a"><td><a href="#toy-5a">5a. mean of uniform draws</a>' in html   # glance
    assert 'id="toy-5a">5a. The mean of uniform draws' in html and 'class="toy-mean"' in html
    assert (tmp_path / "a" / "report.pdf").stat().st_size > 0
    assert "Problem 1" not in html

    second = run_here("--only", "toy", "--preset", "quick", "--seed", "1", "--out", str(tmp_path / "b"),
                      "--compare", str(tmp_path / "a"), "--gate", "unchanged", tmp_path=tmp_path,
                      monkeypatch=monkeypatch, capsys=capsys)
    assert second.returncode == 0, second.stderr   # the mean moved, and the changed seed explains it
    changes = json.loads((tmp_path / "b" / "changes.json").read_text())
    seed = next(i for i in changes["inputs"] if i["input"] == "option seed")
    assert "toy" in seed["explains"]
    mean = next(c for c in changes["changes"] if c["path"] == "toy.mean")
    assert mean["question"] == "5a" and mean["status"] == "explained by inputs"

    skipped = run_here("--only", "toy", "--skip", "toy", tmp_path=tmp_path, monkeypatch=monkeypatch,
                       capsys=capsys)
    assert skipped.returncode == 2 and "leave no section" in skipped.stderr   # argparse knows the toy


def test_every_description_is_complete():
    keys = [q.key for s in sections.REGISTRY for q in s.questions]
    assert len(keys) == len(set(keys))
    anchors = [s.anchor_of(q) for s in sections.REGISTRY for q in s.questions]
    assert len(anchors) == len(set(anchors))
    for section in sections.REGISTRY:
        assert set(section.presets) == set(importlib.import_module("miniplaces.config").PRESETS), section.name
        assert (ROOT / "templates" / section.template_name).is_file()
        sentences = section.answer_module()
        for question in section.questions:
            assert callable(getattr(sentences, f"answer_{question.key}")), question.key
            for dotted in question.listed:
                assert callable(listings.resolve(dotted)), dotted
        for option in section.options:
            assert option in importlib.import_module("miniplaces.config").RunConfig.__dataclass_fields__
    assert sections.model_section() is not None


OWN = {"miniplaces/report/sections/__init__.py"}   # the registry
OWN |= {f"miniplaces/report/{part}/{s.name}.py" for s in sections.REGISTRY
        for part in ("sections", "answers")}
OWN |= {"miniplaces/report/sections/cam_faithfulness.py"}   # the cam section's second glue module


def python_files():
    return [p for p in sorted((ROOT / "miniplaces").rglob("*.py"))
            if p.relative_to(ROOT).as_posix() not in OWN]


def test_no_module_outside_a_section_names_one():
    """Adding or removing a section touches the registry and its own files only: no other module names a
    section in a string literal (a results.json key, an --only value, a chained conditional)."""
    names = set(sections.names())
    found = []
    for path in python_files() + [ROOT / "generate_report.py"]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert found == []


LAYERS = {"miniplaces": 0, "miniplaces.inputs": 1, "miniplaces.report": 2, "miniplaces.ci": 3,
          "miniplaces.grading": 3}   # a module imports only from its own layer or below


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "miniplaces":
        return None
    return LAYERS.get(".".join(parts[:2]), 0)


def test_imports_run_down_the_house():
    """analyses/ imports nothing of miniplaces/; the shared modules at miniplaces/'s top (config, cache,
    errors, ...) import none of the programs; inputs import nothing of the report, the grader or CI."""
    wrong = []
    for path in sorted((ROOT / "analyses").rglob("*.py")) + sorted((ROOT / "miniplaces").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        own = _layer(module) if module.startswith("miniplaces") else -1
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                       [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level
                       else [])
            for target in targets:
                layer = _layer(target)
                if layer is not None and layer > own and not (own == 3 and layer == 3):
                    wrong.append(f"{module} imports {target}")
    assert wrong == []

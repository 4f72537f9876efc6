"""How far a checkpoint is trusted: "official" only by a known SHA-256, and an untrained network is caught
(model.weights_check) on small checkpoints in the official format, random and trained-looking."""
from __future__ import annotations

import json

import numpy as np
import pytest
from checkpoints import resnet_state, trained_looking_state, write_official
from conftest import run_here

from miniplaces.ci import gates
from miniplaces.inputs import checkpoint, scenes
from miniplaces.inputs.places_model import build_model, provision, read_state_dict
from miniplaces.report import answers


def load(path):
    return build_model("resnet18", read_state_dict(path), str(path))


@pytest.fixture(scope="module")
def random_file(tmp_path_factory):
    return write_official(tmp_path_factory.mktemp("ck") / "resnet18_places365.pth.tar", resnet_state())


def test_official_only_when_the_sha256_is_a_known_one(random_file, tmp_path, monkeypatch):
    places = provision(random_file, None, "resnet18", tmp_path, "cpu", 0, strict=False, offline=True,
                       progress=False)
    shown = places.to_json()["provenance"]
    assert shown["status"] == "unverified" and "not verified" in shown["label"]
    assert "official" not in shown["label"].replace("release", "")
    monkeypatch.setitem(checkpoint.KNOWN_SHA256, "resnet18", frozenset({places.sha256}))
    assert places.to_json()["provenance"]["status"] == "official"
    assert checkpoint.provenance("resnet50", places.sha256, demo=False)["status"] == "unverified"


def test_a_random_checkpoint_is_called_untrained_with_its_reasons(random_file):
    check = checkpoint.weights_check(load(random_file))
    assert check["verdict"] == "untrained"
    assert any("1/sqrt(512)" in r for r in check["reasons"])        # FC at PyTorch's default bound
    assert any("BatchNorm" in r for r in check["reasons"])
    assert check["measured"]["batchnorm_at_defaults"] == check["measured"]["batchnorm_layers"] == 20
    assert not check["predictions_checked"]


def test_a_trained_looking_checkpoint_passes(tmp_path):
    model = load(write_official(tmp_path / "t.pth.tar", trained_looking_state()))
    rng = np.random.default_rng(0)
    varied = [rng.dirichlet(np.full(365, 0.1)) for _ in range(5)]
    check = checkpoint.weights_check(model, varied, [f"c{i}" for i in range(365)])
    assert check == {**check, "verdict": "no sign of an untrained network", "reasons": [],
                     "predictions_checked": True}
    assert not checkpoint.untrained({"demo": False, "weights_check": check})


def test_one_prediction_for_every_scene_is_caught_by_itself(tmp_path):
    """Trained-looking statistics, but the network says the same thing (ranks classes alike) for all."""
    model = load(write_official(tmp_path / "t.pth.tar", trained_looking_state()))
    rng = np.random.default_rng(1)
    base = np.log(rng.dirichlet(np.full(365, 0.5)))
    base[7] += 8
    blind = [np.exp(z) / np.exp(z).sum() for z in (base + 0.05 * rng.standard_normal((4, 365)))]
    check = checkpoint.weights_check(model, blind, [f"c{i}" for i in range(365)])
    assert check["verdict"] == "untrained" and len(check["reasons"]) == 1
    assert "same top-1 class, c7" in check["reasons"][0]
    # two scenes are too few to judge; scenes with different top-1 classes are not blind
    assert checkpoint.weights_check(model, blind[:2], [])["reasons"] == []
    assert checkpoint.weights_check(model, blind[:3] + [rng.dirichlet(np.ones(365))], [])["reasons"] == []


def test_gate_and_answers_treat_an_untrained_checkpoint_like_the_demo(random_file):
    model = {"demo": False, "sha256": "ab" * 32, "weights_check": checkpoint.weights_check(load(random_file))}
    verdict, = gates.evaluate([gates.parse("no-demo")], {"model": model}, [], None)
    assert not verdict["passed"] and "behaves as untrained" in verdict["text"]
    assert answers.untrained_tag(model) == answers.UNTRAINED_TAG
    assert answers.untrained_tag({"demo": False, "weights_check": {"verdict": "ok"}}) == ""


def test_a_random_official_format_checkpoint_is_flagged_on_page_one(random_file, tmp_path, monkeypatch,
                                                                     capsys):
    out = tmp_path / "out"
    run = run_here("--offline", "--out", str(out), "--arch", "resnet18", "--weights", str(random_file),
                   "--preset", "quick", "--only", "filters", "--no-pdf", "--gate", "no-demo",
                   tmp_path=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert run.returncode == gates.EXIT_CODE, run.stderr[-2000:]
    assert "behaves as untrained" in run.stderr and "not verified" in run.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["model"]["weights_check"]["verdict"] == "untrained"
    assert results["model"]["provenance"]["status"] == "unverified"
    html = (out / "report.html").read_text()
    first_page = html[:html.index('id="contents"')]
    assert 'id="untrained-banner"' in first_page and "not verified" in first_page
    assert "official weights" not in html
    assert first_page.count(answers.UNTRAINED_TAG) == 2      # 1a and 1b in the glance table


def test_problem_2_on_a_random_checkpoint_flags_it_from_the_predictions_and_labels_what_ran(
        random_file, tmp_path, monkeypatch, capsys):
    """Problems 2 on the default scenes and one without masks: the same top-1 class everywhere is a
    reason of its own, and a scene without masks gets no caption about masks."""
    from PIL import Image

    plain = tmp_path / "plain.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(plain)
    out = tmp_path / "out"
    run = run_here("--offline", "--out", str(out), "--arch", "resnet18", "--weights", str(random_file),
                   "--preset", "quick", "--only", "units", "--no-pdf", "--image-size", "64",
                   "--sweep-limit", "5", "--images", str(plain), "--focus-image", "plain.png",
                   tmp_path=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    check = results["model"]["weights_check"]
    assert check["predictions_checked"] and check["measured"]["scenes"] == len(scenes.DEFAULT_SCENES) + 1
    assert any("same top-1 class" in r for r in check["reasons"]), check
    html = (out / "report.html").read_text()
    assert "plain.png: no concept masks" in html and "plain.png: each row is a concept" not in html
    assert "rocket.jpg: concept masks (yellow)" in html
    assert 'id="smoke-test-banner"' in html[:html.index('id="contents"')]
    overall = results["units"]["dissection"]["overall"]
    for scene in results["scenes"]:   # the figure draws the units 2b names first
        for concept, units in scene["figure_units"].items():
            assert units[0] == overall[concept]["top"][0]["unit"]

"""--compare: numbers paired by path and stable ids, per-kind tolerances, input differences, odd files."""
from __future__ import annotations

import copy
import json

import pytest

from miniplaces.ci import compare, gates
from miniplaces.errors import UserError


def results() -> dict:
    """A small results.json with the shapes of the real one (Places numbers, scenes, FashionMNIST)."""
    return {
        "schema_version": 1,
        "run": {"version": "0.1.0", "git_commit": "abc123", "date": "2026-11-25 10:00 UTC",
                "versions": {"torch": "2.4.0", "numpy": "2.0.0"},
                "config": {"preset": "quick", "seed": 0, "out": "reports", "image_size": 256,
                           "sections": ["filters", "units", "fashion_mnist"]},
                "steps": [{"name": "filters", "seconds": 1.5, "cached": False}]},
        "model": {"arch": "resnet50", "sha256": "aa" * 32, "demo": False, "demo_reason": ""},
        "filters": {"layers": [{"layer": "conv1", "norm_ratio": 12.5, "filters": 64},
                               {"layer": "layer1.0.conv2", "norm_ratio": 3.25, "filters": 64}]},
        "units": {"sweep_limit": 100, "timing": {"dissection_seconds": 4.2}},
        "scenes": [{"image": "rocket.jpg", "sha256": "r1", "top5": [{"index": 3, "label": "a", "prob": 0.5},
                                                                    {"index": 7, "label": "b", "prob": 0.25}],
                    "sweep": {"exact": {"k": 3, "units": [5, 9, 1]}}},
                   {"image": "coffee.png", "sha256": "c1", "top5": [{"index": 1, "label": "c", "prob": 0.75}],
                    "sweep": {"exact": {"k": 1, "units": [4]}}}],
        "fashion_mnist": {"data": {"sha256": "ff", "test_images": 10000, "val_images": 2000},
                          "final": {"test_acc": 0.9100, "params": 20538, "train_s": 50.0},
                          "baseline": {"val_acc": 0.8800, "final_train_loss": 0.31},
                          "grid_trials_trained": 8},
    }


def statuses(report: dict) -> dict[str, str]:
    return {c["path"]: c["status"] for c in report["changes"]}


def test_identical_and_reordered_results_have_no_change():
    old, new = results(), results()
    new["scenes"].reverse()                       # paired by image, not by position
    new["scenes"][1]["top5"].reverse()            # classes paired by index
    new["run"]["steps"][0]["seconds"] = 99.0      # timings are not results
    new["units"]["timing"]["dissection_seconds"] = 1.0
    new["fashion_mnist"]["grid_trials_trained"] = 0   # every trial read from the cache this time
    new["run"]["config"]["out"] = "elsewhere"     # where outputs go is not an input
    report = compare.compare(new, old, "old.json")
    assert report["changes"] == [] and report["inputs"] == []
    assert report["counts"]["compared"] >= 15


def test_one_changed_number_and_one_changed_input_are_exactly_what_is_listed():
    old, new = results(), results()
    new["scenes"][0]["sweep"]["exact"]["k"] = 2
    new["run"]["versions"]["numpy"] = "2.1.0"
    report = compare.compare(new, old, "old.json")
    assert [(c["question"], c["path"], c["old"], c["new"], c["status"]) for c in report["changes"]] == [
        ("2d", "scenes[rocket.jpg].sweep.exact.k", 3, 2, "beyond tolerance")]
    assert [(i["input"], i["kind"], i["old"], i["new"]) for i in report["inputs"]] == [
        ("library numpy", "library", "2.0.0", "2.1.0")]
    assert report["by_question"] == {"2d": {"changed": 1, "beyond_tolerance": 1}}
    assert report["counts"]["beyond_tolerance"] == 1


def test_places_numbers_allow_float_rounding_only():
    old, new = results(), results()
    new["filters"]["layers"][0]["norm_ratio"] = 12.5 * (1 + 1e-7)      # float32 noise
    new["filters"]["layers"][1]["norm_ratio"] = 3.25 * (1 + 1e-3)      # a real move
    # another convolution algorithm (NCHW against NHWC weights) moved a probability by 1.3e-5 relative
    new["scenes"][0]["top5"][0]["prob"] = 0.5 * (1 + 1.3e-5)
    new["scenes"][0]["top5"][1]["prob"] = 0.25 * (1 + 1e-3)           # a real move
    assert statuses(compare.compare(new, old, "x")) == {
        "filters.layers[conv1].norm_ratio": "within tolerance",
        "filters.layers[layer1.0.conv2].norm_ratio": "beyond tolerance",
        "scenes[rocket.jpg].top5[3].prob": "within tolerance",
        "scenes[rocket.jpg].top5[7].prob": "beyond tolerance"}


def test_residuals_of_the_identity_checks_may_move_while_they_stay_rounding_sized():
    old, new = results(), results()
    for tree in (old, new):
        tree["scenes"][0]["cam"] = {"shapes": {"mean_over_positions_vs_logits": 2.1e-5,
                                               "columns_vs_cam_plus_bias": 1.2e-5}}
    new["scenes"][0]["cam"]["shapes"]["mean_over_positions_vs_logits"] = 2.7e-5   # rounding, measured
    new["scenes"][0]["cam"]["shapes"]["columns_vs_cam_plus_bias"] = 0.5           # the identity broke
    report = compare.compare(new, old, "x")
    assert statuses(report) == {
        "scenes[rocket.jpg].cam.shapes.mean_over_positions_vs_logits": "within tolerance",
        "scenes[rocket.jpg].cam.shapes.columns_vs_cam_plus_bias": "beyond tolerance"}
    assert {c["kind"] for c in report["changes"]} == {"rounding residual"}


def test_retrained_accuracy_moves_within_binomial_noise():
    # test set of 10 000 at 91 %: SE = sqrt(0.91 * 0.09 / 10000) = 0.00286, so 3 SE = 0.0086
    old, new = results(), results()
    new["fashion_mnist"]["final"]["test_acc"] = 0.9030           # -0.7 pp: noise
    new["fashion_mnist"]["baseline"]["val_acc"] = 0.8200         # -6 pp on 2 000 images (3 SE = 2.2 pp)
    new["fashion_mnist"]["baseline"]["final_train_loss"] = 0.40  # no noise model: listed only
    report = compare.compare(new, old, "x")
    assert statuses(report) == {"fashion_mnist.final.test_acc": "within tolerance",
                                "fashion_mnist.baseline.val_acc": "beyond tolerance",
                                "fashion_mnist.baseline.final_train_loss": "listed (no noise model)"}
    test_acc = next(c for c in report["changes"] if c["path"].endswith("test_acc"))
    assert test_acc["tolerance"] == pytest.approx(3 * (0.91 * 0.09 / 10000) ** 0.5)
    assert test_acc["question"] == "final"


def test_changed_weights_explain_places_changes_but_not_fashion_ones():
    old, new = results(), results()
    new["model"]["sha256"] = "bb" * 32
    new["filters"]["layers"][0]["norm_ratio"] = 20.0
    new["scenes"][1]["top5"] = [{"index": 2, "label": "d", "prob": 0.6}]   # another class: added and removed
    new["fashion_mnist"]["final"]["params"] = 999
    report = compare.compare(new, old, "x")
    assert [i["input"] for i in report["inputs"]] == ["Places365 weights (SHA-256)"]
    found = statuses(report)
    assert found["filters.layers[conv1].norm_ratio"] == "explained by inputs"
    assert found["scenes[coffee.png].top5[1]"] == "explained by inputs"     # removed class 1
    assert found["scenes[coffee.png].top5[2]"] == "explained by inputs"     # added class 2
    assert found["fashion_mnist.final.params"] == "beyond tolerance"
    assert report["counts"]["beyond_tolerance"] == 1


def test_changed_scene_and_data_inputs_are_named():
    old, new = results(), results()
    new["scenes"][0]["sha256"] = "r2"
    new["fashion_mnist"]["data"]["sha256"] = "ee"
    new["run"]["config"]["image_size"] = 224
    new["run"]["git_commit"] = "def456"
    kinds = {i["input"]: i["kind"] for i in compare.compare(new, old, "x")["inputs"]}
    assert kinds == {"scene rocket.jpg (SHA-256)": "data", "FashionMNIST data (SHA-256)": "data",
                     "option image_size": "config", "git commit": "code"}


def test_older_schema_compares_matching_paths_and_lists_the_rest():
    old, new = results(), results()
    old["schema_version"] = 0
    del old["units"]
    old["filters"]["layers"][0]["norm_ratio"] = {"value": 12.5}     # an old layout of the same key
    new["scenes"][0]["sweep"]["exact"]["k"] = 4
    report = compare.compare(new, old, "old.json")
    assert "schema_version 0" in report["notes"][0]
    assert {n["path"] for n in report["not_comparable"]} == {"units", "filters.layers[conv1].norm_ratio"}
    assert statuses(report) == {"scenes[rocket.jpg].sweep.exact.k": "beyond tolerance"}


@pytest.mark.parametrize("content, words", [
    ("[1, 2, 3]", "not a miniplaces-report results.json"),
    ('{"accuracy": 0.9}', "not a miniplaces-report results.json"),
    ("{not json", "is not JSON (line 1"),
])
def test_foreign_or_broken_file_gives_a_note_not_a_crash(tmp_path, content, words):
    (tmp_path / "results.json").write_text(content)
    old, source, note = compare.load_previous(tmp_path)            # a folder holding results.json
    assert old is None and source == str(tmp_path / "results.json") and words in note
    report = compare.compare(results(), old, source, note)
    assert report["previous"] is None and report["changes"] == [] and report["notes"] == [note]
    json.dumps(report)
    verdict, = gates.evaluate([gates.parse("unchanged")], results(), [], report)
    assert not verdict["passed"] and words in verdict["text"]     # never passed unmeasured


def test_missing_compare_path_is_bad_input(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        compare.load_previous(tmp_path / "nowhere.json")
    with pytest.raises(UserError, match="holds no results.json"):
        compare.load_previous(tmp_path)


def test_gate_specs_and_verdicts():
    assert gates.parse("min-accuracy") == gates.Gate("min-accuracy", 0.90)
    assert gates.parse("min-accuracy=0.85").label == "min-accuracy=0.85"
    for bad, words in [("speed", "unknown gate 'speed'"), ("min-accuracy=high", "'high' is not a number"),
                       ("min-accuracy=90", "fraction"), ("no-demo=1", "takes no value")]:
        with pytest.raises(ValueError, match=words):
            gates.parse(bad)
    assert gates.missing_requirement(gates.parse("min-accuracy"), ("filters",), False) == \
        "--gate min-accuracy=0.9 needs the fashion_mnist section"
    assert gates.missing_requirement(gates.parse("unchanged"), ("filters",), True) is None

    data = results()
    data["units"]["skipped"] = [{"file": "bad.jpg", "why": "not an image"}]
    old = copy.deepcopy(data)
    data["fashion_mnist"]["final"]["test_acc"] = 0.8817
    changes = compare.compare(data, old, "old.json")
    specs = ("min-accuracy", "min-accuracy=0.88", "no-demo", "no-skips", "unchanged")
    sections = [{"name": "filters", "notes": []}]
    verdicts = gates.evaluate([gates.parse(s) for s in specs], data, sections, changes)
    assert [(v["gate"], v["passed"]) for v in verdicts] == [
        ("min-accuracy=0.9", False), ("min-accuracy=0.88", True), ("no-demo", True), ("no-skips", False),
        ("unchanged", False)]   # 91.00 -> 88.17 % is beyond 3 SE (0.86 pp)
    assert verdicts[0]["text"] == "FashionMNIST test accuracy 88.17 % < 90.00 %"
    assert "image bad.jpg: not an image" in verdicts[3]["text"]
    assert "fashion_mnist.final.test_acc: 0.91 -> 0.8817" in verdicts[4]["text"]


HOSTILE = [   # (file content, words of the one-line error)
    ('{"schema_version": 1, "model": "x"}', "model is a string, not an object"),
    ('{"schema_version": 1, "run": {"config": [1]}}', "run.config is a list, not an object"),
    ('{"schema_version": 1, "fashion_mnist": {"grid": 5}}', "fashion_mnist.grid is a number"),
    ('{"schema_version": 1, "scenes": 3}', "scenes is a number, not a list"),
    ('{"schema_version": 1, "scenes": [{"image": ["a"]}]}', "scenes[0].image is a list"),
    ('{"schema_version": 1, "filters": {"x": NaN}}', "NaN is not a JSON value"),
    ('{"schema_version": 1, "filters": {"x": -Infinity}}', "-Infinity is not a JSON value"),
    ('{"schema_version": 1, "filters": {"x": 1e999}}', "1e999 is out of range"),
    ('{"schema_version": 1, "filters": {"x": ' + "7" * 5000 + "}}", "an integer of 5000 digits"),
    ('{"schema_version": 1, "filters": ' + "[" * 100 + "]" * 100 + "}", "nested deeper than 64"),
    ('{"schema_version": 1, "filters": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested deeper than 64"),
]


@pytest.mark.parametrize("content, words", HOSTILE)
def test_a_results_json_that_would_break_the_comparison_is_bad_input(tmp_path, content, words):
    (tmp_path / "results.json").write_text(content)
    with pytest.raises(UserError, match=r"^--compare \S+results.json: ") as caught:
        compare.load_previous(tmp_path)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_a_compare_file_is_read_in_bounded_size(tmp_path):
    from miniplaces.inputs.bounded import RESULTS_BYTES

    big = tmp_path / "results.json"
    with open(big, "wb") as handle:   # sparse: nothing of it is read
        handle.truncate(RESULTS_BYTES + 1)
    with pytest.raises(UserError, match="more than the"):
        compare.load_previous(big)


def _nodes(tree, path=()):
    """Every (path, value) below ``tree``; a path is a tuple of keys and list indices."""
    yield path, tree
    children = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, child in children:
        yield from _nodes(child, path + (key,))


@pytest.mark.parametrize("odd", ["x", [1], 7, 0.5, None, True, {"a": 1}, [[{"image": {}}]]])
def test_any_value_anywhere_is_refused_up_front_or_compared(tmp_path, odd):
    """Each node of a results.json replaced by an odd value: load_previous refuses it (exit 2), or
    the comparison and its changes.json work. Never a crash after the work is done."""
    file = tmp_path / "results.json"
    for path, _ in list(_nodes(results()))[1:]:
        old = results()
        parent = old
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = odd
        file.write_text(json.dumps(old))
        try:
            loaded, source, note = compare.load_previous(file)
        except UserError:
            continue
        report = compare.compare(results(), loaded, source, note)
        json.dumps(report, allow_nan=False)
        gates.evaluate([gates.parse("unchanged")], results(), [], report)

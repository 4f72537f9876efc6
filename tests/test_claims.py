"""Claims against chance are stated as tests: a count, a detector or a verdict is called beyond chance
only where its test says so, and the sentence says what the test could not decide."""
from __future__ import annotations

import pytest

from analyses.filters import binomial_at_least
from miniplaces.report import answers


def _filters(colour: int, grey: int, n: int = 64) -> dict:
    from analyses.filters import SIGNIFICANCE, TAIL

    layer = {"layer": "conv1", "shape": [n, 3, 7, 7], "colour_filters": colour, "grey_filters": grey,
             "colour_fraction_median": 0.66,
             "colour_chance": {"median": 0.67, "p05": 0.57, "p95": 0.76, "layer_median_p05": 0.65,
                               "layer_median_p95": 0.68},
             "count_test": {"expected": TAIL * n, "alpha": SIGNIFICANCE,
                            "colour_p": binomial_at_least(colour, n, TAIL),
                            "grey_p": binomial_at_least(grey, n, TAIL)}}
    return {"filters": {"layers": [layer, {"layer": "layer1.0.conv2", "shape": [64, 64, 3, 3]}]}}


def test_binomial_tail_matches_the_referees_number():
    assert binomial_at_least(6, 64, 0.05) == pytest.approx(0.100, abs=5e-4)   # the referee: 0.10
    assert binomial_at_least(0, 64, 0.05) == 1.0


def test_1b_counts_are_tested_against_the_five_percent_per_tail():
    a = answers.answer("1b", _filters(colour=6, grey=30))
    text = a.text
    assert "about 3.2 filters beyond each percentile" in text
    assert "6 colour filters of 64, no more than chance (p = 0.100)" in text
    assert "30 grey filters, beyond chance (p < 0.001)" in text
    assert "6 colour filters of 64, no more than chance" in a.glance and "beyond chance of" not in a.glance
    assert "1 colour filter of 64, no more than chance" in answers.answer("1b", _filters(1, 0)).text


# ----------------------------------------------------------------------------------------------- 2b

def test_2b_p_values_account_for_every_unit_and_bonferroni_for_every_concept():
    from test_units import planted_set

    from analyses import concept_units

    maps, masks, _ = planted_set(n=6, seed=4)
    planted = concept_units.dissect(maps, masks).overall
    sky = planted["sky"]
    assert sky.p_value(7) == pytest.approx(1 / (1 + sky.null_draws)) == sky.smallest_p   # beats every draw
    assert concept_units.corrected_detectors(planted)["sky"][0][0] == 7
    # the same unit among 15 tested concepts: Bonferroni asks p < 0.05 / 15, below 1 / (draws + 1)
    many = {f"concept{i}": sky for i in range(14)} | {"sky": sky}
    assert sky.smallest_p * 15 >= 0.05 and concept_units.corrected_detectors(many)["sky"] == []


def _units(best_sky=(1732, 0.060), best_building=(987, 0.041), sky_found=(), concepts=15,
           draws=(40, 63), smallest=(1 / 41, 1 / 64)) -> dict:
    def concept(best, found, d, p):
        return {"images": 5, "top": [{"unit": best[0], "iou": best[1], "above_null": True}],
                "null_max_iou": 0.057, "null_draws": d, "cap": 0.08, "netdissect_count": 3,
                "smallest_p": p, "corrected_detectors": [{"unit": u, "p_corrected": 0.03} for u in found]}
    overall = {"sky": concept(best_sky, sky_found, draws[0], smallest[0]),
               "building": concept(best_building, (), draws[1], smallest[1])}
    return {"units": {"units": 2048, "model": {"output_shape": [1, 2048, 8, 8]}, "dissection": {
        "images": 5, "overall": overall,
        "correction": {"units": 2048, "concepts_tested": concepts, "alpha": 0.05, "bar": 0.05 / concepts}}}}


def test_2b_says_no_detector_found_with_the_tests_power_when_none_survives():
    a = answers.answer("2b", _units())
    assert a.sentences[0].startswith("No unit detects sky or building beyond chance")
    assert ("the best units reach IoU 0.060 (sky, unit 1732) and 0.041 (building, unit 987) against"
            in a.sentences[0])
    assert "Bonferroni, 15 concepts, a detector needs p < 0.0033" in a.sentences[1]
    assert "cannot find a detector here" in a.sentences[1]
    assert a.glance.startswith("No sky/building detector found (corrected for 2048 units and 15 concepts")
    assert "1732" not in a.glance and "beats chance" not in a.glance
    assert "sky 40" in a.reading[0] and "building 63" in a.reading[0]     # draws per concept
    assert "for sky and building that is barely above the chance level" in a.reading[0]


def test_2b_names_a_detector_only_when_it_survives_the_correction():
    a = answers.answer("2b", _units(sky_found=(1732,), concepts=2, smallest=(1 / 41, 1 / 64)))
    assert a.sentences[0].startswith("Unit 1732 detects sky (IoU 0.060, corrected p = 0.030); "
                                     "no building unit survives the correction")
    assert "cannot find" not in a.sentences[1] and a.glance.startswith("Unit 1732 detects sky")


def test_2b_checks_unit_300_on_the_mountain_masks_and_calls_a_zero_iou_no_overlap():
    results = _units()
    mountain = {"images": 1, "top": [{"unit": 5, "iou": 0.2, "above_null": True}], "null_max_iou": 0.278,
                "null_draws": 63, "cap": 0.9, "netdissect_count": 1, "smallest_p": 1 / 64,
                "corrected_detectors": []}
    results["units"]["dissection"]["overall"]["mountain"] = mountain
    results["units"]["unit300"] = 300
    results["scenes"] = [{"image": "lake.jpg", "id": "lake", "unit300": {"activity_rank": 970},
                          "concepts": [{"concept": "mountain", "unit300": {"iou": 0.0, "rank": 301}}]},
                         {"image": "alps.jpg", "id": "alps", "unit300": {"activity_rank": 12},
                          "concepts": [{"concept": "mountain", "unit300": {"iou": 0.0512, "rank": 4}}]}]
    last = answers.answer("2b", results).reading[-1]
    assert last.startswith("On the mountain masks (lake: IoU 0, no overlap; alps: IoU 0.051, rank 4 of "
                           "2048), unit 300 is no mountain detector beyond chance (chance level 0.278).")
    assert "rank 301" not in last
    mountain["corrected_detectors"] = [{"unit": 300, "p_corrected": 0.01}]
    assert "unit 300 is a mountain detector after the correction" in answers.answer("2b", results).reading[-1]
    del results["units"]["dissection"]["overall"]["mountain"]
    assert "mountain masks" not in " ".join(answers.answer("2b", results).reading)


# ----------------------------------------------------------------------------------------------- 3d

def test_3d_cannot_decide_where_blurring_everything_barely_moves_the_class():
    from analyses.cam_faithfulness import Curves, decidable

    flat = Curves([0, 0.5, 1], [0.578, 0.57, 0.567], [0.567, 0.57, 0.578])    # the referee's rocket
    assert not decidable(flat) and decidable(Curves([0, 1], [0.6, 0.2], [0.2, 0.6]))
    import json

    import numpy as np
    json.dumps(decidable(Curves([0, 1], list(np.float32([0.6, 0.2])), [0.2, 0.6])))   # results.json takes it

    import copy

    from test_writeup import places_results

    results = places_results(effective=(False, True))
    rocket = results["scenes"][0]["cam"]["faithfulness"]
    rocket.update(decidable=False, prob_original=0.578, prob_all_blurred=0.567)
    a = answers.answer("3d", results, results["scenes"][0])
    assert a.sentences[0].startswith("On rocket, blurring every pixel moves P(class 10) only from 57.8 % to "
                                     "56.7 %") and "cannot decide whether CAM is effective on this scene." \
        in a.sentences[0]
    assert "not effective" not in a.text
    assert "effective on coffee" in a.sentences[1] and len(a.sentences) == 2   # numbers: in the table
    assert a.glance == ("CAM beats random maps on deletion and insertion on 1 of the 1 scene where the test "
                        "can decide; it cannot decide on 1 scene.")
    alone = copy.deepcopy(results)
    del alone["scenes"][1]["cam"]["faithfulness"]
    b = answers.answer("3d", alone, alone["scenes"][0])
    assert b.sentences == [a.sentences[0]] and b.glance.startswith("The test cannot decide on this scene")


# ----------------------------------------------------------------------------------------------- 4d

def test_4d_a_significantly_worse_variant_is_called_worse_and_one_comparison_is_not_holm():
    from test_fashion_selection import INFO, _row

    from miniplaces.report.answers import fashion_mnist as sentences

    rows = [_row("baseline", 0.911), _row("augment=none", 0.880, "worse", (100, 410)),
            _row("init=kaiming", 0.914, "no measurable difference", (200, 170))]
    text = sentences.conclusion(rows, {**INFO, "k": 2})
    assert text.startswith("Augment=none lowers validation accuracy from 91.10 % to 88.00 % beyond "
                           "validation-sample noise")
    assert "No variant beats" not in text and "init=kaiming changes nothing measurable" in text
    one = sentences.conclusion(rows[:2], {**INFO, "k": 1})
    assert "Holm" not in one and "no variant raises it." in one

    def axis(name, rows_, k):
        return {"axis": name, "rows": rows_, "test": {"name": "exact McNemar (two-sided)", "k": k,
                                                      "images": 10000, "correction": "one comparison, so "
                                                      "no correction" if k == 1 else f"Holm over the {k} v"}}
    named = [{**r, "name": r["variant"]} for r in rows]
    fm = {"baseline": {"val_acc": 0.911}, "axes": [axis("augment", named[:2], 1)]}
    a = answers.answer("4d", {"fashion_mnist": fm})
    assert "worse beyond that noise: augment=none (-3.10 pp)." in a.text.lower()
    assert "Holm" not in a.text and "no correction" in a.text and "largest raw gain" not in a.text


# ----------------------------------------------------------------------------------------------- 4a

def test_4a_throughput_counts_the_images_actually_trained():
    from analyses.fashion_mnist.summary import baseline_summary

    history = [{"train_s": 2.0, "train_loss": 1.0, "val_acc": 0.8}]
    summary = baseline_summary([{"config": {"batch_size": 128, "augment": "flip", "label_smoothing": 0.0},
                                 "history": history, "val_acc": 0.8, "train_images": 2000,
                                 "val_images": 500}])
    assert summary["trained_per_epoch"] == 1920 and summary["images_per_s"] == 960
    text = answers.answer("4a", {"fashion_mnist": {"baseline": summary}}).text
    assert "trains 1,920 of the 2,000 images (the last partial batch is dropped)" in text and "960" in text


# ------------------------------------------------------------------------------------------- labels

def test_the_training_legend_says_augmented_only_for_an_augmented_model():
    from miniplaces.report.sections.fashion_mnist import train_label

    assert train_label("none") == "train"
    assert train_label("flip+crop") == "train (augmented batches: flip+crop)"


# ------------------------------------------------------------------------------------------- scenes

def test_scenes_the_network_sees_identically_are_analysed_once_and_listed(tmp_path):
    """The default astronaut and a 256 x 256 copy of it (resized as preprocessing resizes) are one input."""
    import numpy as np
    import skimage.data
    from PIL import Image
    from torchvision import transforms

    from miniplaces.cache import Cache
    from miniplaces.config import RunConfig
    from miniplaces.report.context import RunContext

    astronaut = Image.fromarray(skimage.data.astronaut())
    transforms.Resize((256, 256))(astronaut).save(tmp_path / "astronaut_256.png")
    Image.fromarray(np.full((40, 40, 3), 128, dtype=np.uint8)).save(tmp_path / "grey.png")
    config = RunConfig(out=tmp_path / "out", images=(tmp_path / "astronaut_256.png", tmp_path / "grey.png"),
                       cache_dir=tmp_path / "cache", sections=("units",))
    ctx = RunContext(config, Cache(tmp_path / "cache"))
    scene_set = ctx.scenes()
    names = [s.name for s in scene_set.scenes]
    assert "astronaut.png" in names and "astronaut_256.png" not in names and "grey.png" in names
    assert scene_set.duplicates == [{"file": "astronaut_256.png", "same_as": "astronaut.png"}]
    assert any("astronaut_256.png: the same network input as astronaut.png" in w for w in ctx.warnings)


def test_the_baseline_shows_the_precision_it_trained_in():
    from miniplaces.report.sections.fashion_mnist import base_settings

    asked = {"epochs": 2, "precision": "bf16"}
    assert base_settings(asked, "bf16") == ["epochs=2", "precision=bf16"]
    assert base_settings(asked, "fp32")[1] == ("precision=bf16 (trained in fp32: this machine has no "
                                              "native bf16)")

"""The writeup a grader reads: answers first and short, the code that earned the points, numbers that
match results.json where the report shows them, one scene in front and every scene in the appendix."""
from __future__ import annotations

import copy
import inspect
import json
import re

import pytest
from conftest import ROOT, run_here
from report_dom import parse, row_cells

from analyses.fashion_mnist.summary import curve_images
from miniplaces.report import answers, listings, render, sections
from miniplaces.report.answers import filters as filters_answers

MAX_ANSWER_WORDS = 75          # "at most three sentences and about 70 words"
PLACES_KEYS = {"1a", "1b", "2a", "2b", "2c", "2d", "3a", "3b", "3c", "3d"}


def main_body(dom):
    """Every element before Appendix A (the appendix sections come after Provenance)."""
    return [n for n in dom.iter() if not any("appendix" in a.attrs.get("class", "").split()
                                            for a in [n, *n.ancestors()])]


def pct(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f} %"


# ----------------------------------------------------------------------------------- on a real run

@pytest.mark.slow
def test_every_answer_is_short_and_first(quick_report):
    dom = parse(quick_report["out"] / "report.html")
    blocks = [n for n in main_body(dom) if "answer" in n.attrs.get("class", "").split()]
    expected = answers.build(quick_report["results"])
    assert sorted(b.attrs["data-question"] for b in blocks) == sorted(expected)
    for block in blocks:
        words = len(block.words.split())
        assert words <= MAX_ANSWER_WORDS, f"{block.attrs['data-question']}: {words} words: {block.words}"
        assert block.words.endswith("."), block.words
    demo = bool(answers.untrained_tag(quick_report["results"]["model"]))
    for block in blocks:   # the demo is said once, briefly, in every Places answer and nowhere else
        marked = block.words.startswith(answers.UNTRAINED_TAG)
        assert marked == (demo and block.attrs["data-question"] in PLACES_KEYS), block.words


@pytest.mark.slow
def test_glance_table_has_a_row_per_answer_linking_to_its_heading(quick_report):
    dom = parse(quick_report["out"] / "report.html")
    table = dom.find("table", cls="glance")
    rows = [r for r in table.find_all("tr") if "data-question" in r.attrs]
    built = answers.build(quick_report["results"])
    assert [r.attrs["data-question"] for r in rows] == list(built)
    headings = {n.attrs["id"]: n for n in dom.iter() if n.tag in ("h2", "h3") and "id" in n.attrs}
    for row in rows:
        key = row.attrs["data-question"]
        link = row.find("a")
        target = link.attrs["href"].removeprefix("#")
        assert target in headings, target
        assert headings[target].words.startswith(key if key != "final" else "The final model")
        assert built[key].glance in row.words


@pytest.mark.slow
def test_listings_are_the_running_source(quick_report):
    dom = parse(quick_report["out"] / "report.html")
    shown = {d.attrs["data-function"]: d for d in dom.find_all("details", cls="listing")}
    wanted = {name for section in sections.running(quick_report["results"]["run"]["sections"])
              for question in section.questions for name in question.listed}
    assert wanted and set(shown) == wanted
    for name, block in shown.items():
        source = inspect.getsource(listings.resolve(name))
        assert block.find("pre").text.rstrip("\n") == source.rstrip("\n"), name
        _, line = inspect.getsourcelines(listings.resolve(name))
        assert f"line {line}" in block.find("summary").words


@pytest.mark.slow
def test_numbers_shown_for_2b_to_4d_match_results(quick_report):
    """A sample of what 2b-2d, 3d and 4d show, each read from its own table row."""
    results = quick_report["results"]
    dom = parse(quick_report["out"] / "report.html")
    overall = results["units"]["dissection"]["overall"]
    for concept, r in overall.items():
        cells = row_cells(dom.by_id("table-2b").find("tr", data_concept=concept))
        assert cells[4] == f"{r['null_max_iou']:.3f}" and cells[5] == str(r["null_draws"])
        assert cells[6] == f"{r['cap']:.3f}" and cells[7] == f"{r['best_p_corrected']:.3f}"
        assert cells[8] == str(len(r["corrected_detectors"])) and cells[9] == str(r["netdissect_count"])
        assert cells[3].startswith(f"{r['top'][0]['unit']} ({r['top'][0]['iou']:.3f})")
    for scene in results["scenes"]:
        a, s = scene["ablation"], scene["sweep"]
        cells = row_cells(dom.by_id("table-2c").find("tr", data_scene=scene["image"]))
        assert cells[3:5] == [pct(a["prob_before"]), pct(a["prob_after"])]
        cells = row_cells(dom.by_id("table-2d").find("tr", data_scene=scene["image"]))
        assert cells[1] == str(s["exact"]["k"]) and cells[2] == ", ".join(map(str, s["exact"]["units"]))
        assert cells[4] == str(s["by_weight"]["min_k"]) and cells[5] == str(s["by_contribution"]["min_k"])
    measured = [scene for scene in results["scenes"] if "faithfulness" in scene["cam"]]
    assert [scene["image"] for scene in measured] == results["cam"]["measured_scenes"] and measured
    for scene in measured:
        f = scene["cam"]["faithfulness"]
        cam = row_cells(dom.by_id("table-3d").find("tr", data_scene=scene["image"], data_method="CAM"))
        areas = f["methods"]["CAM"]
        assert cam[-4:-1] == ["CAM", f"{areas['deletion_auc']:.3f}", f"{areas['insertion_auc']:.3f}"]
        assert cam[-1].startswith("effective" if f["effective"] else "not effective")
        random = row_cells(dom.by_id("table-3d").find("tr", data_scene=scene["image"], data_method="random"))
        assert random[1] == f"{f['random']['deletion_mean']:.3f} ± {f['random']['deletion_sd']:.3f}"
    fm = results["fashion_mnist"]
    for axis in fm["axes"]:
        for row in axis["rows"][1:]:
            cells = row_cells(dom.by_id("table-4d").find("tr", data_name=row["name"]))
            assert cells[2] == pct(row["mean"], 2) and cells[3] == f"{row['delta_pp']:+.2f}"
            assert (cells[4].startswith(row["test"]["verdict"])
                    and render.p_value(row["test"]["p_adjusted"]) in cells[4])
        conclusion = dom.by_id("conclusions-4d").find("li", data_axis=axis["axis"]).words
        assert conclusion.endswith(" ".join(axis["conclusion"].split()))


@pytest.mark.slow
def test_focus_scene_in_front_every_scene_in_the_appendix(quick_report):
    results, out = quick_report["results"], quick_report["out"]
    dom = parse(out / "report.html")
    focus = results["scenes"][0]
    assert results["run"]["focus_scene"] == focus["image"]
    front = [n.find("img").attrs["alt"] for n in main_body(dom) if n.tag == "figure"]
    scene_figures = [alt for alt in front if any(s["image"] in alt for s in results["scenes"])]
    assert scene_figures and all(focus["image"] in alt for alt in scene_figures)
    appendix = dom.by_id("appendix-scenes").parent
    blocks = appendix.find_all("details", cls="scene")
    assert [b.find("h3").attrs["id"] for b in blocks] == [f"scene-{s['id']}" for s in results["scenes"]]
    images = {n.attrs["alt"] for n in appendix.find_all("img")}
    for scene in results["scenes"][1:]:   # nothing computed disappears: the other scenes' figures are here
        assert sum(scene["image"] in alt for alt in images) == 4, scene["image"]


@pytest.mark.slow
def test_focus_image_option(quick_report, tmp_path, monkeypatch, capsys):
    common = dict(cache=quick_report["cache"], torch_home=quick_report["torch_home"])
    bad = run_here("--preset", "quick", "--offline", "--only", "units", "--focus-image", "nope.jpg",
                   "--no-pdf", "--out", str(tmp_path / "bad"), tmp_path=tmp_path, monkeypatch=monkeypatch,
                   capsys=capsys)
    assert bad.returncode == 2 and "--focus-image nope.jpg" in bad.stderr and "Traceback" not in bad.stderr
    ok = run_here("--preset", "quick", "--offline", "--only", "units", "--focus-image", "coffee", "--no-pdf",
                  "--out", str(tmp_path / "ok"), tmp_path=tmp_path, monkeypatch=monkeypatch, capsys=capsys,
                  **common)   # units alone: it also renders without the cam section
    assert ok.returncode == 0, ok.stderr[-2000:]
    results = json.loads((tmp_path / "ok" / "results.json").read_text())
    assert results["run"]["focus_scene"] == "coffee.png"
    dom = parse(tmp_path / "ok" / "report.html")
    assert "coffee" in dom.by_id("answer-2d").words
    assert "coffee.png" in dom.by_id("units-2c").parent.find("figure", cls="key").find("img").attrs["alt"]


@pytest.mark.slow
def test_each_per_scene_section_renders_alone(quick_report, tmp_path, monkeypatch, capsys):
    """The scene keys the provenance table and the appendix read come from whichever section ran."""
    common = dict(cache=quick_report["cache"], torch_home=quick_report["torch_home"])
    alone = run_here("--preset", "quick", "--offline", "--only", "cam", "--no-pdf", "--out", str(tmp_path),
                     tmp_path=tmp_path, monkeypatch=monkeypatch, capsys=capsys, **common)
    assert alone.returncode == 0, alone.stderr[-2000:]
    scene = json.loads((tmp_path / "results.json").read_text())["scenes"][0]
    assert {"source", "sha256", "size"} <= set(scene) and "ablation" not in scene
    assert scene["sha256"] in parse(tmp_path / "report.html").text


# -------------------------------------------------------------------------- sentences, synthetically

def places_results(k_exact=(1, 2), by_weight=(3, None), changed=(True, False),
                   effective=(True, False)) -> dict:
    """Two scenes with the keys the answers read, in the shape results.json has them."""
    scenes = []
    for i, name in enumerate(["rocket.jpg", "coffee.png"]):
        cls = {"index": 10 + i, "label": f"class {10 + i}"}
        scenes.append({
            "image": name, "id": name.split(".")[0],
            "ablation": {"class": cls, "prob_before": 0.6, "prob_after": 0.3 - 0.1 * i,
                         "top1_changed": changed[i],
                         "top5_after": [{"index": 99, "label": "barn", "prob": 0.4}]},
            "sweep": {"by_weight": {"class": cls, "min_k": by_weight[i]},
                      "by_contribution": {"class": cls, "min_k": 2},
                      "exact": {"k": k_exact[i], "units": list(range(k_exact[i] or 0)),
                                "rival": {"index": 5, "label": "barn"},
                                "new_top1": {"index": 5, "label": "barn"} if k_exact[i] else None}},
            "cam": {"shape": {"concentration": 0.6 if effective[i] else 0.3, "correlation": 0.5},
                    "faithfulness": faithfulness(cls, effective[i]),
                    "explanations": [{"label": cls["label"], "prob": 0.6,
                                      "units": [{"unit": 1, "share": 0.3}],
                                      "concepts": [{"concept": "sky", "mass": 0.7, "area": 0.4,
                                                    "lift": 1.75}]}]},
        })
    return {"units": {"sweep_limit": 100}, "cam": {}, "scenes": scenes}


def faithfulness(cls: dict, effective: bool) -> dict:
    """A scene's 3d measurement: CAM's areas either clear of the random maps or inside their spread."""
    cam = {"deletion_auc": 0.2 if effective else 0.41, "insertion_auc": 0.6 if effective else 0.39,
           "effective": effective, "beats_centre": effective}
    return {"class": cls, "effective": effective, "beats_centre": effective,
            "methods": {"CAM": cam, "Grad-CAM": {**cam, "effective": True},
                        "Grad-CAM++": {**cam, "effective": False}},
            "random": {"seeds": 3, "deletion_mean": 0.4, "deletion_sd": 0.02,
                       "insertion_mean": 0.4, "insertion_sd": 0.02}}


def test_2d_answer_states_the_exact_minimum_and_the_bounds():
    a = answers.answer("2d", places_results(), places_results()["scenes"][0])
    assert a.sentences[0].startswith("Zeroing one unit, 0, changes the top-1 class of rocket "
                                     "from class 10 to barn")
    assert "1 to 2" in a.sentences[0]
    assert "ranking by FC weight needs 3 units (none within 100 on 1 scene)" in a.sentences[2]
    assert len(a.sentences) == 3 and "upper bounds" in a.sentences[2]


def test_2d_answer_when_no_set_of_units_changes_the_class():
    results = places_results(k_exact=(None, None), by_weight=(None, None))
    a = answers.answer("2d", results, results["scenes"][0])
    assert a.sentences[0].startswith("No set of units changes the top-1 class of rocket")
    assert "never succeeds" in a.sentences[2]
    assert a.glance == "No set of units changes the top-1 class of rocket."


def test_2c_and_3d_count_what_they_claim():
    results = places_results(changed=(False, False), effective=(True, True))
    a = answers.answer("2c", results, results["scenes"][0])
    assert "by 30.0 to 40.0 points" in a.sentences[0] and a.sentences[1] == "The top-1 class never changes."
    d = answers.answer("3d", results, results["scenes"][0])
    assert d.sentences[0] == ("Measured by deletion and insertion against random maps, CAM is effective on "
                              "all 2 scenes, and beats the centre prior on 2 of them.")
    assert d.sentences[1] == ("On rocket, deleting by CAM leaves an area of 0.200 under P(class 10) (random "
                              "maps: 0.400 ± 0.020); inserting gives 0.600 (0.400 ± 0.020).")
    assert len(d.sentences) == 2
    mixed = places_results()
    m = answers.answer("3d", mixed, mixed["scenes"][1])
    assert "effective on 1 of 2 scenes (rocket), and beats the centre prior on 1 of them." in m.sentences[0]
    assert m.sentences[1].startswith("On coffee, deleting by CAM leaves an area of 0.410")
    assert m.sentences[2] == "Grad-CAM passes the same test there."
    one = copy.deepcopy(mixed)
    del one["scenes"][0]["cam"]["faithfulness"]
    single = answers.answer("3d", one, one["scenes"][0])
    assert single.sentences[0] == ("Measured by deletion and insertion against random maps, CAM is not "
                                   "effective on coffee.")
    assert "measures 1 of 2 scenes" in single.reading[-1]
    one["model"] = {"demo": True}
    assert "untrained network" in answers.answer("3d", one, one["scenes"][0]).reading[0]


def test_focus_scene_is_chosen_by_file_name_or_id():
    results = places_results()
    assert answers.focus_scene(results, None)["image"] == "rocket.jpg"
    assert answers.focus_scene(results, "coffee")["image"] == "coffee.png"
    assert answers.focus_scene(results, "coffee.png")["image"] == "coffee.png"
    changed = copy.deepcopy(results)
    changed["scenes"] = []
    assert answers.focus_scene(changed, "coffee") is None


def test_1b_places_the_layers_median_colour_share_against_shuffled_layers():
    assert "no more and no less colourful than chance" in filters_answers._median_vs_chance(0.67, 0.66, 0.68)
    assert "above" in filters_answers._median_vs_chance(0.80, 0.66, 0.68) and "leans to colour" in \
        filters_answers._median_vs_chance(0.80, 0.66, 0.68)
    assert "leans to luminance" in filters_answers._median_vs_chance(0.40, 0.66, 0.68)


def _baseline(history: list[tuple[float, int]], discordant: tuple[int, int] | None, val_images: int = 10_000,
              epochs: int | None = None) -> dict:
    """results["fashion_mnist"] with a baseline whose epochs scored (accuracy, images) and whose last two
    epochs disagree on ``discordant`` = (right only in the last, right only in the one before) images."""
    from analyses.fashion_mnist.summary import last_epoch_test

    rows = [{"epoch": i + 1, "val_acc": acc, "val_images": n} for i, (acc, n) in enumerate(history)]
    if discordant is not None:
        rows[-1]["curve_discordant"] = list(discordant)
    config = {"optimizer": "adamw", "lr": 0.003, "schedule": "onecycle", "weight_decay": 0.05}
    return {"run": {"preset": "quick"}, "fashion_mnist": {"baseline": {
        "history": rows, "val_acc": history[-1][0], "epochs": epochs or len(rows),
        "first_val_acc": history[0][0], "val_images": val_images, "train_images": 12_000,
        "curve_images": curve_images({"history": rows, "val_images": val_images}),
        "last_epoch_test": last_epoch_test(rows), "config": config}}}


def test_4c_calls_a_trend_only_where_the_paired_test_puts_it_beyond_chance():
    """The last epoch is compared with the one before on the same images by the exact McNemar test; no
    unpaired noise formula."""
    small = answers.answer("4c", _baseline([(0.80, 2000), (0.900, 2000), (0.95, 10_000)], (20, 12)))
    assert "did not change beyond chance" in small.reading[0]
    assert "+0.40 pp on the sample of 2,000 images" in small.reading[0]
    assert "disagree on 32 of the same 2,000 images, exact McNemar (two-sided) p = 0.215" in small.reading[0]
    assert "more epochs" not in small.reading[0] and "s.e." not in small.reading[0]
    rising = answers.answer("4c", _baseline([(0.80, 2000), (0.900, 2000), (0.90, 10_000)], (80, 20)))
    assert "was still rising" in rising.reading[0] and "+3.00 pp" in rising.reading[0]
    fell = answers.answer("4c", _baseline([(0.8, 2000), (0.9, 2000), (0.9, 10_000)], (10, 70)))
    assert "fell" in fell.reading[0]
    assert answers.answer("4c", _baseline([(0.8, 2000), (0.9, 2000)], None)).reading == []


def test_4c_states_a_deviation_from_ten_epochs_first():
    two = answers.answer("4c", _baseline([(0.80, 2000), (0.85, 10_000)], (30, 10)))
    assert two.sentences[0] == ("The quick preset trains 2 epochs, not the problem set's 10, to keep the run "
                                "short.")
    assert "after 2 epochs on 12,000 training images" in two.sentences[1]
    assert two.glance.endswith("the problem set asks for 10.")
    ten = answers.answer("4c", _baseline([(0.8, 2000)] * 9 + [(0.9, 10_000)], (30, 10)))
    assert ten.sentences[0].startswith("The baseline's final validation accuracy after 10 epochs")


def test_final_answer_gives_the_test_score_with_its_interval_and_says_when_90_is_within_noise():
    def final(acc: float, interval: list[float]) -> str:
        results = {"fashion_mnist": {"data": {"test_images": 10_000}, "final": {
            "test_acc": acc, "test_interval": interval,
            "decision": {"text": "Chosen.", "chosen": "baseline"}}}}
        return " ".join(answers.answer("final", results).sentences)

    clear = final(0.9395, [0.9347, 0.9441])
    assert ("93.95 % on the 10,000 test images (exact 95 % interval 93.47 % to 94.41 %; slightly "
            "optimistic: an "
            "earlier test score shaped the grid's design), above the 90 % the problem set asks for.") in clear
    close = final(0.9012, [0.8953, 0.9069])
    assert ("above the 90 % the problem set asks for, but not by more than the test set's sampling noise"
            in close)
    assert "below the 90 %" in final(0.85, [0.843, 0.857]) and "noise" not in final(0.85, [0.843, 0.857])


def test_no_template_line_runs_its_last_word_into_the_next_line():
    """The templates render with trim_blocks, which drops the newline after a block tag: text before
    a tag that ends a line then runs into the next line's first word ("1-1-2convolution(s)"). Such a
    tag ends with ``+%}``, which keeps the newline."""
    tag = re.compile(r"\{%.*?%\}")
    glued = []
    for path in sorted((ROOT / "templates").glob("*.j2")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, (line, following) in enumerate(zip(lines, lines[1:]), 1):
            line = line.rstrip()
            if (line.endswith("%}") and not line.endswith(("+%}", "-%}")) and tag.sub("", line).strip()
                    and re.match(r"[\w(]", following)):
                glued.append(f"{path.name}:{number}: {line[-40:]!r} + {following[:20]!r}")
    assert not glued, glued



def test_contents_are_two_columns_of_nearly_equal_length_under_one_numbering():
    def section(name, number, subs):
        appendix = sections.get(name).appendix
        return {"name": name, "number": number, "title": name,
                "toc": [{"id": f"{name}{i}", "label": str(i)} for i in range(subs)],
                "appendix": appendix and {"anchor": appendix.anchor, "title": appendix.title}}
    shown = [section("filters", 1, 2), section("units", 2, 4), section("cam", 3, 4),
                section("fashion_mnist", 4, 5)]
    scenes = [{"id": f"s{i}", "image": f"s{i}.jpg"} for i in range(5)]
    columns = render.table_of_contents(shown, scenes, gates=[{"name": "no-demo"}], changes=None)
    entries = [e for column in columns for e in column]
    assert [e["number"] for e in entries] == list(range(1, len(entries) + 1))
    assert [e["href"] for e in entries] == ["run-summary", "gates", "answers-at-a-glance", "filters",
                                            "units", "cam", "fashion_mnist", "provenance",
                                            "appendix-scenes", "appendix-training"]
    assert [c["href"] for c in entries[-2]["children"]] == [f"scene-s{i}" for i in range(5)]
    lines = [1 + len(e["children"]) for e in entries]
    best = min(max(sum(lines[:k]), sum(lines[k:])) for k in range(1, len(lines)))
    assert len(columns) == 2 and max(sum(1 + len(e["children"]) for e in c) for c in columns) == best
    only_filters = render.table_of_contents(shown[:1], [], [], None)   # --only filters: no appendices
    assert [e["label"] for c in only_filters for e in c] == [
        "Run summary", "Answers at a glance", "Problem 1: filters", "Provenance"]


def _fm_4d(verdicts: dict[str, tuple[str, float]], family: dict | None) -> dict:
    """results["fashion_mnist"] for 4d: axis -> rows from ``verdicts`` (variant -> (verdict, delta_pp))."""
    def row(variant, verdict, delta):
        return {"name": variant, "variant": variant.split(": ")[1], "delta_pp": delta,
                "test": {"verdict": verdict, "p_adjusted": 0.01}}
    axes = {}
    for variant, (verdict, delta) in verdicts.items():
        axes.setdefault(variant.split(": ")[0], []).append(row(variant, verdict, delta))
    test = {"name": "exact McNemar (two-sided)", "images": 10_000, "k": 1, "seeds": 1,
            "correction": "one comparison, so no correction"}
    fm = {"baseline": {"val_acc": 0.9}, "axes": [{"axis": a, "rows": [{"name": "baseline"}, *rows],
                                                   "test": family or test} for a, rows in axes.items()]}
    return {"fashion_mnist": {**fm, **({"grid_family": family} if family else {})}}


def test_4d_counts_with_the_correction_over_the_whole_grid_and_says_what_the_test_measures():
    family = {"name": "exact McNemar (two-sided)", "images": 10_000, "k": 3, "seeds": 1,
              "correction": "Holm over all 3 variants of the grid"}
    results = _fm_4d({"lr: lr=0.01": ("better", 0.5), "lr: lr=1": ("worse", -3.0),
                      "init: init=kaiming": ("no measurable difference", 0.1)}, family)
    answer = answers.answer("4d", results)
    assert answer.sentences[0] == (
        "Of 3 variants tried one axis at a time, 1 beat the baseline (90.00 %) and 1 did worse beyond "
        "validation-sample noise; the rest are within it (exact McNemar (two-sided) on the same 10,000 "
        "validation images, Holm over all 3 variants of the grid; retraining (seed) noise not measured).")
    assert answer.glance == ("1 of 3 variants beat the baseline beyond validation-sample noise, 1 was worse "
                             "(paired test, Holm over all 3 variants of the grid).")
    assert "beyond chance" not in answer.text
    assert answer.sentences[2] == "Worse beyond that noise: lr=1 (-3.00 pp)."


def _appendix(tmp_path, history: list[dict], curve_images: int | None, trials: list[dict] | None = None):
    """Appendix B rendered alone from a results.json["fashion_mnist"] of one baseline, parsed."""
    final = {"name": "final (baseline)", "train_images": 60_000, "test_acc": 0.94, "seed": 0, "params": 1000,
             "history": [{}], "train_s": 10.0, "threads": 2}
    data = {"baseline": {"history": history, "curve_images": curve_images, "val_images": 10_000},
            "axes": [], "finalists": None, "trials": trials or [], "final": final, "grid": {"repeats": 1}}
    page = tmp_path / "appendix.html"
    page.write_text(render.environment(tmp_path, False).get_template("_appendix_training.html.j2").render(
        data=data, figures={}), encoding="utf-8")
    return parse(page)


def test_b1_never_puts_the_curve_sample_and_the_whole_split_in_one_column(tmp_path):
    """Epochs before the last are scored on the 1 000-image sample, the last on all 10 000 (and on the
    sample: curve_acc): each column holds one set of images, labelled."""
    rows = [{"epoch": 1, "train_loss": 0.9, "train_acc": 0.7, "val_loss": 0.5, "val_acc": 0.903,
             "val_images": 1000, "lr": 0.001, "train_s": 3.0},
            {"epoch": 2, "train_loss": 0.5, "train_acc": 0.8, "val_loss": 0.4, "val_acc": 0.8954,
             "curve_acc": 0.906, "val_images": 10_000, "lr": 0.0, "train_s": 3.0}]
    table = _appendix(tmp_path, rows, 1000).by_id("table-b1")
    heads, *cells = [row_cells(tr) for tr in table.find_all("tr")]
    assert heads[3:7] == ["val. loss, 1,000-image sample", "val. acc., 1,000-image sample",
                          "val. loss, all 10,000", "val. acc., all 10,000"]
    assert cells[0][3:7] == ["0.500", "90.30 %", "–", "–"]
    assert cells[1][3:7] == ["–", "90.60 %", "0.400", "89.54 %"]
    whole = _appendix(tmp_path, [{**rows[0], "val_images": 10_000}, rows[1]], None).by_id("table-b1")
    heads = row_cells(whole.find("tr"))
    assert "sample" not in " ".join(heads) and "val. acc., all 10,000" in heads


def test_4c_names_the_network_and_says_the_subset_is_not_the_training_split():
    results = _baseline([(0.8, 2000), (0.9, 10_000)], (30, 10))
    results["fashion_mnist"]["data"] = {"train_images": 60_000, "val_images": 10_000}
    text = answers.answer("4c", results).sentences[1]
    assert text == ("The baseline's final validation accuracy after 2 epochs on 12,000 training images "
                    "(a subset of "
                    "the 50,000-image training split; no run here trains it 2 epochs on all of it) is "
                    "90.00 % on "
                    "all 10,000 validation images.")
    results["fashion_mnist"]["finalists"] = {"trials": [{"name": "finalist: baseline", "epochs_run": 2}]}
    assert "(a subset of the 50,000-image training split) is" in answers.answer("4c", results).sentences[1]
    results["fashion_mnist"]["data"] = {"train_images": 22_000, "val_images": 10_000}
    assert "subset" not in answers.answer("4c", results).sentences[1]


def test_the_final_answer_puts_the_test_set_caveat_beside_the_score():
    results = {"fashion_mnist": {"data": {"test_images": 10_000}, "final": {
        "test_acc": 0.943, "test_interval": [0.938, 0.947],
        "decision": {"text": "Chosen.", "chosen": "baseline"}}}}
    first = answers.answer("final", results).sentences[0]
    assert "94.30 % on the 10,000 test images (exact 95 % interval 93.80 % to 94.70 %; slightly " \
           "optimistic: an " \
           "earlier test score shaped the grid's design)" in first


def test_b3_labels_each_trials_threads_and_says_seconds_compare_only_at_equal_threads(tmp_path):
    trial = {"name": "baseline", "seed": 0, "status": "ok", "val_acc": 0.9, "params": 1000, "epochs_run": 1,
             "train_s": 30.0, "threads": 1}
    epoch = {"epoch": 1, "train_loss": 0.5, "train_acc": 0.8, "val_loss": 0.4, "val_acc": 0.9,
             "val_images": 10_000, "lr": 0.0, "train_s": 30.0}
    dom = _appendix(tmp_path, [epoch], None, [trial])
    heads, grid_row, final_row = [row_cells(tr) for tr in dom.by_id("table-b3").find_all("tr")]
    assert heads[-1] == "threads" and grid_row[-1] == "1" and final_row[-1] == "2"
    assert "only between rows with the same thread count" in dom.words


def test_4c_is_answered_by_the_validated_final_run_naming_its_network_and_why_not_the_baseline():
    """With final_validated, 4c's answer is the final model's training on the whole training split,
    validated on every held-out image after each epoch; the baseline's subset run is only the reading."""
    from analyses.fashion_mnist.summary import last_epoch_test

    results = _baseline([(0.8, 1000), (0.9, 10_000)], (30, 10))
    rows = [{"epoch": e + 1, "val_acc": 0.90 + e / 1000, "val_images": 10_000} for e in range(10)]
    rows[-1]["curve_discordant"] = [120, 80]
    config = {"channels": [32, 64, 128], "depth": [1, 2, 2], "optimizer": "adam", "lr": 0.01,
              "schedule": "onecycle", "weight_decay": 0.0, "augment": "flip"}
    results["fashion_mnist"]["final"] = {
        "validated": True, "config": config, "history": rows, "val_acc": 0.909, "val_images": 10_000,
        "train_images": 50_000, "chosen": "combined: augment=flip, depth=1x2x2",
        "last_epoch_test": last_epoch_test(rows)}
    answer = answers.answer("4c", results)
    assert answer.sentences == [
        "4c's run is the final model's own training: the 32-64-128-channel network with depth 1-2-2 (adam at "
        "lr 0.01, onecycle, weight decay 0.0, augment flip), the grid's choice rather than the baseline, "
        "trained 10 epochs on the 50,000-image training split, reaches 90.90 % on all 10,000 held-out "
        "images."]
    assert answer.reading[0] == ("The baseline, adamw on the grid's 12,000-image subset, reaches 90.00 % on "
                                 "the same held-out images after 2 epochs.")
    assert "on the split" in answer.reading[1]
    assert "disagree on 200 of the same 10,000 images" in answer.reading[1]
    results["fashion_mnist"]["final"]["history"] = rows[:1]
    assert answers.answer("4c", results).sentences[0].startswith("The quick preset trains 1 epoch, not")
    del results["fashion_mnist"]["final"]["validated"]      # else the baseline's run answers, as before
    assert answers.answer("4c", results).sentences[0].startswith("The quick preset trains 2 epochs")


def test_4d_counts_the_verdicts_that_are_also_beyond_the_baselines_retraining_noise():
    family = {"name": "exact McNemar (two-sided)", "images": 10_000, "k": 3, "seeds": 1,
              "correction": "Holm over all 3 variants of the grid"}
    results = _fm_4d({"lr: lr=0.01": ("better", 0.9), "lr: lr=1": ("worse", -3.0),
                      "init: init=kaiming": ("no measurable difference", 0.1)}, family)
    results["fashion_mnist"]["seed_noise"] = {"band_pp": 0.52, "n": 4}
    for axis in results["fashion_mnist"]["axes"]:
        for row in axis["rows"][1:]:
            row["retraining"] = "beyond" if abs(row["delta_pp"]) > 0.52 else "within"
    results["fashion_mnist"]["axes"][0]["rows"][1]["retraining"] = "within"    # as if lr=0.01 were within
    first = answers.answer("4d", results).sentences[0]
    assert first.endswith("Holm over all 3 variants of the grid; 1 of 2 also beyond retraining noise "
                          "(±0.52 pp, rough)).")

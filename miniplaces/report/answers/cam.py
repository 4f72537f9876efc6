"""Problem 3's answer sentences, from results.json's numbers."""
from __future__ import annotations

from miniplaces.report.answers import Answer, count_of, name, scene_name, untrained_tag
from miniplaces.report.wording import pct, plural, series, span, units_phrase


def answer_3a(results: dict, focus: dict | None) -> Answer:
    shapes = results["cam"]["shapes"]
    a, b = " x ".join(map(str, shapes["chopped"])), " x ".join(map(str, shapes["reshaped"]))
    return Answer("3a", [
        f"reshape_hw_c turns the chopped model's {a} output into {b}: it drops the batch axis, flattens the "
        f"{shapes['chopped'][2]} x {shapes['chopped'][3]} positions row by row and transposes, so each row "
        "is one position and each column one unit."], glance=f"{a} → {b} (one row per position).")


def answer_3b(results: dict, focus: dict | None) -> Answer:
    shapes = results["cam"]["shapes"]
    out = " x ".join(map(str, shapes["fc_output"]))
    return Answer("3b", [
        f"fc_per_position applies the model's own FC layer to every row, giving {out}: the class scores of "
        "each position.",
        f"Averaged over the {shapes['fc_output'][0]} positions these equal the model's logits (largest "
        f"difference {shapes['mean_over_positions_vs_logits']:.1e}), and each class column equals its CAM "
        f"plus the class's bias (largest difference {shapes['columns_vs_cam_plus_bias']:.1e}).",
    ], glance=f"{out} class scores; their mean over positions equals the logits to "
              f"{shapes['mean_over_positions_vs_logits']:.0e}.")


def _covered(explanation: dict) -> dict | None:
    """The concept that holds more of the CAM's mass than its share of the image, most mass first."""
    return next((c for c in explanation["concepts"] if c["lift"] is not None and c["lift"] > 1), None)


GRADIENT_LABELS = ("Grad-CAM", "Grad-CAM++", "Score-CAM")


def answer_3c(results: dict, focus: dict | None) -> Answer:
    cam = focus["cam"]
    top = cam["explanations"][0]
    where = _covered(top)
    located = (f"puts {pct(where['mass'], 0)} of its CAM's mass on {where['concept']}, which covers "
               f"{pct(where['area'], 0)} of the image" if where else
               "has a CAM that favours no annotated concept beyond that concept's share of the image")
    corr = cam["shape"]["correlation"]
    sentences = [
        f"In the {scene_name(focus)} scene the top-1 class, {name(top)} (P = {pct(top['prob'])}), {located}.",
        "A class's CAM is its FC weights applied to the unit maps at every position, so it is bright where "
        "the units that class weighs most are active.",
    ]
    if corr is not None:
        sentences.append(f"The five classes' maps correlate at {corr:.2f} on average (1: the same map).")
    glance = (f"{scene_name(focus)}: {name(top)}'s CAM puts {pct(where['mass'], 0)} of its mass on "
              f"{where['concept']} ({pct(where['area'], 0)} of the image)." if where else
              f"{scene_name(focus)}: {name(top)}'s CAM favours no annotated concept.")
    share = sum(u["share"] for u in top["units"])
    reading = [f"The {units_phrase(len(top['units']))} that drive {name(top)} most, "
               f"{series([u['unit'] for u in top['units']])}, hold {pct(share, 0)} of its positive evidence: "
               + ("the class rests on a few units, and its map follows where they fire." if share >= 0.5 else
                  "the evidence is spread over many units, so the map is a sum of many units' regions.")]
    return Answer("3c", sentences, glance, reading)


def _undecided_sentence(undecided: list[dict], focus: dict) -> str:
    """3d where blurring the whole image barely moves the class probability: every curve is flat."""
    shown = focus if focus in undecided else undecided[0]
    f = shown["cam"]["faithfulness"]
    others = [scene_name(s) for s in undecided if s is not shown]
    return (f"On {scene_name(shown)}, blurring every pixel moves P({name(f['class'])}) only from "
            f"{pct(f['prob_original'])} to {pct(f['prob_all_blurred'])}, so the curves of every map, CAM's "
            "and random ones alike, are flat: this test cannot decide whether CAM is effective on this scene"
            + (f", nor on {series(others)}." if others else "."))


def answer_3d(results: dict, focus: dict | None) -> Answer:
    scenes = [s for s in results["scenes"] if "faithfulness" in s["cam"]]
    if not scenes:
        return Answer("3d", ["No scene was measured."], "No scene was measured.")
    decided = [s for s in scenes if s["cam"]["faithfulness"].get("decidable", True)]
    undecided = [s for s in scenes if s not in decided]
    effective = [s for s in decided if s["cam"]["faithfulness"]["effective"]]
    centre = [s for s in effective if s["cam"]["faithfulness"]["beats_centre"]]
    sentences = [_undecided_sentence(undecided, focus)] if undecided else []
    if decided:
        if len(decided) == 1:
            on = f"{'' if effective else 'not '}effective on {scene_name(decided[0])}"
            beats = f", and {'beats' if centre else 'does not clear'} the centre prior."
        else:
            share = ("none of the" if not effective else "all" if len(effective) == len(decided)
                     else f"{len(effective)} of")
            on = ("effective on " + share + f" {plural(len(decided), 'scene')}"
                  + (" where the test can decide" if undecided else "")
                  + (f" ({series([scene_name(s) for s in effective])})" if 0 < len(effective) < len(decided)
                     else ""))
            beats = f", and beats the centre prior on {len(centre)} of them."
        sentences.append(f"Measured by deletion and insertion against random maps, CAM is {on}"
                         + (beats if effective else "."))
    if decided and not undecided:   # with both kinds of scene, the numbers stay in the table (length)
        shown = focus if focus in decided else decided[0]
        f = shown["cam"]["faithfulness"]
        m, r = f["methods"], f["random"]
        sentences.append(
            f"On {scene_name(shown)}, deleting by CAM leaves an area of {m['CAM']['deletion_auc']:.3f} under "
            f"P({name(f['class'])}) (random maps: {r['deletion_mean']:.3f} ± {r['deletion_sd']:.3f}); "
            f"inserting gives {m['CAM']['insertion_auc']:.3f} "
            f"({r['insertion_mean']:.3f} ± {r['insertion_sd']:.3f}).")
        rivals = [g for g in GRADIENT_LABELS if g in m and m[g]["effective"]]
        if not m["CAM"]["effective"] and rivals and len(sentences) < 3:
            sentences.append(f"{series(rivals)} pass{'es' if len(rivals) == 1 else ''} the same test there.")
    if not decided:
        where = "this scene" if len(scenes) == 1 else f"any of the {plural(len(scenes), 'scene')}"
        glance = (f"The test cannot decide on {where}: blurring the whole image barely moves the class "
                  "probability.")
    elif undecided:
        glance = (f"CAM beats random maps on deletion and insertion on {len(effective)} of the "
                  f"{plural(len(decided), 'scene')} where the test can decide; it cannot decide on "
                  f"{plural(len(undecided), 'scene')}.")
    else:
        glance = (f"CAM beats random maps on deletion and insertion on {len(effective)} of "
                  f"{plural(len(scenes), 'scene')}.")
    reading = []
    if untrained_tag(results.get("model")):
        reading.append("These verdicts are about an untrained network (see model.weights_check), "
                       "not the Places365 model.")

    def shares(group: list[dict]) -> str:
        return span([sum(u["share"] for u in s["cam"]["explanations"][0]["units"]) for s in group],
                    lambda x: f"{100 * x:.0f}", " %")

    rest = [s for s in decided if s not in effective]
    if effective and rest:
        reading.append("Why: where CAM passes, the top-1 class's three strongest units hold "
                       f"{shares(effective)} of its positive evidence; where it fails, {shares(rest)}.")
    shape = [s["cam"]["shape"]["concentration"] for s in scenes]
    reading.append(f"By shape alone, the top-1 CAM puts {span(shape, lambda x: f'{100 * x:.0f}', ' %')} of "
                   "its mass on its brightest 20 % of pixels (a uniform map: 20 %): that says how peaked a "
                   "map is, not whether the network uses what it points at. Each cell of the 8 x 8 map "
                   "covers 1/64 of the image, so even a faithful map localises only to about an eighth of "
                   "the image's side.")
    if len(scenes) < len(results["scenes"]):
        reading.append(f"The {results.get('run', {}).get('preset', 'chosen')} preset measures "
                       f"{count_of(len(scenes), len(results['scenes']), 'scene')}.")
    return Answer("3d", sentences, glance, reading)


def explanation(explained: dict, shape: tuple[int, int]) -> str:
    """3c's reading of one class's map (stored with it in results.json): the units that drive it, the
    annotated concepts its CAM covers more than their share of the image, and its peak."""
    units, concepts, peak = explained["units"], explained["concepts"], explained["peak"]
    parts = [f"'{explained['label']}' (p = {explained['prob']:.4f}) is driven most by units "
             + ", ".join(f"{u['unit']} ({u['share']:.0%} of the positive evidence)" for u in units)]
    covered = [d for d in concepts if d["lift"] is not None and d["lift"] > 1.0]
    if covered:
        parts.append("its CAM concentrates on " + ", ".join(
            f"{d['concept']} ({d['mass']:.0%} of the CAM mass on {d['area']:.0%} of the image)"
            for d in covered))
    elif concepts:
        parts.append("its CAM falls on no annotated concept more than that concept's share of the image")
    parts.append(f"peak at cell (row {peak[0]}, col {peak[1]}) of the {shape[0]}x{shape[1]} map")
    return "; ".join(parts) + "."

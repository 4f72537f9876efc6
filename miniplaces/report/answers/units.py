"""Problem 2's answer sentences, from results.json's numbers."""
from __future__ import annotations

from miniplaces.report.answers import Answer, count_of, name, scene_name
from miniplaces.report.wording import (
    NUMBER_WORDS,
    capital,
    p_value,
    pct,
    plural,
    points_of,
    series,
    span,
    units_phrase,
)


def answer_2a(results: dict, focus: dict | None) -> Answer:
    model = results["units"]["model"]
    out = model["output_shape"]
    shape_in, shape_out = " x ".join(map(str, model["input_shape"])), " x ".join(map(str, out))
    return Answer("2a", [
        f"The chopped model keeps every child of the {model['arch']} except "
        f"{series(model['children_dropped'])}, so a {shape_in} input gives a {shape_out} output: "
        f"{out[1]} units, each an {out[2]} x {out[3]} map.",
        "These maps are computed once per scene and reused by 2b to 2d and by Problem 3.",
    ], glance=f"Dropping {series(model['children_dropped'])} leaves layer4's {shape_out} output: "
              f"{out[1]} units of {out[2]} x {out[3]}.")


PROBLEM_CONCEPTS = ("sky", "building")


def _best_against_chance(concepts: list[str], overall: dict) -> str:
    """'the best units reach IoU 0.060 (sky, unit 1732) and 0.041 (building, unit 987) against chance
    levels of 0.057 and 0.050'."""
    best = [overall[c]["top"][0] for c in concepts]
    levels = [overall[c]["null_max_iou"] for c in concepts]
    reached = series([f"{b['iou']:.3f} ({c}, unit {b['unit']})" for c, b in zip(concepts, best)])
    shown = series(["none" if v is None else f"{v:.3f}" for v in levels])
    return (f"the best {'unit reaches' if len(best) == 1 else 'units reach'} IoU {reached} against "
            f"{'a chance level' if len(best) == 1 else 'chance levels'} of {shown}")


def answer_2b(results: dict, focus: dict | None) -> Answer:
    units = results["units"]
    dissection = units["dissection"]
    overall = dissection["overall"]
    if not overall:
        return Answer("2b", ["No scene has concept masks, so no unit can be scored against sky or building; "
                             "the report lists each scene's most active units instead."],
                      "No concept masks given: nothing to score.")
    asked = [c for c in PROBLEM_CONCEPTS if c in overall] or list(overall)[:2]
    correction = dissection["correction"]
    tested, bar = correction["concepts_tested"], correction["bar"]
    found = {c: overall[c]["corrected_detectors"] for c in asked}
    missing = [c for c in asked if not found[c]]
    claims = [f"unit {found[c][0]['unit']} detects {c} (IoU {overall[c]['top'][0]['iou']:.3f}, corrected "
              f"{p_value(found[c][0]['p_corrected'])})" for c in asked if found[c]]
    if not claims:
        first = (f"No unit detects {series(asked, 'or')} beyond chance in these "
                 f"{plural(max(overall[c]['images'] for c in asked), 'annotated image')}: "
                 f"{_best_against_chance(asked, overall)}.")
    else:
        rest = (f"; no {series(missing, 'or')} unit survives the correction: "
                f"{_best_against_chance(missing, overall)}" if missing else "")
        first = capital(series(claims) + rest + ".")
    smallest = [overall[c]["smallest_p"] for c in asked if overall[c]["smallest_p"] is not None]
    second = (f"Corrected for all {correction['units']} units and, by Bonferroni, "
              f"{plural(tested, 'concept')}, a detector needs p < {bar:.4f}" if bar else
              "No concept's mask could be moved far enough for a chance level, so nothing can be tested")
    powerless = bool(smallest) and bar is not None and min(smallest) >= bar
    if powerless:
        draws = span([round(1 / p) - 1 for p in smallest], str)
        second += (f", but {draws} draws of moved masks cannot give "
                   f"p below {min(smallest):.3f}: this test cannot find a detector here")
    sentences = [first, second + "."]
    names = "/".join(asked)
    scope = f"corrected for {correction['units']} units and {plural(tested, 'concept')}"
    if claims:
        glance = f"{capital(series(claims))}; {scope}."
    else:
        glance = f"No {names} detector found ({scope}" + ("; the test cannot reach the bar with these "
                                                          "few draws)." if powerless else ").")
    caps = {c: overall[c]["cap"] for c in asked}
    # an attainable IoU within half again of the chance level leaves no room to beat it
    weak = [c for c in asked if overall[c]["null_max_iou"] and caps[c] < 1.5 * overall[c]["null_max_iou"]]
    draws = {c: overall[c]["null_draws"] for c in overall}
    reading = [
        "IoU measures how well the region where a unit fires matches the concept's mask: near 0 it is no "
        "detector. The chance level is the best IoU of any unit with the masks moved off the concept; each "
        f"concept's comes from its own number of moved-mask draws ({span(list(draws.values()), str)}; "
        f"{series([f'{c} {draws[c]}' for c in asked])}). With "
        f"{plural(dissection['images'], 'image')} and "
        f"{' x '.join(map(str, units['model']['output_shape'][2:]))} maps the IoU cannot exceed "
        f"{series([f'{v:.2f} for {c}' for c, v in caps.items()])}"
        + (f"; for {series(weak)} that is barely above the chance level, which leaves the test little power"
           if weak else "") + ". Network Dissection's cut-off of 0.04, which would count "
        f"{series([str(overall[c]['netdissect_count']) for c in asked])} units, is no fair bar here."]
    unit300 = units.get("unit300")
    shown = [s for s in results.get("scenes", []) if "unit300" in s]
    if unit300 is not None and shown:
        ranks = [s["unit300"]["activity_rank"] for s in shown]
        reading.append(f"The problem set's mountain unit {unit300} ranks {span(ranks, str)} of "
                       f"{units['units']} by mean activation on these scenes.")
    if unit300 is not None and "mountain" in overall:
        reading.append(_unit300_on_mountains(unit300, results.get("scenes", []), overall["mountain"],
                                             units["units"]))
    return Answer("2b", sentences, glance, reading)


def _unit300_on_mountains(unit: int, scenes: list[dict], mountain: dict, n_units: int) -> str:
    """The problem set's claim (unit 300 fires on the mountain) checked on the mountain masks; a rank
    among units that all score IoU 0 is an arbitrary tie, so IoU 0 is said as no overlap."""
    scored = []
    for scene in scenes:
        for concept in scene.get("concepts", []):
            if concept["concept"] == "mountain" and concept.get("unit300"):
                iou, rank = concept["unit300"]["iou"], concept["unit300"]["rank"]
                score = f"IoU {iou:.3f}, rank {rank} of {n_units}" if iou > 0 else "IoU 0, no overlap"
                scored.append(f"{scene_name(scene)}: {score}")
    detector = any(d["unit"] == unit for d in mountain["corrected_detectors"])
    chance = mountain["null_max_iou"]
    verdict = ("a mountain detector after the correction" if detector else
               "no mountain detector beyond chance" + (f" (chance level {chance:.3f})" if chance else ""))
    return f"On the mountain masks ({'; '.join(scored)}), unit {unit} is {verdict}."


def answer_2c(results: dict, focus: dict | None) -> Answer:
    scenes = results["scenes"]
    ab = focus["ablation"]
    drops = [s["ablation"]["prob_before"] - s["ablation"]["prob_after"] for s in scenes]
    lowered = sum(d > 0 for d in drops)
    changed = [s for s in scenes if s["ablation"]["top1_changed"]]
    example = f"{scene_name(focus)}: {pct(ab['prob_before'])} → {pct(ab['prob_after'])}"
    if lowered == len(scenes):
        what = (f"lowers its probability on {count_of(lowered, len(scenes), 'scene')}, by "
                f"{span(drops, points_of, ' points')}")
    else:
        what = (f"lowers its probability on {lowered} of {plural(len(scenes), 'scene')} (changes from "
                f"{span([-d for d in drops], lambda x: f'{100 * x:+.1f}', ' points')})")
    sentences = [f"Zeroing the five units with the largest FC weights for the top-1 class {what} "
                 f"({example})."]
    if not changed:
        sentences.append("The top-1 class never changes." if len(scenes) > 1 else "The top-1 class stays.")
    else:
        where = series([scene_name(s) for s in changed])
        sentences.append(f"The top-1 class changes on {count_of(len(changed), len(scenes), 'scene')}"
                         + (f" ({where})." if len(changed) < len(scenes) else "."))
    moved = (f"P(top-1) falls by {span(drops, points_of, ' points')}" if lowered == len(scenes) else
             f"P(top-1) changes by {span([-d for d in drops], lambda x: f'{100 * x:+.1f}', ' points')}")
    glance = (f"{moved}; the top-1 class changes on {count_of(len(changed), len(scenes), 'scene')}."
              if changed else f"{moved}; the top-1 class never changes.")
    return Answer("2c", sentences, glance)


def answer_2d(results: dict, focus: dict | None) -> Answer:
    scenes = results["scenes"]
    limit = results["units"]["sweep_limit"]
    ex = focus["sweep"]["exact"]
    ks = [s["sweep"]["exact"]["k"] for s in scenes]
    found = [k for k in ks if k is not None]
    if ex["k"] is not None:
        first = (f"Zeroing {units_phrase(ex['k'])}, {series(ex['units'])}, changes the top-1 class of "
                 f"{scene_name(focus)} from {name(focus['sweep']['by_weight']['class'])} to "
                 f"{name(ex['new_top1'])}")
    else:
        first = (f"No set of units changes the top-1 class of {scene_name(focus)}: zeroing every unit that "
                 f"supports it still leaves it ahead of {name(ex['rival'])}")
    if len(scenes) > 1 and found:
        first += (f"; every scene needs exactly {units_phrase(found[0])}" if min(found) == max(found)
                  else f"; the {len(scenes)} scenes need {min(found)} to {max(found)}")
    never = len(ks) - len(found)
    if len(scenes) > 1 and never:
        first += f", and no set of units changes {plural(never, 'scene')}"
    sentences = [first + ".",
                 "This minimum is exact over all sets of units, because the logits are linear in the units."]
    greedy = []
    for key, label in (("by_weight", "ranking by FC weight"),
                       ("by_contribution", "ranking by weight x activation")):
        hits = [s["sweep"][key]["min_k"] for s in scenes if s["sweep"][key]["min_k"] is not None]
        text = f"{label} needs {span(hits, str, ' units')}" if hits else f"{label} never succeeds"
        if hits and len(hits) < len(scenes):
            text += f" (none within {limit} on {plural(len(scenes) - len(hits), 'scene')})"
        greedy.append(text.replace(" 1 units", " 1 unit"))
    sentences.append(f"The problem set's {greedy[0]} and the {greedy[1]}: upper bounds.")
    if ex["k"] is not None:
        across = ("" if len(scenes) == 1 else f"; {NUMBER_WORDS.get(found[0], found[0])} for each of the "
                  f"{len(scenes)} scenes" if min(found) == max(found)
                  else f"; {min(found)} to {max(found)} across the {len(scenes)} scenes")
        glance = (f"{capital(units_phrase(ex['k']))} ({series(ex['units'])}) for {scene_name(focus)}, the "
                  f"exact minimum{across}.")
    else:
        glance = f"No set of units changes the top-1 class of {scene_name(focus)}."
    return Answer("2d", sentences, glance)


def correction_method(units: int, tested: int, alpha: float) -> str:
    """2b's correction for many tests, in words (stored in results.json beside its numbers)."""
    return (f"p-value of a unit: the share of null draws (moved masks) in which the best of all {units} "
            f"units reaches its IoU, so every unit is accounted for; then Bonferroni over the {tested} "
            f"concepts tested: a detector needs p < {alpha:g} / {tested}")

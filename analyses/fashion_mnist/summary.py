"""The selection's tables as plain data (analyses/fashion_mnist/selection.py runs the search).

Per axis and for the finalists: each configuration's validation accuracy over seeds, its difference from
the reference (the baseline) and its paired test; the baseline's own summary; the accuracies behind the
final choice. The FashionMNIST section turns these into results.json and sentences without computing.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import betaincinv  # the beta quantile, without importing scipy.stats (1 s)

from . import selection as fsel
from .grid import Grid, TrialSpec, change_label, changes_text, config_changes, describe

TEST_KEYS = ("discordant", "p_value", "p_adjusted", "verdict", "delta_pp", "seeds", "seed_delta_std_pp",
             "per_seed")


def spread(accs: list[float | None]) -> dict[str, Any]:
    """Mean and standard deviation over the seeds that finished; the diverged ones counted apart."""
    ok = [a for a in accs if a is not None]
    return {"mean": statistics.fmean(ok) if ok else None,
            "std": statistics.stdev(ok) if len(ok) > 1 else None, "n": len(ok),
            "diverged": len(accs) - len(ok)}


def accuracy_interval(accuracy: float, images: int, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) ``level`` interval of an accuracy measured once on ``images``
    images: where the model's accuracy on new images of the same kind lies, given the test set's
    sampling noise (about 0.24 pp of standard error at 94 % on 10 000 images)."""
    right, tail = round(accuracy * images), (1 - level) / 2
    low = float(betaincinv(right, images - right + 1, tail)) if right > 0 else 0.0
    high = float(betaincinv(right + 1, images - right, 1 - tail)) if right < images else 1.0
    return low, high


def row_test(test: dict[str, Any] | None) -> dict[str, Any] | None:
    """A row's paired test as results.json holds it (None for the reference row and untestable rows)."""
    return None if test is None else {k: test[k] for k in TEST_KEYS}


def rows(names: list[str], results: fsel.Results, tests: dict[str, dict | None],
         specs: list[TrialSpec]) -> list[dict]:
    """One row per configuration, the reference (names[0]) first: accuracy spread, difference, test."""
    base = spread([r["val_acc"] for r in results[names[0]]])
    spec_of = {s.name: s for s in specs}
    out = []
    for name in names:
        s = spread([r["val_acc"] for r in results[name]])
        variant = fsel.grid_name(name)
        out.append({"name": name,
                    "variant": "baseline" if variant == "baseline" else variant.split(": ", 1)[-1],
                    **s, "status": "diverged" if s["diverged"] else "ok",
                    "delta_pp": None if s["mean"] is None or base["mean"] is None
                    else 100 * (s["mean"] - base["mean"]),
                    "train_s": statistics.fmean(r["train_s"] for r in results[name]),
                    "coupled": spec_of[name].coupled or None,
                    **changes(spec_of[names[0]], spec_of[name]),
                    "test": row_test(tests.get(name))})
    return out


def changes(reference: TrialSpec, spec: TrialSpec) -> dict[str, Any]:
    """What ``spec`` changes against ``reference``, from their full configs (grid.config_changes):
    ``changes`` {key: [reference's value, its value]}, ``changes_text`` and ``label``, the name a sentence
    gives it, which names every change when there are several."""
    diff = config_changes(reference.config.to_dict(), spec.config.to_dict())
    text = changes_text(diff) if diff else None
    if fsel.grid_name(spec.name).startswith("combined: "):   # several axes: no one setting leads
        label = f"the combination ({text})"
    else:
        label = "baseline" if not diff else change_label(spec.overrides, diff)
    return {"changes": diff, "changes_text": text, "label": label}


def curve_images(result: dict) -> int | None:
    """How many validation images a trial's epochs before the last were scored on (train.fit), when
    that is a sample of the split; None when every epoch used all of it."""
    history = result["history"]
    sample = history[0].get("val_images", result["val_images"]) if len(history) > 1 else result["val_images"]
    return sample if sample < result["val_images"] else None


def baseline_summary(results: list[dict]) -> dict:
    """The baseline's first seed (curve, speed) and its spread over every seed."""
    first = results[0]
    epoch_s = [r["train_s"] for r in first["history"]]
    batch = first["config"]["batch_size"]   # train() drops the last partial batch: these many images an epoch
    trained_per_epoch = first["train_images"] // batch * batch
    return {"config": first["config"], "history": first["history"], "val_acc": first["val_acc"],
            "epochs": len(first["history"]), "spread": spread([r["val_acc"] for r in results]),
            "final_train_loss": first["history"][-1]["train_loss"] if first["history"] else None,
            "first_val_acc": first["history"][0]["val_acc"] if first["history"] else None,
            "median_epoch_s": float(np.median(epoch_s)) if epoch_s else None,
            "images_per_s": trained_per_epoch / float(np.median(epoch_s)) if epoch_s else None,
            "train_images": first["train_images"], "trained_per_epoch": trained_per_epoch,
            "val_images": first["val_images"], "curve_images": curve_images(first),
            "last_epoch_test": last_epoch_test(first["history"]),
            "precision": first.get("precision", "fp32")}   # what it trained in, not what the config asked


def last_epoch_test(history: list[dict]) -> dict | None:
    """Did the last epoch change validation accuracy beyond chance? The exact McNemar test on the images
    both last epochs were scored on (the curve's), the paired test every other comparison uses."""
    if len(history) < 2 or "curve_discordant" not in history[-1]:
        return None
    gained, lost = history[-1]["curve_discordant"]
    images = history[-2]["val_images"]
    return {"name": fsel.TEST_NAME, "images": images, "discordant": [gained, lost],
            "delta_pp": 100 * (gained - lost) / images, "p_value": fsel.exact_mcnemar(gained, lost),
            "alpha": fsel.ALPHA}


def seed_noise(sel: fsel.Selection) -> dict[str, Any] | None:
    """The baseline's grid trial over every seed it ran with (its repeats and ``noise_seeds``): how far
    retraining alone moves validation accuracy. ``diff_sd_pp`` is the standard deviation that gives a
    difference between two single-seed trials (sqrt 2 x the seeds' own), and ``band_pp`` twice it: a
    difference within the band is within retraining noise. ``flips`` counts, for each other seed, the
    validation images it and the first seed disagree on. From a few seeds this is a rough estimate."""
    if not sel.noise.specs:
        return None
    runs = sel.grid.results["baseline"] + sel.noise.results[fsel.NOISE_NAME]
    accs = [r["val_acc"] for r in runs]
    s, ok = spread(accs), [a for a in accs if a is not None]
    first = runs[0]["val_correct"]
    sd = None if s["std"] is None else 100 * s["std"] * math.sqrt(2)
    return {"seeds": [r["seed"] for r in runs], "val_acc": accs, **s,
            "range_pp": 100 * (max(ok) - min(ok)) if ok else None,
            "diff_sd_pp": sd, "band_pp": None if sd is None else 2 * sd,
            "flips": [None if first is None or r["val_correct"] is None
                      else int((np.asarray(r["val_correct"]) != np.asarray(first)).sum()) for r in runs[1:]],
            "images": runs[0]["val_images"], "train_images": runs[0]["train_images"]}


def against_noise(delta_pp: float | None, noise: dict[str, Any] | None) -> str | None:
    """"beyond" or "within" the baseline's retraining band (``seed_noise``); None where unmeasured."""
    if delta_pp is None or not noise or noise["band_pp"] is None:
        return None
    return "beyond" if abs(delta_pp) > noise["band_pp"] else "within"


def mark_retraining(axes: list[dict], noise: dict[str, Any] | None) -> list[dict]:
    """``axes`` (axis_tables) with each variant row's ``retraining``: its difference from the baseline
    against the baseline's retraining band (``against_noise``)."""
    for row in (r for axis in axes for r in axis["rows"]):
        row["retraining"] = against_noise(row["delta_pp"], noise) if row["variant"] != "baseline" else None
    return axes


def grid_family_info(sel: fsel.Selection) -> dict[str, Any]:
    """The one family every axis's tests belong to (selection.grid_family): the test, the correction,
    k, and ``members``, the variants it corrects over."""
    tests = {name: test for family in sel.axis_tests.values() for name, test in family.items()}
    return {**fsel.family_info(tests, fsel.CORRECTION), "members": [n for n, t in tests.items() if t]}


def axis_tables(grid: Grid, sel: fsel.Selection) -> list[dict]:
    """Per axis: every value's row against the baseline, the axis's best value, the test family (the
    grid's: the correction runs over every variant of every axis)."""
    info = {k: v for k, v in grid_family_info(sel).items() if k != "members"}
    out = []
    for axis in grid.axes:
        tests = sel.axis_tests[axis]
        out.append({"axis": axis, "rows": rows(["baseline", *tests], sel.grid.results, tests, sel.grid.specs),
                    "best": sel.best[axis], "test": info})
    return out


def finalist_table(sel: fsel.Selection) -> dict | None:
    """The finalists shaped like an axis (reference first), each with its grid accuracy and final cost."""
    if not sel.finalists.specs:
        return None
    results, budget = sel.finalists.results, sel.decision.budget
    names = list(results)
    if "finalist: baseline" in names:
        names.insert(0, names.pop(names.index("finalist: baseline")))
    table = rows(names, results, sel.finalist_tests, sel.finalists.specs)
    for row in table:
        row["variant"] = fsel.grid_name(row["name"])
        row["grid_val_acc"] = fsel.mean_val_acc(sel.grid.results[row["variant"]])
        row["final_tmacs"] = budget.cost.get(row["variant"])
        row["over_budget"] = row["variant"] in budget.over
    return {"rows": table, "chosen": sel.decision.chosen,
            "train_images": results[names[0]][0]["train_images"],
            "test": fsel.family_info(sel.finalist_tests, fsel.FINALIST_CORRECTION)}


def decision_accuracies(decision: fsel.Decision, grid_results: fsel.Results, pool: fsel.Results,
                        grid_tests: dict[str, dict | None] | None = None) -> dict[str, Any]:
    """The validation accuracies the final choice rests on: the chosen one's in the pool it was chosen from
    (finalists, else the grid) and the grid accuracies of the configurations the budget excluded; how many
    candidates it was picked from (``pool_size``) and, when picked from the grid, its paired test against
    the baseline there (``chosen_test``; None for the baseline itself)."""
    return {"chosen": fsel.mean_val_acc(pool[decision.chosen]),
            "excluded": {n: fsel.mean_val_acc(grid_results[n]) for n in decision.excluded},
            "pool_size": len(fsel.ranked(pool)),
            "chosen_test": row_test((grid_tests or {}).get(decision.chosen))}


def grid_tests(sel: fsel.Selection) -> dict[str, dict | None]:
    """Every grid configuration's paired test against the baseline, by trial name (the combination's too)."""
    tests = {name: test for family in sel.axis_tests.values() for name, test in family.items()}
    combined = next((s.name for s in sel.grid.specs if s.axis == "combined"), None)
    return {**tests, **({combined: sel.combined_test} if combined else {})}


def combination_summary(grid: Grid, sel: fsel.Selection) -> dict[str, Any] | None:
    """How the combination was made: the value it took from each axis, the axes whose best value it left
    out because that value's final training is over the budget, and, when it was not trained, the grid
    configuration it equals (None without a combination stage)."""
    if not grid.combine or not sel.combined_from:
        return None

    def value(name: str) -> str:
        return "the baseline's value" if name == "baseline" else name.split(": ", 1)[-1]
    cost = sel.decision.budget.cost
    left_out = [{"axis": axis, "best": value(best), "best_tmacs": cost.get(best),
                 "instead": value(sel.combined_from[axis])}
                for axis, best in sel.best.items() if sel.combined_from[axis] != best]
    trained = any(s.axis == "combined" for s in sel.grid.specs)
    overrides, conflicts = fsel.resolve_conflicts(sel.grid.specs, sel.combined_from)
    verdicts = {n: t["verdict"] for family in sel.axis_tests.values() for n, t in family.items() if t}
    return {"from": {axis: value(name) for axis, name in sel.combined_from.items()}, "left_out": left_out,
            "limit_tmacs": sel.decision.budget.limit or None,
            "same_as": None if trained else fsel.same_config(grid, sel.grid.specs, overrides),
            "conflicts": conflicts,
            "no_ops": [{**n, "value": value(n["value"])}
                       for n in fsel.no_ops(grid.base, sel.grid.specs, sel.combined_from)],
            "unsupported": {axis: {"value": value(name), "verdict": verdicts.get(name)}
                            for axis, name in sel.combined_from.items()
                            if name != "baseline" and verdicts.get(name) != "better"},
            "vs_best": row_test(sel.combined_vs_best) and {**row_test(sel.combined_vs_best),
                                                           "against": sel.combined_vs_best["against"]}}


def _lists(mapping: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in mapping.items()}


def trial_row(spec: TrialSpec, result: dict, cached: bool, reference: TrialSpec | None = None) -> dict:
    """One training run (one seed) as results.json lists it; with ``reference`` (the baseline), what it
    changes against it (``changes``)."""
    return {"name": spec.name, "axis": spec.axis, "variant": describe(spec.overrides),
            **(changes(reference, spec) if reference else {}),
            "overrides": _lists(spec.overrides), "coupled": spec.coupled or None, "seed": spec.seed,
            "config": result["config"],
            "status": result["status"], "error": result["error"], "val_acc": result["val_acc"],
            "precision": result.get("precision", "fp32"),
            "params": result["params"], "train_s": result["train_s"], "train_images": result["train_images"],
            "threads": result.get("threads"),   # torch threads the trial ran with, wherever it ran
            "epochs_run": len(result["history"]), "history": result["history"], "cached": cached}


@dataclass
class Summary:
    """Everything the section reports about the search, as plain data."""
    trials: list[dict]                 # every grid run (one row per seed), the combination included
    finalist_trials: list[dict]
    baseline: dict
    axes: list[dict]                   # axis_tables
    family: dict[str, Any]             # grid_family_info: the correction over the whole grid
    finalists: dict | None             # finalist_table
    combined_test: dict | None
    combination: dict | None           # combination_summary
    accuracies: dict[str, Any]         # decision_accuracies
    grid: dict[str, Any]               # the grid's base config and its axes' values, described
    noise: dict[str, Any] | None = None     # seed_noise: the baseline's retraining spread
    noise_trials: list[dict] | None = None  # the baseline's other seeds, one row each


def summarise(grid: Grid, sel: fsel.Selection) -> Summary:
    stage, finals = sel.grid, sel.finalists
    pool = finals.results if finals.specs else stage.results
    noise = seed_noise(sel)
    axes = mark_retraining(axis_tables(grid, sel), noise)
    return Summary(
        trials=[trial_row(s, r, c, stage.specs[0]) for s, (r, c) in zip(stage.specs, stage.outcomes)],
        finalist_trials=[trial_row(s, r, c) for s, (r, c) in zip(finals.specs, finals.outcomes)],
        baseline=baseline_summary(stage.results["baseline"]), axes=axes,
        family=grid_family_info(sel),
        finalists=finalist_table(sel), combined_test=row_test(sel.combined_test),
        combination=combination_summary(grid, sel),
        accuracies=decision_accuracies(sel.decision, stage.results, pool, grid_tests(sel)),
        grid={"base": grid.base.to_dict(), "final_overrides": _lists(grid.final),
              "axes": {a: [describe(v) for v in vs] for a, vs in grid.axes.items()}},
        noise=noise,
        noise_trials=[trial_row(s, r, c) for s, (r, c) in zip(sel.noise.specs, sel.noise.outcomes)])
